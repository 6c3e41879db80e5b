//! `meshctl`: validate Istio configs, explain a routing decision, simulate a split.
//!
//! A command line for people who write Istio `VirtualService`, `DestinationRule` and
//! `ServiceEntry` YAML and want to know, before they apply it, whether it is valid and where a
//! given request would go. It uses the same libraries as the in-process mesh clients:
//! `mesh-model` to load and validate, `mesh-routing` to route.
//!
//! It reads files, or, only when asked (`--kubeconfig`, `--context`), a Kubernetes cluster
//! once through `mesh-kube` (nothing is watched or written). Only `curl` sends requests,
//! through the mesh, to loopback and private addresses; everything else is computed from what
//! was read.
//!
//! Exit codes: 0 success, 1 configuration errors, 2 usage or I/O errors, 3 no route (`curl`:
//! 0 when every response was a 2xx, 1 otherwise).

use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod curl;
mod envoy;
mod output;
mod request;
mod rng;
mod route;
mod simulate;
mod sources;
mod validate;

use cli::{Cli, Command};
pub(crate) use cli::{
    CurlArgs, EnvoyArgs, Format, RequestArgs, RouteArgs, SimulateArgs, ValidateFormat,
};

/// Process exit codes, as documented in `--help`.
pub(crate) mod exit {
    /// Everything went fine.
    pub(crate) const OK: u8 = 0;
    /// The configuration has errors (or warnings under `--strict`).
    pub(crate) const CONFIG: u8 = 1;
    /// Bad command line, unreadable path, or no YAML found.
    pub(crate) const USAGE: u8 = 2;
    /// A virtual service covers the host but no route matched the request.
    pub(crate) const NO_ROUTE: u8 = 3;
}

/// Writes `text` to stdout. A closed pipe (`meshctl ... | head`) is not an error: the reader
/// has what it wanted. Any other write error is reported (exit code 2) instead of panicking as
/// `print!` would.
pub(crate) fn out(text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::usage(format!("cannot write to stdout: {e}"))),
    }
}

/// Writes one line to stderr; errors (a closed stderr) are ignored, there is nowhere left to
/// report them.
pub(crate) fn err_line(line: &str) {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// A failure that ends the command: a message for stderr and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit code.
    pub(crate) code: u8,
    /// What to print (may be empty when everything was printed already).
    pub(crate) message: String,
}

impl Failure {
    /// A usage or I/O error (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }

    /// A configuration error (exit code 1).
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Failure {
            code: exit::CONFIG,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            // Printing can only fail if stdout/stderr is closed; nothing to do then.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Validate(a) => validate::run(&a),
        Command::Route(a) => route::run(&a),
        Command::Simulate(a) => simulate::run(&a),
        Command::Envoy(a) => envoy::run(&a),
        Command::Curl(a) => curl::run(&a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if !f.message.is_empty() {
                err_line(&format!("meshctl: {}", f.message));
            }
            ExitCode::from(f.code)
        }
    }
}
