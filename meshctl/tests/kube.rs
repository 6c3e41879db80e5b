//! `meshctl` reading a cluster (`--kubeconfig`, `--context`): the real binary against the
//! loopback stand-in API server (`mesh_kube::testing::FakeApiServer`), through a kubeconfig
//! file written to a temporary directory. No real cluster runs here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mesh_kube::testing::{self, FakeApiServer, SliceEndpoint};
use mesh_tests::Backend;
use serde_json::Value;

const NS: &str = "shop";

/// The VirtualService (`/v1` to subset v1, everything else 90/10 over v1 and v2) and the
/// DestinationRule of `reviews` in `shop`.
const ISTIO: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

/// A VirtualService istiod would reject: a negative weight.
const BROKEN: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: shop}
spec:
  hosts: [ratings]
  http:
  - route: [{destination: {host: ratings}, weight: -1}]
";

/// The v2 pod's address: never connected to (only `route` and `simulate` pick it).
const V2: &str = "10.0.0.2";
const V2_PORT: u16 = 8080;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("meshctl-kube-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A stand-in cluster: Service `reviews` (port `http` 9080) in `shop`, pod `reviews-v1-0` (a
/// real backend on 127.0.0.1, its port the EndpointSlice's) and `reviews-v2-0` (at
/// [`V2`]), one EndpointSlice per pod (their target ports differ), and [`ISTIO`].
struct Cluster {
    api: FakeApiServer,
    v1: Backend,
    dir: TempDir,
}

impl Cluster {
    async fn start(tag: &str, extra_yaml: &str) -> Cluster {
        let v1 = Backend::start_version("reviews-v1-0", "v1").await.unwrap();
        let api = FakeApiServer::start().await.unwrap();
        let mut objects = vec![
            testing::service(NS, "reviews", &[("http", 9080)]),
            testing::pod(NS, "reviews-v1-0", &[("app", "reviews"), ("version", "v1")]),
            testing::pod(NS, "reviews-v2-0", &[("app", "reviews"), ("version", "v2")]),
            testing::endpoint_slice(
                NS,
                "reviews-a",
                "reviews",
                "IPv4",
                &[("http", v1.addr().port())],
                &[SliceEndpoint::ready("127.0.0.1", "reviews-v1-0")],
            ),
            testing::endpoint_slice(
                NS,
                "reviews-b",
                "reviews",
                "IPv4",
                &[("http", V2_PORT)],
                &[SliceEndpoint::ready(V2, "reviews-v2-0")],
            ),
        ];
        objects.extend(testing::yaml(ISTIO));
        objects.extend(testing::yaml(extra_yaml));
        api.apply_all(objects);
        let dir = TempDir::new(tag);
        std::fs::write(dir.0.join("config"), api.kubeconfig()).unwrap();
        Cluster { api, v1, dir }
    }

    fn kubeconfig(&self) -> String {
        self.dir.0.join("config").display().to_string()
    }

    fn v1_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.v1.addr().port())
    }
}

/// Runs meshctl off the runtime the stand-in and the backend use, with `env` set and
/// `KUBECONFIG` otherwise unset.
async fn run_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env: Vec<(String, PathBuf)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_path_buf()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
        cmd.args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("meshctl runs")
    })
    .await
    .unwrap()
}

