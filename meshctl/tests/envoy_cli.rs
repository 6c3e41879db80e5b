//! End-to-end tests of `meshctl envoy` on the canary fixture: the output parses as YAML and as
//! JSON, carries the listener and admin addresses asked for, bad input gets exit code 1 or 2,
//! and `--output` writes the file only when the whole bootstrap was generated.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn meshctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("meshctl runs")
}

const CANARY: &str = "tests/fixtures/canary.yaml";

fn cluster<'a>(boot: &'a Value, name: &str) -> &'a Value {
    boot["static_resources"]["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

#[test]
fn yaml_output_is_a_bootstrap_for_the_canary() {
    let out = meshctl(&[
        "envoy",
        "-f",
        CANARY,
        "--listen",
        "127.0.0.1:25001",
        "--admin",
        "127.0.0.1:25000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let boot: Value = serde_yaml::from_slice(&out.stdout).expect("YAML");
    assert_eq!(
        boot["admin"]["address"]["socket_address"]["port_value"],
        25000
    );
    let listener = &boot["static_resources"]["listeners"][0];
    assert_eq!(listener["address"]["socket_address"]["port_value"], 25001);
    let route = &listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
        ["virtual_hosts"][0]["routes"][0];
    assert_eq!(route["name"], "canary-split");
    let weighted = route["route"]["weighted_clusters"]["clusters"]
        .as_array()
        .expect("weighted clusters");
    assert_eq!(weighted[0]["weight"], 90);
    assert_eq!(weighted[1]["weight"], 10);
    // The fixture's split has no retries block: Istio's default policy, 2 retries.
    assert_eq!(route["route"]["retry_policy"]["num_retries"], 2);
    let v2 = cluster(&boot, "outbound|8080|v2|api.default.svc.cluster.local");
    let eps = v2["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .expect("endpoints");
    let ports: Vec<u64> = eps
        .iter()
        .filter_map(|e| e["endpoint"]["address"]["socket_address"]["port_value"].as_u64())
        .collect();
    assert_eq!(ports, [18083, 18084]);
    // Without the workload's certificates the subset's ISTIO_MUTUAL is reported, not silently
    // dropped, and the cluster is plaintext.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ISTIO_MUTUAL is not translated without --workload-certificates"),
        "{err}"
    );
    assert!(v2.get("transport_socket").is_none());
}

#[test]
fn workload_certificates_give_istio_mutual_clusters_their_tls() {
    let dir = scratch("workload-certificates");
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args([
            "envoy",
            "--format",
            "json",
            "-f",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(CANARY)
                .to_str()
                .unwrap(),
            "--workload-certificates",
            "certs",
            "--trust-domain",
            "example.org",
        ])
        .current_dir(&dir)
        .output()
        .expect("meshctl runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let v1 = cluster(&boot, "outbound|8080|v1|api.default.svc.cluster.local");
    assert!(v1.get("transport_socket").is_none(), "v1 has no tls block");
    let v2 = cluster(&boot, "outbound|8080|v2|api.default.svc.cluster.local");
    let ctx = &v2["transport_socket"]["typed_config"];
    assert_eq!(
        ctx["sni"],
        "outbound_.8080_.v2_.api.default.svc.cluster.local"
    );
    let common = &ctx["common_tls_context"];
    assert_eq!(
        common["alpn_protocols"],
        serde_json::json!(["istio-http/1.1", "istio", "http/1.1"])
    );
    // A relative directory is made absolute: Envoy would read it from its own working directory.
    let chain = common["tls_certificates"][0]["certificate_chain"]["filename"]
        .as_str()
        .unwrap();
    assert_eq!(Path::new(chain), dir.join("certs").join("cert-chain.pem"));
    let roots = common["validation_context"]["trusted_ca"]["filename"]
        .as_str()
        .unwrap();
    assert_eq!(Path::new(roots), dir.join("certs").join("root-cert.pem"));
    assert_eq!(
        common["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["prefix"],
        "spiffe://example.org/"
    );

    // --no-verify-trust-domain: any certificate of the mesh root, as istiod writes it.
    let out = meshctl(&[
        "envoy",
        "-q",
        "--format",
        "json",
        "-f",
        CANARY,
        "--workload-certificates",
        "/var/lib/istio/data",
        "--no-verify-trust-domain",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let boot: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let v2 = cluster(&boot, "outbound|8080|v2|api.default.svc.cluster.local");
    assert_eq!(
        v2["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"],
        serde_json::json!({"trusted_ca": {"filename": "/var/lib/istio/data/root-cert.pem"}})
    );
}

#[test]
fn json_output_parses_and_quiet_silences_warnings() {
    let out = meshctl(&["envoy", "-q", "--format", "json", "-f", CANARY]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let boot: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let v1 = cluster(&boot, "outbound|8080|v1|api.default.svc.cluster.local");
    assert_eq!(
        v1["circuit_breakers"]["thresholds"][0]["max_pending_requests"],
        10
    );
    assert_eq!(v1["outlier_detection"]["max_ejection_percent"], 50);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_host_without_endpoints_is_a_configuration_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("meshctl-envoy-no-se");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let vs = dir.join("vs.yaml");
    std::fs::write(
        &vs,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n",
    )
    .unwrap();
    let out = meshctl(&["envoy", "-f", vs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ServiceEntry"), "{err}");
}

#[test]
fn a_bad_listen_address_is_a_usage_error() {
    let out = meshctl(&["envoy", "-f", CANARY, "--listen", "localhost"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A fresh, empty directory under Cargo's scratch space for integration tests.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("meshctl-envoy-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn output_file_gets_what_stdout_would() {
    let dir = scratch("output-ok");
    let file = dir.join("envoy.yaml");
    std::fs::write(&file, "stale\n").unwrap();
    let out = meshctl(&["envoy", "-f", CANARY, "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "the bootstrap went to the file");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("meshctl envoy: wrote "), "{err}");
    let to_stdout = meshctl(&["envoy", "-q", "-f", CANARY]);
    assert_eq!(std::fs::read(&file).unwrap(), to_stdout.stdout);
    assert_eq!(
        file_names(&dir),
        ["envoy.yaml"],
        "no temporary file is left"
    );
}

#[test]
fn a_failed_run_leaves_the_output_file_as_it_was() {
    let dir = scratch("output-fail");
    let vs = dir.join("vs.yaml");
    // No ServiceEntry for the host: `envoy` cannot translate it (exit 1).
    std::fs::write(
        &vs,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n",
    )
    .unwrap();
    let kept = dir.join("kept.yaml");
    std::fs::write(&kept, "the previous bootstrap\n").unwrap();
    let out = meshctl(&[
        "envoy",
        "-f",
        vs.to_str().unwrap(),
        "-o",
        kept.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        "the previous bootstrap\n"
    );
    let fresh = dir.join("fresh.yaml");
    let out = meshctl(&[
        "envoy",
        "-f",
        vs.to_str().unwrap(),
        "-o",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!fresh.exists(), "no empty file is created on failure");
    assert_eq!(file_names(&dir), ["kept.yaml", "vs.yaml"]);
}

#[test]
fn an_unwritable_output_is_a_usage_error() {
    let dir = scratch("output-unwritable");
    let target = dir.join("missing-dir").join("envoy.yaml");
    let out = meshctl(&["envoy", "-q", "-f", CANARY, "-o", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot write"), "{err}");
    assert!(file_names(&dir).is_empty());
}
