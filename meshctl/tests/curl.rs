//! `meshctl curl` end to end: the binary sends real requests through the mesh to real
//! loopback backends, and prints what happened.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use mesh_tests::{Action, Backend, Rule, Select};
use serde_json::Value;

/// A ServiceEntry for `api.test` with one endpoint per backend (label `version`), subsets
/// v1 and v2, and a VirtualService: `/v2` to v2 with 2 retries on 5xx, `/nowhere` matches
/// nothing (a route exists only for `/v1`, `/v2` and `/`).
fn config(dir: &std::path::Path, v1: &Backend, v2: &Backend) -> String {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api}}
spec:
  hosts: [api.test]
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api}}
spec:
  host: api.test
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api}}
spec:
  hosts: [api.test]
  http:
  - match: [{{uri: {{prefix: /v2}}}}]
    retries: {{attempts: 2, retryOn: 5xx}}
    route: [{{destination: {{host: api.test, subset: v2}}}}]
  - match: [{{uri: {{prefix: /v1}}}}, {{uri: {{exact: /}}}}]
    route: [{{destination: {{host: api.test, subset: v1}}}}]
",
        v1.addr().port(),
        v2.addr().port()
    );
    let path = dir.join("api.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

fn meshctl(args: Vec<String>, stdin: Option<&'static [u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("meshctl starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs meshctl off the runtime the backends use.
async fn run(args: &[&str], stdin: Option<&'static [u8]>) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || meshctl(args, stdin))
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            text(out),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

struct Setup {
    _dir: TempDir,
    file: String,
    v1: Backend,
    v2: Backend,
}

async fn setup() -> Setup {
    let v1 = Backend::start_version("api-v1", "v1").await.unwrap();
    let v2 = Backend::start_version("api-v2", "v2").await.unwrap();
    let dir = TempDir::new();
    let file = config(&dir.0, &v1, &v2);
    Setup {
        _dir: dir,
        file,
        v1,
        v2,
    }
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "meshctl-curl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_prints_decision_attempts_flags_and_response() {
    let s = setup().await;
    let out = run(
        &["curl", "-f", &s.file, "GET", "http://api.test:8080/v1"],
        None,
    )
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("outbound|8080|v1|api.test"), "{t}");
    let v1 = s.v1.addr().to_string();
    assert!(
        t.lines().any(|l| l.contains(&v1) && l.contains(" 200 ")),
        "the attempt line: {t}"
    );
    assert!(t.contains("flags:    -"), "{t}");
    assert!(t.contains("200 OK"), "{t}");
    assert!(t.contains("api-v1"), "the backend's body: {t}");
    assert_eq!(s.v1.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_that_run_out_show_every_attempt_and_urx() {
    let s = setup().await;
    s.v2.set_rules([Rule::new(Select::All, Action::Status(503))]);
    let out = run(
        &[
            "curl",
            "-f",
            &s.file,
            "--format",
            "json",
            "GET",
            "http://api.test:8080/v2",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "not a 2xx");
    let v = json(&out);
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{v:#}");
    assert!(attempts.iter().all(|a| a["status"] == 503));
    assert!(attempts[1]["waitedMs"].as_f64().unwrap() >= 0.0);
    assert!(
        v["responseFlags"].as_str().unwrap().contains("URX"),
        "{v:#}"
    );
    assert_eq!(v["response"]["status"], 503);
    assert_eq!(s.v2.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_envoys_404_with_nr() {
    let s = setup().await;
    let out = run(
        &[
            "curl",
            "-f",
            &s.file,
            "--format",
            "json",
            "GET",
            "http://api.test:8080/nowhere",
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["response"]["status"], 404);
    assert_eq!(v["response"]["localReply"], true);
    assert_eq!(v["responseFlags"], "NR");
    assert_eq!(v["error"]["kind"], "noRoute");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_give_the_documented_summary() {
    let s = setup().await;
    // Every 4th attempt to v2 fails. With four requests in flight a retry can land on a
    // failing slot again, so the counts are checked as invariants rather than exact values.
    s.v2.set_rules([Rule::new(Select::EveryNth(4), Action::Status(503))]);
    let out = run(
        &[
            "curl",
            "-f",
            &s.file,
            "-n",
            "40",
            "-c",
            "4",
            "--format",
            "json",
            "--seed",
            "3",
            "GET",
            "http://api.test:8080/v2",
        ],
        None,
    )
    .await;
    let v = json(&out);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "attempts",
            "endpoints",
            "errors",
            "latencyMs",
            "requests",
            "responseFlags",
            "status"
        ]
    );
    assert_eq!(v["requests"], 40);
    let ok = v["status"]["200"].as_u64().unwrap_or(0);
    let failed = v["status"]["503"].as_u64().unwrap_or(0);
    assert_eq!(ok + failed, 40, "every request has one status: {v:#}");
    assert!(ok >= 30, "most requests succeed after a retry: {v:#}");
    assert_eq!(
        v["responseFlags"]["URX"].as_u64().unwrap_or(0),
        failed,
        "every 503 is an exhausted retry: {v:#}"
    );
    let expected_exit = if failed == 0 { 0 } else { 1 };
    assert_eq!(
        out.status.code(),
        Some(expected_exit),
        "0 only when every response was a 2xx"
    );
    let attempts = v["attempts"].as_u64().unwrap();
    assert_eq!(attempts, s.v2.count(), "every attempt reached the backend");
    assert_eq!(v["endpoints"][s.v2.addr().to_string()], attempts);
    assert!(attempts > 40, "some requests were retried: {attempts}");
    for p in ["p50", "p90", "p99"] {
        assert!(v["latencyMs"][p].as_f64().unwrap() > 0.0);
    }
    assert!(v["latencyMs"]["p50"].as_f64() <= v["latencyMs"]["p99"].as_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_input_is_streamed_with_no_length() {
    let s = setup().await;
    let out = run(
        &[
            "curl",
            "-f",
            &s.file,
            "-d",
            "@-",
            "POST",
            "http://api.test:8080/v1",
        ],
        Some(b"hello from stdin"),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = &s.v1.received()[0];
    assert_eq!(got.body_len, "hello from stdin".len());
    assert!(
        got.headers.get("content-length").is_none(),
        "streamed: {:?}",
        got.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let s = setup().await;
    let stdin_twice = run(
        &[
            "curl",
            "-f",
            &s.file,
            "-n",
            "2",
            "-d",
            "@-",
            "POST",
            "http://api.test:8080/v1",
        ],
        None,
    )
    .await;
    assert_eq!(stdin_twice.status.code(), Some(2));
    let public = run(
        &["curl", "-f", &s.file, "GET", "http://93.184.216.34/"],
        None,
    )
    .await;
    assert_eq!(public.status.code(), Some(2), "{}", text(&public));
    assert!(String::from_utf8_lossy(&public.stderr).contains("loopback and private"));
    let bad_n = run(
        &[
            "curl",
            "-f",
            &s.file,
            "-n",
            "0",
            "GET",
            "http://api.test:8080/",
        ],
        None,
    )
    .await;
    assert_eq!(bad_n.status.code(), Some(2));
}