async fn run(args: &[&str]) -> Output {
    run_env(args, &[]).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reads_the_cluster_and_names_a_refused_object() {
    let c = Cluster::start("validate-ok", "").await;
    let out = run(&["validate", "--kubeconfig", &c.kubeconfig()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("0 errors, 0 warnings, 0 notes in 2 objects from the cluster"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "validate",
        "--kubeconfig",
        &c.kubeconfig(),
        "--format",
        "json",
    ])
    .await;
    let v = json(&out);
    let objects: Vec<String> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{}/{} {}", o["namespace"], o["name"], o["kind"]))
        .collect();
    assert_eq!(
        objects,
        [
            "\"shop\"/\"reviews\" \"VirtualService\"",
            "\"shop\"/\"reviews\" \"DestinationRule\""
        ]
    );

    let c = Cluster::start("validate-refused", BROKEN).await;
    let out = run(&["validate", "--kubeconfig", &c.kubeconfig()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with("shop/broken (VirtualService): error: spec.http[0].route[0].weight: "),
        "{text}"
    );
    assert!(
        stderr(&out).contains("1 error, 0 warnings, 0 notes in 3 objects from the cluster"),
        "{}",
        stderr(&out)
    );
    let v = json(
        &run(&[
            "validate",
            "--kubeconfig",
            &c.kubeconfig(),
            "--format",
            "json",
        ])
        .await,
    );
    let d = &v["diagnostics"][0];
    assert_eq!(d["namespace"], "shop");
    assert_eq!(d["name"], "broken");
    assert_eq!(d["kind"], "VirtualService");
    assert_eq!(d["file"], Value::Null);
    assert_eq!(v["errors"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_lists_each_destinations_endpoints_from_endpoint_slices() {
    let c = Cluster::start("route", BROKEN).await;
    let out = run(&[
        "route",
        "--kubeconfig",
        &c.kubeconfig(),
        "--namespace",
        NS,
        "--roll",
        "95",
        "GET",
        "http://reviews:9080/",
    ])
    .await;
    // The refused object is left out, as the mesh leaves it out, and named on stderr.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("shop/broken (VirtualService): error: "),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out)
            .contains("left out, as the mesh leaves them out: shop/broken (VirtualService)"),
        "{}",
        stderr(&out)
    );
    let v = json(&out);
    assert_eq!(v["virtualService"], "shop/reviews");
    let dests = v["destinations"].as_array().unwrap();
    assert_eq!(dests.len(), 2);
    assert_eq!(dests[0]["subset"], "v1");
    assert_eq!(strings(&dests[0]["endpoints"]), [c.v1_endpoint()]);
    assert_eq!(dests[1]["subset"], "v2");
    assert_eq!(strings(&dests[1]["endpoints"]), [format!("{V2}:{V2_PORT}")]);
    // Roll 95 of 100 lands on the 10% of v2.
    assert_eq!(v["chosen"]["subset"], "v2");
    assert_eq!(
        strings(&v["chosen"]["endpoints"]),
        [format!("{V2}:{V2_PORT}")]
    );
    assert_eq!(
        v["chosen"]["cluster"],
        "outbound|9080|v2|reviews.shop.svc.cluster.local"
    );

    // The explanation for people says the same.
    let out = run(&[
        "route",
        "--kubeconfig",
        &c.kubeconfig(),
        "--namespace",
        NS,
        "--roll",
        "5",
        "--format",
        "text",
        "-q",
        "GET",
        "http://reviews:9080/",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("endpoints: {}", c.v1_endpoint())),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_spreads_over_the_pods_of_the_endpoint_slices() {
    let c = Cluster::start("simulate", "").await;
    let out = run(&[
        "simulate",
        "--kubeconfig",
        &c.kubeconfig(),
        "--namespace",
        NS,
        "-n",
        "1000",
        "--seed",
        "7",
        "--format",
        "json",
        "GET",
        "http://reviews:9080/",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let dests = v["destinations"].as_array().unwrap();
    assert_eq!(strings(&dests[0]["endpoints"]), [c.v1_endpoint()]);
    assert_eq!(strings(&dests[1]["endpoints"]), [format!("{V2}:{V2_PORT}")]);
    let per_endpoint: Vec<(String, u64)> = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_endpoint.len(), 2, "{per_endpoint:?}");
    assert_eq!(per_endpoint[0].0, c.v1_endpoint());
    assert_eq!(per_endpoint[1].0, format!("{V2}:{V2_PORT}"));
    // Each pod got exactly what its destination got.
    assert_eq!(per_endpoint[0].1, dests[0]["count"].as_u64().unwrap());
    assert_eq!(per_endpoint[1].1, dests[1]["count"].as_u64().unwrap());
    assert_eq!(per_endpoint[0].1 + per_endpoint[1].1, 1000);
    assert!(per_endpoint[1].1 > 0, "v2 got nothing: {per_endpoint:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sends_to_the_pod_the_endpoint_slice_names() {
    let c = Cluster::start("curl", "").await;
    let out = run(&[
        "curl",
        "--kubeconfig",
        &c.kubeconfig(),
        "--namespace",
        NS,
        "--format",
        "json",
        "GET",
        "http://reviews:9080/v1/a",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["response"]["status"], 200, "{v}");
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{v}");
    assert_eq!(attempts[0]["endpoint"], c.v1_endpoint().as_str());
    assert_eq!(c.v1.count(), 1, "the pod's backend got the request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_picks_the_cluster() {
    // Two clusters: the current context reads `a` (with the VirtualService), `--context b`
    // reads `b` (without).
    let a = Cluster::start("context-a", "").await;
    let b = FakeApiServer::start().await.unwrap();
    b.apply(testing::service(NS, "reviews", &[("http", 9080)]));
    let kubeconfig = a.dir.0.join("two-contexts");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- {{name: a, cluster: {{server: 'http://{}'}}}}
- {{name: b, cluster: {{server: 'http://{}'}}}}
users:
- {{name: u, user: {{}}}}
contexts:
- {{name: a, context: {{cluster: a, user: u}}}}
- {{name: b, context: {{cluster: b, user: u}}}}
current-context: a
",
            a.api.addr(),
            b.addr()
        ),
    )
    .unwrap();
    let path = kubeconfig.display().to_string();
    let route = |extra: &'static [&'static str]| {
        let path = path.clone();
        async move {
            let mut args = vec!["route", "--kubeconfig", &path, "--namespace", NS];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["GET", "http://reviews:9080/v1"]);
            run(&args).await
        }
    };
    let current = json(&route(&[]).await);
    assert_eq!(current["virtualService"], "shop/reviews");
    let out = route(&["--context", "b"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let other = json(&out);
    assert_eq!(other["virtualService"], Value::Null);
    assert_eq!(other["action"], "passthrough");
    assert_eq!(
        b.lists(),
        6,
        "b was listed once per resource (3 + 3 Istio kinds)"
    );

    // `--context` alone reads the kubeconfig KUBECONFIG names.
    let out = run_env(
        &[
            "route",
            "--context",
            "a",
            "--namespace",
            NS,
            "GET",
            "http://reviews:9080/v1",
        ],
        &[("KUBECONFIG", kubeconfig.as_path())],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["virtualService"], "shop/reviews");

    // A context the kubeconfig does not have: named, with the ones it has.
    let out = route(&["--context", "c"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no context \"c\"; its contexts: a, b"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_a_cluster_together_or_neither_are_usage_errors() {
    let c = Cluster::start("usage", "").await;
    let kubeconfig = c.kubeconfig();
    for args in [
        &[
            "route",
            "-f",
            "x.yaml",
            "--kubeconfig",
            &kubeconfig,
            "GET",
            "http://a/",
        ][..],
        &[
            "simulate",
            "-f",
            "x.yaml",
            "--context",
            "stand-in",
            "GET",
            "http://a/",
        ],
        &[
            "curl",
            "-f",
            "x.yaml",
            "--kubeconfig",
            &kubeconfig,
            "GET",
            "http://a/",
        ],
        &["validate", "x.yaml", "--kubeconfig", &kubeconfig],
    ] {
        let out = run(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("cannot be used with"),
            "{}",
            stderr(&out)
        );
    }
    // Neither: KUBECONFIG alone is not read.
    for args in [&["route", "GET", "http://reviews:9080/"][..], &["validate"]] {
        let out = run_env(args, &[("KUBECONFIG", Path::new(&kubeconfig))]).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("no configuration given"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(c.api.lists(), 0, "the cluster was never read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_cannot_be_reached_is_a_usage_error_that_says_so() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("unreachable");
    let path = dir.0.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- {{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}\nusers:\n- {{name: u, user: {{}}}}\ncontexts:\n- {{name: c, context: {{cluster: c, user: u}}}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let out = run(&["validate", "--kubeconfig", &path.display().to_string()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot read the cluster: cannot list services")
            && err.contains("check that the API server the kubeconfig names can be reached"),
        "{err}"
    );
}
