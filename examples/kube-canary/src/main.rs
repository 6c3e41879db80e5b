//! The canary against Kubernetes.
//!
//! Run with:
//!
//! * `cargo run --release -p example-kube-canary -- --stand-in`: on a loopback stand-in
//!   cluster with real loopback pods (what CI runs as a test);
//! * `cargo run --release -p example-kube-canary -- [--namespace canary] [--requests 1000]`:
//!   on the cluster of `KUBECONFIG` (or in-cluster), after `kubectl apply -f
//!   examples/kube-canary/k8s/`; see the README.

use example_kube_canary::{run_cluster, run_stand_in, BoxError, NAMESPACE};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-canary: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let mut stand_in = false;
    let mut namespace = NAMESPACE.to_owned();
    let mut requests = 1_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--stand-in" => stand_in = true,
            "--namespace" => namespace = args.next().ok_or("--namespace needs a value")?,
            "--requests" => {
                requests = args
                    .next()
                    .ok_or("--requests needs a value")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?;
            }
            "-h" | "--help" => {
                println!("kube-canary [--stand-in] [--namespace NS] [--requests N]");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    let phases = if stand_in {
        run_stand_in(requests).await?
    } else {
        let client = kube::Client::try_default().await?;
        run_cluster(client, &namespace, requests).await?
    };
    for p in phases {
        print!("{p}");
    }
    Ok(())
}
