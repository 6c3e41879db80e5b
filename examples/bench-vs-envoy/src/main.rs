//! `bench-vs-envoy`: the same client, the same policy, the same load, three ways: (a) a bare
//! hyper-util client, (b) the same client wrapped in the mesh, (c) the same client through an
//! Envoy sidecar configured by `meshctl envoy` from the same files.
//!
//! `run` starts four loopback backends (`api` v1 ×2, v2 ×2), Envoy (`--concurrency 1`), and
//! then each phase of each set-up in its own child process (`client`), interleaved A B C, for
//! several rounds; it writes `latest.md` and `latest.json`. `run --mtls` does the same with
//! Istio mutual TLS from the client side to TLS-only backends (`mtls.md`, `mtls.json`). See the
//! README for how to run it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod load;
mod procfs;
mod report;
mod run;
mod scenario;
mod target;
mod tls;

/// Side-by-side benchmark: bare client, mesh, Envoy sidecar.
#[derive(Debug, Parser)]
#[command(name = "bench-vs-envoy", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole benchmark: backends, Envoy, every phase, the report.
    Run(run::RunArgs),
    /// One phase of one set-up (started by `run`, one process per phase).
    Client(client::ClientArgs),
    /// The behaviour scenarios alone, mesh against Envoy, Istio-exact on both sides; writes
    /// `behaviour.md` and `behaviour.json`.
    Behaviour(scenario::BehaviourArgs),
    /// One run of one set-up in a behaviour scenario (started by `behaviour`).
    Probe(scenario::ProbeArgs),
    /// Summarises a saved `latest.json` (or `mtls.json`) again and rewrites it and its `.md`.
    Report {
        /// The saved results.
        #[arg(long, default_value = "results/latest.json")]
        from: std::path::PathBuf,
        /// Where to write `latest.md` and `latest.json` (`mtls.*` for `mtls.json`).
        #[arg(long, default_value = "results")]
        out: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Client(a) => client::run(&a),
        Command::Probe(a) => scenario::probe(&a),
        Command::Behaviour(a) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))
            .and_then(|rt| rt.block_on(scenario::behaviour(&a))),
        Command::Report { from, out } => std::fs::read_to_string(&from)
            .map_err(|e| format!("{}: {e}", from.display()))
            .and_then(|json| report::Report::rebuild(&json))
            .and_then(|r| {
                // `latest.json` gives `latest.md`, `mtls.json` gives `mtls.md`.
                let stem = from
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("latest");
                report::write(&r, &out, stem)
            }),
        Command::Run(a) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))
            .and_then(|rt| rt.block_on(run::run(&a))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-vs-envoy: {e}");
            ExitCode::FAILURE
        }
    }
}
