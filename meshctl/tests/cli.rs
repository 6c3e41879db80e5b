//! End-to-end tests of the `meshctl` binary on the fixtures in `tests/fixtures/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regex::Regex;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

/// Runs meshctl with `args`, from the crate directory.
fn meshctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("meshctl runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("UTF-8 stderr")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

/// `FILE:LINE: SEVERITY: KIND/NAME: FIELD.PATH: MESSAGE`.
fn diagnostic_line() -> Regex {
    Regex::new(r"^[^:]+:\d+: (error|warning|note): \w+/[^:]+: [^:\s]*: .+$").unwrap()
}

/// A fresh empty directory under Cargo's scratch space for integration tests.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("meshctl-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// validate

#[test]
fn validate_directory_reports_every_file_sorted_and_fails_on_errors() {
    let out = meshctl(&["validate", "tests/fixtures"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stdout(&out);
    let re = diagnostic_line();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(re.is_match(l), "not a diagnostic line: {l}");
    }
    // Files in sorted order: canary < invalid < reviews < unexported-dr < warnings.
    let files: Vec<&str> = lines.iter().map(|l| l.split(':').next().unwrap()).collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    // The two errors of invalid.yaml, on their lines, and the analysis's one of
    // unexported-dr.yaml (the subset's DestinationRule is not exported to the route's
    // namespace).
    assert!(
        lines.iter().any(|l| l.starts_with(
            "tests/fixtures/invalid.yaml:14: error: VirtualService/broken: spec.http[0].route[0].weight: "
        )),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "tests/fixtures/invalid.yaml:17: error: VirtualService/broken: spec.http[0].retries.retryOn: "
        )),
        "{text}"
    );
    let summary = stderr(&out);
    let errors = lines.iter().filter(|l| l.contains(": error: ")).count();
    let warnings = lines.iter().filter(|l| l.contains(": warning: ")).count();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "tests/fixtures/unexported-dr.yaml:17: error: VirtualService/cart: spec.http[0].route[0].destination.subset: "
        ) && l.contains("not exported to namespace \"default\"")),
        "{text}"
    );
    assert_eq!(errors, 3, "{text}");
    // The one warning is warnings.yaml's typo (the canary's `tls` is applied, not warned about).
    assert_eq!(warnings, 1, "{text}");
    assert_eq!(
        summary.trim_end(),
        "3 errors, 1 warning, 0 notes in 5 files"
    );
}

#[test]
fn validate_warnings_only_exits_zero() {
    let out = meshctl(&["validate", &fixture("warnings.yaml")]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(diagnostic_line().is_match(lines[0]), "{}", lines[0]);
    assert!(lines[0].contains(": warning: VirtualService/typo: spec.http[0].retires: "));
    assert!(lines[0].contains("did you mean `retries`?"));
    assert!(lines[0].contains("warnings.yaml:14:"), "{}", lines[0]);
    assert_eq!(
        stderr(&out).trim_end(),
        "0 errors, 1 warning, 0 notes in 1 file"
    );
}

#[test]
fn validate_strict_turns_unknown_fields_into_errors() {
    let out = meshctl(&["validate", "--strict", &fixture("warnings.yaml")]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        text.contains(": error: VirtualService/typo: spec.http[0].retires: "),
        "{text}"
    );
}

#[test]
fn validate_strict_fails_on_plain_warnings() {
    // A warning that is not an unknown field (a rule after a match-less one is never used):
    // accepted normally, fatal with --strict.
    let dir = scratch("strict-plain-warning");
    let file = dir.join("shadowed.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1\n\
         kind: VirtualService\n\
         metadata: {name: shadowed, namespace: default}\n\
         spec:\n  \
           hosts: [api]\n  \
           http:\n  \
           - route: [{destination: {host: api}}]\n  \
           - match: [{headers: {end-user: {exact: jason}}}]\n    \
             route: [{destination: {host: api}}]\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let normal = meshctl(&["validate", &file]);
    assert_eq!(code(&normal), 0, "{}", stdout(&normal));
    let text = stdout(&normal);
    assert!(
        text.contains(": warning: VirtualService/shadowed: spec.http[1]: "),
        "{text}"
    );
    assert!(!text.contains("unknown field"), "{text}");
    let strict = meshctl(&["validate", "--strict", &file]);
    assert_eq!(code(&strict), 1);
    assert!(stderr(&strict).contains("--strict: warnings count as errors"));
}

#[test]
fn validate_clean_file_prints_nothing_and_exits_zero() {
    let out = meshctl(&["validate", &fixture("reviews.yaml")]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out).trim_end(),
        "0 errors, 0 warnings, 0 notes in 1 file"
    );
}

#[test]
fn validate_sees_all_files_together() {
    // A route to subset v1 in one file, the DestinationRule declaring it in another: valid
    // only when both are loaded into one configuration.
    let dir = scratch("cross");
    std::fs::write(
        dir.join("a-vs.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r, subset: v1}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(
        dir.join("nested/b-dr.yml"),
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  subsets:\n  - {name: v1, labels: {version: v1}}\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml: [").unwrap();
    let vs = dir.join("a-vs.yaml").display().to_string();
    let alone = meshctl(&["validate", &vs]);
    assert_eq!(code(&alone), 1, "{}", stdout(&alone));
    assert!(stdout(&alone).contains("spec.http[0].route[0].destination.subset"));
    // The undefined subset is an analysis error (IST0101): istiod accepts the route, so
    // `route` explains it (503 NC) instead of refusing, and says why on stderr.
    let routed = meshctl(&["route", "-f", &vs, "--format", "json", "GET", "http://r/x"]);
    assert_eq!(code(&routed), 0, "{}", stderr(&routed));
    let v = json(&routed);
    assert_eq!(v["action"], "route");
    assert_eq!(v["error"], "unknownSubset");
    assert_eq!(v["status"], 503);
    assert!(
        stderr(&routed).contains("subset \"v1\" is not defined"),
        "{}",
        stderr(&routed)
    );
    let json_out = meshctl(&["validate", "--format", "json", &vs]);
    let diags = json(&json_out);
    assert!(
        diags.to_string().contains("\"analysis\":true"),
        "the JSON marks analysis findings: {diags}"
    );
    let together = meshctl(&["validate", &dir.display().to_string()]);
    assert_eq!(code(&together), 0, "{}", stdout(&together));
    assert!(
        stderr(&together).contains("in 2 files"),
        "the .txt file is not read: {}",
        stderr(&together)
    );
}

#[test]
fn validate_notes_only_with_verbose() {
    let dir = scratch("notes");
    let file = dir.join("mixed.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let quiet = meshctl(&["validate", &file]);
    assert_eq!(code(&quiet), 0);
    assert!(!stdout(&quiet).contains(": note: "), "{}", stdout(&quiet));
    let summary = stderr(&quiet);
    let notes: usize = Regex::new(r"(\d+) notes?")
        .unwrap()
        .captures(&summary)
        .and_then(|c| c[1].parse().ok())
        .expect("summary counts notes");
    assert!(notes >= 1, "the skipped Gateway is counted: {summary}");
    let verbose = meshctl(&["validate", "--verbose", &file]);
    assert_eq!(code(&verbose), 0);
    let shown = stdout(&verbose)
        .lines()
        .filter(|l| l.contains(": note: "))
        .count();
    assert_eq!(shown, notes, "{}", stdout(&verbose));
}

#[test]
fn validate_json_matches_the_text_output() {
    let text = meshctl(&["validate", "--verbose", "tests/fixtures"]);
    let js = meshctl(&["validate", "--format", "json", "tests/fixtures"]);
    assert_eq!(code(&js), code(&text));
    assert_eq!(code(&js), 1);
    let v = json(&js);
    let diags = v["diagnostics"].as_array().unwrap();
    let lines: Vec<String> = stdout(&text).lines().map(str::to_owned).collect();
    assert_eq!(diags.len(), lines.len());
    for (d, line) in diags.iter().zip(&lines) {
        let prefix = format!(
            "{}:{}: {}: {}/{}: {}: ",
            d["file"].as_str().unwrap(),
            d["line"].as_u64().unwrap_or(0),
            d["severity"].as_str().unwrap(),
            d["kind"].as_str().unwrap(),
            d["name"].as_str().unwrap(),
            d["path"].as_str().unwrap(),
        );
        assert!(line.starts_with(&prefix), "{line} vs {prefix}");
        assert!(line.ends_with(d["message"].as_str().unwrap()));
    }
    assert_eq!(v["errors"], 3);
    assert_eq!(v["files"].as_array().unwrap().len(), 5);
    assert_eq!(v["strict"], false);
}

#[test]
fn validate_io_and_usage_errors_exit_two() {
    let missing = meshctl(&["validate", "tests/fixtures/does-not-exist.yaml"]);
    assert_eq!(code(&missing), 2);
    assert!(stderr(&missing).contains("cannot read tests/fixtures/does-not-exist.yaml"));

    let empty = scratch("empty");
    std::fs::write(empty.join("readme.md"), "# nothing here").unwrap();
    let none = meshctl(&["validate", &empty.display().to_string()]);
    assert_eq!(code(&none), 2);
    assert!(stderr(&none).contains("no YAML file"), "{}", stderr(&none));

    let no_args = meshctl(&["validate"]);
    assert_eq!(code(&no_args), 2);
    let bad_flag = meshctl(&["validate", "--bogus", "x.yaml"]);
    assert_eq!(code(&bad_flag), 2);
}

// ---------------------------------------------------------------------------------------------
// route

#[test]
fn route_frontend_goes_to_v2_with_retries_and_timeout() {
    let out = meshctl(&[
        "route",
        "-q",
        "-f",
        &fixture("canary.yaml"),
        "--source-label",
        "app=frontend",
        "GET",
        "http://api:8080/users",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["host"], "api");
    assert_eq!(v["virtualService"], "default/api-vs-canary");
    assert_eq!(v["route"]["index"], 0);
    assert_eq!(v["route"]["name"], "frontend-to-v2");
    assert_eq!(v["action"], "route");
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["chosen"]["subset"], "v2");
    assert_eq!(v["chosen"]["host"], "api.default.svc.cluster.local");
    assert_eq!(v["chosen"]["port"], 8080);
    assert_eq!(
        v["chosen"]["cluster"],
        "outbound|8080|v2|api.default.svc.cluster.local"
    );
    assert_eq!(
        v["chosen"]["endpoints"],
        serde_json::json!(["127.0.0.1:18083", "127.0.0.1:18084"])
    );
    assert_eq!(v["destinations"].as_array().unwrap().len(), 1);
    assert_eq!(v["timeout"], "5s");
    assert_eq!(v["retries"]["attempts"], 3);
    assert_eq!(v["retries"]["perTryTimeout"], "2s");
    assert_eq!(v["retries"]["istioDefault"], false);
    // The v2 subset's policy replaces the top-level blocks it sets (Istio merges whole blocks).
    assert_eq!(v["policy"]["destinationRule"], "default/api-dr");
    assert_eq!(v["policy"]["loadBalancer"], "ROUND_ROBIN");
    assert_eq!(v["policy"]["connectionPool"]["idleTimeout"], "10s");
    assert_eq!(v["policy"]["outlierDetection"]["consecutive5xxErrors"], 5);
    assert_eq!(v["client"]["labels"]["app"], "frontend");
    assert_eq!(v["trace"]["routes"][0]["result"], "matched");
}

#[test]
fn route_others_get_the_90_10_split_by_roll() {
    let run = |roll: &str| {
        let out = meshctl(&[
            "route",
            "-q",
            "-f",
            &fixture("canary.yaml"),
            "--roll",
            roll,
            "GET",
            "http://api:8080/",
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        json(&out)
    };
    let v = run("0");
    assert_eq!(v["route"]["index"], 1);
    assert_eq!(v["route"]["name"], "canary-split");
    assert_eq!(v["roll"], 0);
    let dests = v["destinations"].as_array().unwrap();
    assert_eq!(dests.len(), 2);
    assert_eq!(dests[0]["subset"], "v1");
    assert_eq!(dests[0]["weight"], 90);
    assert_eq!(dests[0]["port"], 8080);
    assert_eq!(
        dests[0]["cluster"],
        "outbound|8080|v1|api.default.svc.cluster.local"
    );
    assert_eq!(dests[1]["subset"], "v2");
    assert_eq!(dests[1]["weight"], 10);
    assert_eq!(
        dests[1]["cluster"],
        "outbound|8080|v2|api.default.svc.cluster.local"
    );
    assert_eq!(v["chosen"]["subset"], "v1");
    assert_eq!(v["chosen"]["index"], 0);
    // No retries block: Istio's default policy; no timeout.
    assert_eq!(v["timeout"], Value::Null);
    assert_eq!(v["retries"]["attempts"], 2);
    assert_eq!(v["retries"]["perTryTimeout"], Value::Null);
    assert_eq!(
        v["retries"]["retryOn"],
        "connect-failure,refused-stream,retriable-status-codes,cancelled,unavailable"
    );
    assert_eq!(v["retries"]["istioDefault"], true);
    // v1 takes its top-level policy: LEAST_REQUEST, the DR's connection pool.
    assert_eq!(v["policy"]["loadBalancer"], "LEAST_REQUEST");
    assert_eq!(v["policy"]["connectionPool"]["maxConnections"], 100);
    // The frontend route's block is dropped for this client, and the trace says why.
    let notes = v["trace"]["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("sourceLabels")),
        "{notes:?}"
    );
    // roll % 100: 89 is the last v1 value, 90 the first v2 value.
    assert_eq!(run("189")["chosen"]["subset"], "v1");
    assert_eq!(run("90")["chosen"]["subset"], "v2");
    assert_eq!(run("95")["chosen"]["index"], 1);
}

#[test]
fn route_unknown_host_is_passthrough() {
    let out = meshctl(&[
        "route",
        "-q",
        "-f",
        &fixture("canary.yaml"),
        "GET",
        "http://example.com:8443/x",
    ]);
    assert_eq!(code(&out), 0);
    let v = json(&out);
    assert_eq!(v["action"], "passthrough");
    assert_eq!(v["virtualService"], Value::Null);
    assert_eq!(v["route"], Value::Null);
    assert_eq!(v["host"], "example.com");
    assert_eq!(v["chosen"]["host"], "example.com");
    assert_eq!(v["chosen"]["port"], 8443);
    assert_eq!(v["retries"]["istioDefault"], true);
    assert_eq!(v["trace"]["virtualService"], Value::Null);
}

#[test]
fn route_no_match_exits_three_with_the_reasons() {
    let out = meshctl(&[
        "route",
        "-f",
        &fixture("reviews.yaml"),
        "GET",
        "http://reviews/other",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["action"], "noRoute");
    assert_eq!(v["status"], 404);
    assert_eq!(v["virtualService"], "default/reviews");
    assert_eq!(v["route"], Value::Null);
    assert_eq!(v["chosen"], Value::Null);
    assert_eq!(v["destinations"], serde_json::json!([]));
    let routes = v["trace"]["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 4, "every route was considered");
    assert!(routes.iter().all(|r| r["result"] == "notMatched"));
    let first = routes[0]["failedMatches"][0]["failure"].as_str().unwrap();
    assert!(first.contains("end-user"), "{first}");
    assert!(
        routes[3]["failedMatches"][0]["failure"]
            .as_str()
            .unwrap()
            .contains("/reviews"),
        "{routes:?}"
    );
}

#[test]
fn route_header_match_fault_and_mirror() {
    let out = meshctl(&[
        "route",
        "-f",
        &fixture("reviews.yaml"),
        "-H",
        "end-user: jason",
        "GET",
        "http://reviews/anything",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["route"]["name"], "jason");
    assert_eq!(v["chosen"]["subset"], "v2");
    assert_eq!(v["fault"]["delay"]["fixedDelay"], "7s");
    assert_eq!(v["fault"]["delay"]["percentage"], 50.0);
    assert_eq!(v["fault"]["abort"], Value::Null);
    let mirrors = v["mirrors"].as_array().unwrap();
    assert_eq!(mirrors.len(), 1);
    assert_eq!(mirrors[0]["host"], "shadow.default.svc.cluster.local");
    assert_eq!(mirrors[0]["percentage"], 25.0);
    assert_eq!(v["request"]["headers"][0][0], "end-user");
}

#[test]
fn route_redirect_direct_response_and_rewrite() {
    let run = |url: &str| {
        let out = meshctl(&["route", "-f", &fixture("reviews.yaml"), "GET", url]);
        assert_eq!(code(&out), 0, "{url}: {}", stderr(&out));
        json(&out)
    };
    let r = run("http://reviews/old/page?a=1");
    assert_eq!(r["action"], "redirect");
    assert_eq!(r["redirect"]["code"], 302);
    assert_eq!(r["redirect"]["location"], "http://reviews/new?a=1");
    assert_eq!(r["status"], 302);
    let d = run("http://reviews/healthz");
    assert_eq!(d["action"], "directResponse");
    assert_eq!(d["directResponse"]["status"], 200);
    assert_eq!(d["directResponse"]["body"], "ok");
    let w = run("http://reviews/reviews/7?x=1");
    assert_eq!(w["action"], "route");
    assert_eq!(w["rewrite"]["uri"], "/v1/reviews");
    assert_eq!(w["rewrite"]["path"], "/v1/reviews/7?x=1");
    assert_eq!(
        w["headers"],
        serde_json::json!([{
            "request": {"set": [["x-api-version", "v1"]], "add": [], "remove": ["x-debug"]},
            "response": {"set": [], "add": [], "remove": []},
        }])
    );
    assert_eq!(d["headers"], serde_json::json!([]));
}

#[test]
fn route_to_a_subset_the_client_cannot_see_reports_unknown_subset() {
    // Valid config (istiod accepts it), but the DestinationRule declaring the subset is not
    // exported to the client's namespace: Envoy would answer 503 NC. validate's analysis
    // looks the rule up as the mesh does and reports it (exit 1, nothing refused).
    let file = fixture("unexported-dr.yaml");
    let validate = meshctl(&["validate", &file]);
    assert_eq!(code(&validate), 1);
    assert!(
        stdout(&validate).contains("not exported to namespace \"default\""),
        "{}",
        stdout(&validate)
    );
    let out = meshctl(&["route", "-f", &file, "GET", "http://cart/"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["action"], "route");
    assert_eq!(v["error"], "unknownSubset");
    assert_eq!(v["status"], 503);
    assert_eq!(v["chosen"]["unknownSubset"], true);
    assert_eq!(v["chosen"]["subset"], "v1");
    // From the DestinationRule's own namespace the subset exists.
    let shop = meshctl(&[
        "route",
        "-f",
        &file,
        "--namespace",
        "shop",
        "GET",
        "http://cart.default.svc.cluster.local/",
    ]);
    let v = json(&shop);
    assert_eq!(v["error"], Value::Null, "{v}");
    assert_eq!(v["chosen"]["unknownSubset"], false);
}

#[test]
fn route_text_format_explains() {
    let out = meshctl(&[
        "route",
        "-q",
        "-f",
        &fixture("canary.yaml"),
        "--source-label",
        "app=frontend",
        "--format",
        "text",
        "GET",
        "http://api:8080/",
    ]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "not JSON");
    assert!(text.contains("route http[0] (frontend-to-v2)"), "{text}");
    assert!(text.contains("timeout:  5s"), "{text}");
    // Istio's `attempts: 3` is 3 retries after the first try; the explanation says so in the
    // same words as the trace below it.
    assert!(
        text.contains("retries:  3 retries (4 attempts at most), 2s per try"),
        "{text}"
    );
    assert!(text.contains("    3 retries on "), "{text}");
    assert!(!text.contains("3 attempts"), "{text}");
    assert!(text.contains("why:"), "{text}");
    assert!(text.contains("127.0.0.1:18083, 127.0.0.1:18084"), "{text}");
}

#[test]
fn route_config_errors_exit_one_with_diagnostics_on_stderr() {
    let out = meshctl(&[
        "route",
        "-f",
        &fixture("invalid.yaml"),
        "GET",
        "http://broken/",
    ]);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    let re = diagnostic_line();
    let diags: Vec<&str> = err.lines().filter(|l| re.is_match(l)).collect();
    assert_eq!(diags.len(), 2, "{err}");
    assert!(err.contains("2 errors"), "{err}");
}

#[test]
fn route_warnings_go_to_stderr_unless_quiet() {
    let args = |quiet: bool| {
        let mut a = vec!["route"];
        if quiet {
            a.push("-q");
        }
        a.extend(["-f", "tests/fixtures/warnings.yaml", "GET", "http://typo/"]);
        a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };
    let loud = meshctl(&args(false).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(stderr(&loud).contains(": warning: "), "{}", stderr(&loud));
    json(&loud); // stdout stays one JSON object
    let quiet = meshctl(&args(true).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(stderr(&quiet), "");
}

#[test]
fn route_usage_errors_exit_two() {
    let canary = fixture("canary.yaml");
    for args in [
        vec!["route", "GET", "http://api/"], // no -f
        vec!["route", "-f", &canary, "GET"], // no URL
        vec![
            "route",
            "-f",
            &canary,
            "-H",
            "nocolon",
            "GET",
            "http://api/",
        ],
        vec![
            "route",
            "-f",
            &canary,
            "--source-label",
            "app",
            "GET",
            "http://api/",
        ],
        vec!["route", "-f", &canary, "GET", "ftp://api/"],
        vec!["route", "-f", &canary, "--roll", "-1", "GET", "http://api/"],
        vec!["route", "-f", "tests/fixtures/nope", "GET", "http://api/"],
    ] {
        let out = meshctl(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// simulate

#[test]
fn simulate_canary_split_is_90_10() {
    let out = meshctl(&[
        "simulate",
        "-q",
        "-f",
        &fixture("canary.yaml"),
        "-n",
        "10000",
        "--seed",
        "1",
        "--format",
        "json",
        "GET",
        "http://api:8080/",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["requests"], 10000);
    assert_eq!(v["seed"], 1);
    let dests = v["destinations"].as_array().unwrap();
    assert_eq!(dests.len(), 2);
    let count = |i: usize| dests[i]["count"].as_u64().unwrap();
    assert_eq!(count(0) + count(1), 10_000);
    assert_eq!(dests[0]["subset"], "v1");
    assert_eq!(dests[0]["expectedShare"], 90.0);
    // Each request goes to v1 with p = 0.9: the count is binomial(10000, 0.9), whose standard
    // deviation is sqrt(10000 * 0.9 * 0.1) = 30 requests = 0.3 percentage points. 1.5 points
    // is 5 sd: a correct generator falls outside with probability below 1e-6 (and the seed is
    // fixed, so the test is deterministic anyway). A biased split, such as the v2 route
    // leaking to everyone or a broken roll, lands far outside.
    let v1 = dests[0]["share"].as_f64().unwrap();
    assert!((v1 - 90.0).abs() <= 1.5, "v1 share {v1}%");
    let subsets = v["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 2);
    // Endpoints: two per subset. v2 is ROUND_ROBIN, so its two endpoints differ by at most 1.
    let eps = v["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 4, "{eps:?}");
    let of = |cluster: &str| -> Vec<u64> {
        eps.iter()
            .filter(|e| e["cluster"].as_str().unwrap().contains(cluster))
            .map(|e| e["count"].as_u64().unwrap())
            .collect()
    };
    let v1_eps = of("|v1|");
    let v2_eps = of("|v2|");
    assert_eq!(v1_eps.iter().sum::<u64>(), count(0));
    assert_eq!(v2_eps.iter().sum::<u64>(), count(1));
    assert_eq!(v2_eps.len(), 2);
    assert!(v2_eps[0].abs_diff(v2_eps[1]) <= 1, "{v2_eps:?}");
    let addrs: Vec<&str> = eps
        .iter()
        .map(|e| e["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        addrs,
        [
            "127.0.0.1:18081",
            "127.0.0.1:18082",
            "127.0.0.1:18083",
            "127.0.0.1:18084"
        ]
    );
}

#[test]
fn simulate_is_reproducible_with_a_seed() {
    let run = |seed: &str| {
        let out = meshctl(&[
            "simulate",
            "-q",
            "-f",
            &fixture("canary.yaml"),
            "-n",
            "500",
            "--seed",
            seed,
            "GET",
            "http://api/",
        ]);
        assert_eq!(code(&out), 0);
        stdout(&out)
    };
    let a = run("42");
    assert_eq!(a, run("42"));
    assert_ne!(a, run("43"));
    assert!(a.contains("DESTINATION"), "{a}");
    assert!(a.contains("ENDPOINT"), "{a}");
    assert!(a.contains("seed 42"), "{a}");
}

#[test]
fn simulate_frontend_always_hits_v2() {
    let out = meshctl(&[
        "simulate",
        "-q",
        "-f",
        &fixture("canary.yaml"),
        "--source-label",
        "app=frontend",
        "-n",
        "1000",
        "--format",
        "json",
        "GET",
        "http://api:8080/",
    ]);
    assert_eq!(code(&out), 0);
    let v = json(&out);
    assert_eq!(v["route"], "http[0] (frontend-to-v2)");
    assert_eq!(v["destinations"][0]["count"], 1000);
    assert_eq!(v["destinations"][0]["subset"], "v2");
}

#[test]
fn simulate_no_route_exits_three() {
    let out = meshctl(&[
        "simulate",
        "-f",
        &fixture("reviews.yaml"),
        "-n",
        "100",
        "--json",
        "GET",
        "http://reviews/nothing",
    ]);
    assert_eq!(code(&out), 3);
    let v = json(&out);
    assert_eq!(v["outcomes"]["noRoute"]["count"], 100);
}

#[test]
fn simulate_rejects_a_zero_count() {
    let out = meshctl(&[
        "simulate",
        "-f",
        &fixture("canary.yaml"),
        "-n",
        "0",
        "GET",
        "http://api/",
    ]);
    assert_eq!(code(&out), 2);
}

// ---------------------------------------------------------------------------------------------
// help

#[test]
fn help_is_there_for_newcomers() {
    let out = meshctl(&["--help"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    for word in ["validate", "route", "simulate", "Exit codes", "Examples"] {
        assert!(text.contains(word), "--help lacks {word}");
    }
    for sub in ["validate", "route", "simulate"] {
        let out = meshctl(&[sub, "--help"]);
        assert_eq!(code(&out), 0);
        assert!(stdout(&out).contains("Examples:"), "{sub} --help");
    }
    let route = stdout(&meshctl(&["route", "--help"]));
    for key in [
        "virtualService",
        "destinations",
        "unknownSubset",
        "retries",
        "trace",
    ] {
        assert!(route.contains(key), "route --help lacks {key}");
    }
}

#[test]
fn every_subcommand_takes_format_text_or_json() {
    let canary = fixture("canary.yaml");
    let request = ["GET", "http://api:8080/"];
    let runs: [(&str, Vec<&str>); 4] = [
        ("validate", vec![canary.as_str()]),
        (
            "route",
            [&["-q", "-f", canary.as_str()][..], &request[..]].concat(),
        ),
        (
            "simulate",
            [
                &["-q", "-n", "10", "--seed", "1", "-f", canary.as_str()][..],
                &request[..],
            ]
            .concat(),
        ),
        ("envoy", vec!["-q", "-f", canary.as_str()]),
    ];
    for (sub, args) in runs {
        let help = stdout(&meshctl(&[sub, "--help"]));
        assert!(help.contains("--format <FORMAT>"), "{sub} --help: {help}");
        assert!(
            help.contains("- text: ") && help.contains("- json: "),
            "{sub} --help: {help}"
        );
        let run = |format: &str| {
            let out = meshctl(&[&[sub, "--format", format][..], &args[..]].concat());
            assert_eq!(code(&out), 0, "{sub} --format {format}: {}", stderr(&out));
            stdout(&out)
        };
        let js = run("json");
        let v: Value = serde_json::from_str(&js).unwrap_or_else(|e| panic!("{sub}: {e}: {js}"));
        assert!(v.is_object(), "{sub}");
        let text = run("text");
        assert!(
            serde_json::from_str::<Value>(&text).is_err(),
            "{sub} --format text: {text}"
        );
    }
}

#[test]
fn old_format_spellings_are_hidden_aliases() {
    let canary = fixture("canary.yaml");
    let simulate = |format: &[&str]| {
        let args = [
            &[
                "simulate",
                "-q",
                "-n",
                "50",
                "--seed",
                "7",
                "-f",
                canary.as_str(),
            ][..],
            format,
            &["GET", "http://api:8080/"][..],
        ]
        .concat();
        meshctl(&args)
    };
    let old = simulate(&["--json"]);
    assert_eq!(code(&old), 0, "{}", stderr(&old));
    assert_eq!(old.stdout, simulate(&["--format", "json"]).stdout);
    let both = simulate(&["--json", "--format", "text"]);
    assert_eq!(code(&both), 2, "--json and --format conflict");
    let envoy = |format: &str| meshctl(&["envoy", "-q", "--format", format, "-f", &canary]);
    let yaml = envoy("yaml");
    assert_eq!(code(&yaml), 0, "{}", stderr(&yaml));
    assert_eq!(yaml.stdout, envoy("text").stdout);
    // Read, not advertised.
    assert!(!stdout(&meshctl(&["simulate", "--help"])).contains("--json"));
    let help = stdout(&meshctl(&["envoy", "--help"]));
    assert!(!help.contains("- yaml"), "{help}");
}

#[test]
fn validate_help_describes_its_own_formats() {
    let text = stdout(&meshctl(&["validate", "--help"]));
    assert!(
        text.contains("text: One line per diagnostic"),
        "validate --help: {text}"
    );
    assert!(
        text.contains("json: One JSON object: every diagnostic"),
        "{text}"
    );
    // The route command's wording (it explains one decision) does not belong here.
    assert!(!text.contains("human-readable explanation"), "{text}");
    let route = stdout(&meshctl(&["route", "--help"]));
    assert!(
        route.contains("text: A human-readable explanation"),
        "{route}"
    );
}

#[test]
fn route_text_says_retries_for_istio_default_and_disabled_policies() {
    let dir = scratch("retry-words");
    let vs = dir.join("vs.yaml");
    std::fs::write(
        &vs,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - match: [{uri: {prefix: /off}}]\n    retries: {attempts: 0}\n    route:\n    - destination: {host: r}\n  - route:\n    - destination: {host: r}\n",
    )
    .unwrap();
    let vs = vs.display().to_string();
    let text = |path: &str| {
        let out = meshctl(&["route", "-q", "-f", &vs, "--format", "text", "GET", path]);
        assert_eq!(code(&out), 0, "{out:?}");
        stdout(&out)
    };
    let default = text("http://r/");
    assert!(
        default.contains("retries:  2 retries (3 attempts at most), on connect-failure"),
        "{default}"
    );
    assert!(default.contains("(Istio's default)"), "{default}");
    let off = text("http://r/off");
    assert!(off.contains("retries:  no retries (1 attempt)\n"), "{off}");
}

// ---------------------------------------------------------------------------------------------
// output errors

#[test]
fn closed_stdout_is_not_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args([
            "simulate",
            "-q",
            "-f",
            "tests/fixtures/canary.yaml",
            "-n",
            "1000",
            "--json",
            "GET",
            "http://api/",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once: whether the write happens before or after, the run ends
    // normally (a reader that stops early, like `| head`, is not an error).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[cfg(target_os = "linux")]
#[test]
fn failing_stdout_is_reported_with_exit_two() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // no /dev/full in this sandbox
    };
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["validate", "tests/fixtures"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot write to stdout"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
}
