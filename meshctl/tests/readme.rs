//! Every shell command in every Markdown file of the repository runs as written.
//!
//! The test lists the repository's Markdown files (`git ls-files '*.md'`, or a walk of the tree
//! when git is not available), takes every line of their fenced `sh` blocks (`shell` and `bash`
//! too), and runs each line with `sh -c` from the repository root, so redirections, pipes and
//! `$?` work as in a terminal. A line must exit with code 0, unless it ends with the comment
//! `# exit N`, which documents the code N it exits with instead.
//!
//! * A line ending with `\` continues on the next; blank lines and lines that hold only a
//!   comment are not commands. Each line runs on its own, from the root: a `cd` does not carry
//!   over to the next line.
//! * `console` and `text` blocks show output; they are documentation, not commands, and are not
//!   run.
//! * `cargo run -p meshctl -- ARGS` (also with `-q`) is run as the `meshctl` binary Cargo built
//!   for this test, with the same ARGS: the same program, without a nested cargo.
//! * A command that cannot run here matches one of the [`SKIP`] rules, and is reported with the
//!   rule's reason on stderr (shown even when the test harness captures output). Every other line
//!   runs. Each rule must still match some line, so a rule cannot outlive the commands it was
//!   written for.
//!
//! Unix only: the commands are shell commands.
#![cfg(unix)]

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

/// How long one command may take before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(120);

/// A command that is not run, and why.
struct Skip {
    /// Matches the command line.
    pattern: &'static str,
    /// Printed with every command the rule skips.
    reason: &'static str,
}

/// The commands that cannot run in CI. Everything else in an `sh` block runs.
const SKIP: &[Skip] = &[
    Skip {
        pattern: r"^cargo run --release -p example-canary\b",
        reason: "a release build of the demo takes minutes; its configuration and template are \
                 checked by `cargo test -p example-canary`, which CI runs",
    },
    Skip {
        pattern: r"^cargo test --workspace\b",
        reason: "CI's own test command (`.ci/run`), which runs this test: it would run itself",
    },
    Skip {
        pattern: r"^cargo bench\b",
        reason: "benchmarks measure for minutes and assert nothing",
    },
    Skip {
        pattern: r"^examples/bench-vs-envoy/run\.sh\b",
        reason: "installs Envoy from PyPI and runs a benchmark of several minutes",
    },
    Skip {
        pattern: r"^cargo install cargo-fuzz\b|\bcargo fuzz\b",
        reason: "cargo-fuzz is not installed in CI, and a fuzzing run takes ten minutes",
    },
    Skip {
        pattern: r"^envoy\b",
        reason: "needs an Envoy binary, which CI machines do not have \
                 (`examples/bench-vs-envoy/run.sh` installs one)",
    },
    Skip {
        pattern: r"^cargo build --release\b|^/usr/bin/time\b",
        reason: "a release build of minutes and a measurement run: CI builds and tests the same \
                 code as debug builds",
    },
    Skip {
        pattern: r"^(\w+=\S* )*cargo test .*--release\b",
        reason: "a release-mode measurement run of minutes: CI runs the same tests as debug \
                 builds, except the ones marked #[ignore] for their length",
    },
    Skip {
        pattern: r"^cargo run (-q )?-p meshctl -- \w+ (--kubeconfig|--context)\b",
        reason: "reads a Kubernetes cluster, and no cluster runs where this test runs \
                 (meshctl/tests/kube.rs runs these commands against a loopback stand-in)",
    },
];

/// One command line from a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    /// The Markdown file, relative to the repository root.
    file: String,
    /// The line number where the command starts (from 1).
    number: usize,
    /// The command, continuation lines joined.
    command: String,
    /// The exit code it must have.
    expect: i32,
}

/// The command lines of the `sh` blocks of one Markdown text, with their line numbers.
///
/// Fails on a fence that is never closed: everything after it would silently not be run.
fn sh_lines(markdown: &str) -> Result<Vec<(usize, String)>, String> {
    let fence = Regex::new(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)").unwrap();
    let mut out = Vec::new();
    // Inside a fenced block: (its fence, its indentation, is it a shell block, where it began).
    let mut open: Option<(String, usize, bool, usize)> = None;
    // A command continued with a trailing backslash: (first line, text so far).
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in markdown.lines().enumerate() {
        let number = i + 1;
        match &open {
            None => {
                if let Some(c) = fence.captures(raw) {
                    let lang = c[3].split(',').next().unwrap_or("").to_ascii_lowercase();
                    let shell = matches!(lang.as_str(), "sh" | "shell" | "bash");
                    open = Some((c[2].to_owned(), c[1].len(), shell, number));
                }
            }
            Some((marks, indent, shell, _)) => {
                let trimmed = raw.trim();
                let closes = trimmed.len() >= marks.len()
                    && trimmed
                        .chars()
                        .all(|ch| ch == marks.chars().next().unwrap_or('`'));
                if closes {
                    if let Some((line, text)) = pending.take() {
                        return Err(format!(
                            "line {line}: `{text}` ends with a backslash but the block ends (line {number})"
                        ));
                    }
                    open = None;
                    continue;
                }
                if !shell {
                    continue;
                }
                let body = strip_indent(raw, *indent);
                if let Some((line, mut text)) = pending.take() {
                    let (part, more) = continued(body);
                    text.push(' ');
                    text.push_str(part.trim());
                    if more {
                        pending = Some((line, text));
                    } else {
                        out.push((line, text));
                    }
                    continue;
                }
                let t = body.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let (part, more) = continued(t);
                if more {
                    pending = Some((number, part.trim().to_owned()));
                } else {
                    out.push((number, part.trim().to_owned()));
                }
            }
        }
    }
    match open {
        Some((_, _, _, start)) => Err(format!("line {start}: a fenced block is never closed")),
        None => Ok(out),
    }
}

/// `line` without up to `indent` leading spaces (the fence's own indentation).
fn strip_indent(line: &str, indent: usize) -> &str {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    &line[spaces.min(indent)..]
}

/// Splits off a trailing continuation backslash: `(text, continues)`.
fn continued(line: &str) -> (&str, bool) {
    let t = line.trim_end();
    match t.strip_suffix('\\') {
        Some(rest) => (rest, true),
        None => (t, false),
    }
}

/// The exit code a command documents with a trailing `# exit N`, else 0.
fn expected_exit(command: &str) -> i32 {
    let re = Regex::new(r"#\s*exit\s+(\d+)\s*$").unwrap();
    re.captures(command)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or(0)
}

/// The skip rule a command matches, if any.
fn skip_rule(command: &str) -> Option<&'static Skip> {
    SKIP.iter()
        .find(|s| Regex::new(s.pattern).unwrap().is_match(command))
}

/// `command` with every `cargo run [-q] -p meshctl [-q] --` replaced by the built binary.
fn with_meshctl(command: &str, meshctl: &Path) -> String {
    let re =
        Regex::new(r"cargo run(?: -q| --quiet)* -p meshctl(?: -q| --quiet)* --(?:\s|$)").unwrap();
    let quoted = format!(
        "'{}' ",
        meshctl.display().to_string().replace('\'', r"'\''")
    );
    re.replace_all(command, regex::NoExpand(&quoted))
        .trim_end()
        .to_owned()
}

/// What running a command gave.
#[derive(Debug)]
struct Ran {
    /// The exit code (`None`: killed by a signal or by the timeout).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Runs `command` with `sh -c` in `dir`, stdin closed, for at most `limit`.
fn run(command: &str, dir: &Path, limit: Duration) -> Ran {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A process group of its own, so a timeout stops the whole pipeline, not only `sh`.
        .process_group(0)
        .spawn()
        .expect("sh starts");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            timed_out = true;
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ran {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
    }
}

/// Runs `line` (unless a rule skips it) and says what went wrong, if anything.
fn check(line: &Line, root: &Path, meshctl: &Path, limit: Duration) -> Result<(), String> {
    let command = with_meshctl(&line.command, meshctl);
    let ran = run(&command, root, limit);
    if ran.code == Some(line.expect) && !ran.timed_out {
        return Ok(());
    }
    let got = if ran.timed_out {
        format!("no exit after {limit:?}")
    } else {
        match ran.code {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".to_owned(),
        }
    };
    Err(format!(
        "{}:{}: `{}`: expected exit {}, got {got}\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
        line.file,
        line.number,
        line.command,
        line.expect,
        tail(&ran.stdout),
        tail(&ran.stderr)
    ))
}

/// The last lines of `text`, enough to see why a command failed.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The repository root (the parent of this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("meshctl is inside the repository")
        .to_path_buf()
}

/// The repository's Markdown files, relative to `root`, sorted.
fn markdown_files(root: &Path) -> Vec<String> {
    let git = Command::new("git")
        .args(["ls-files", "-z", "--", "*.md"])
        .current_dir(root)
        .output();
    let mut files: Vec<String> = match git {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout)
            .expect("UTF-8 paths")
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => {
            let mut found = Vec::new();
            walk(root, root, &mut found);
            found
        }
    };
    files.sort();
    files
}

/// Every `*.md` below `dir`, skipping hidden directories and `target`.
fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                walk(root, &path, found);
            }
        } else if name.ends_with(".md") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            found.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Every command line of every Markdown file under `root`.
fn all_lines(root: &Path) -> Vec<Line> {
    let mut lines = Vec::new();
    for file in markdown_files(root) {
        let text =
            std::fs::read_to_string(root.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let parsed = sh_lines(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (number, command) in parsed {
            lines.push(Line {
                expect: expected_exit(&command),
                file: file.clone(),
                number,
                command,
            });
        }
    }
    lines
}

/// Writes to the real stderr: the test harness captures `print!`/`eprint!` only, and a skipped
/// command should be visible in every run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn every_sh_command_in_the_markdown_files_runs_as_documented() {
    let root = root();
    let meshctl = Path::new(env!("CARGO_BIN_EXE_meshctl"));
    let lines = all_lines(&root);
    assert!(
        lines.iter().any(|l| l.file == "README.md"),
        "the top-level README's commands were found"
    );
    let mut failures = Vec::new();
    let (mut ran, mut skipped) = (0, 0);
    for line in &lines {
        if let Some(rule) = skip_rule(&line.command) {
            skipped += 1;
            report(&format!(
                "readme: skipped {}:{}: `{}`: {}",
                line.file, line.number, line.command, rule.reason
            ));
            continue;
        }
        ran += 1;
        println!(
            "readme: running {}:{}: {}",
            line.file, line.number, line.command
        );
        if let Err(e) = check(line, &root, meshctl, TIMEOUT) {
            failures.push(e);
        }
    }
    report(&format!(
        "readme: {ran} commands ran, {skipped} skipped, {} failed",
        failures.len()
    ));
    assert!(
        ran >= 10,
        "only {ran} commands ran: is the parser finding the blocks?"
    );
    assert!(failures.is_empty(), "\n\n{}", failures.join("\n\n"));
}

#[test]
fn every_skip_rule_is_still_needed() {
    let lines = all_lines(&root());
    for rule in SKIP {
        let re = Regex::new(rule.pattern).unwrap();
        assert!(
            lines.iter().any(|l| re.is_match(&l.command)),
            "no command matches the skip rule {:?} any more: remove it",
            rule.pattern
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The parser and the runner on their own.

#[test]
fn only_shell_blocks_are_commands() {
    let md = "\
# Title

```sh
echo one   # a comment
# only a comment

echo two # exit 2
```

```console
$ echo not run
```

```rust
fn main() {}
```

  ```bash
  echo three
  ```

~~~shell
echo four
~~~
";
    let lines = sh_lines(md).unwrap();
    assert_eq!(
        lines,
        [
            (4, "echo one   # a comment".to_owned()),
            (7, "echo two # exit 2".to_owned()),
            (19, "echo three".to_owned()),
            (23, "echo four".to_owned()),
        ]
    );
}

#[test]
fn continuation_lines_are_joined() {
    let md = "```sh\ncargo run -p meshctl -- route \\\n    -f x.yaml \\\n    GET http://r/\necho next\n```\n";
    assert_eq!(
        sh_lines(md).unwrap(),
        [
            (
                2,
                "cargo run -p meshctl -- route -f x.yaml GET http://r/".to_owned()
            ),
            (5, "echo next".to_owned()),
        ]
    );
}

#[test]
fn a_longer_fence_is_not_closed_by_a_shorter_one() {
    let md = "````sh\necho a\n```\necho b\n````\necho c\n";
    // The inner ``` is content of the ```` block, which ends at line 5: `echo c` is prose.
    assert_eq!(
        sh_lines(md).unwrap(),
        [
            (2, "echo a".to_owned()),
            (3, "```".to_owned()),
            (4, "echo b".to_owned())
        ]
    );
}

#[test]
fn an_unclosed_block_is_an_error() {
    let err = sh_lines("text\n```sh\necho a\n").unwrap_err();
    assert!(err.contains("line 2"), "{err}");
    let err = sh_lines("```sh\necho a \\\n```\n").unwrap_err();
    assert!(err.contains("backslash"), "{err}");
}

#[test]
fn exit_codes_come_from_a_trailing_comment() {
    assert_eq!(expected_exit("meshctl validate bad.yaml  # exit 1"), 1);
    assert_eq!(expected_exit("meshctl route x # exit 3"), 3);
    assert_eq!(
        expected_exit("meshctl validate ok/   # FILE:LINE: SEVERITY"),
        0
    );
    assert_eq!(expected_exit("echo '# exit 4 is not at the end' x"), 0);
    assert_eq!(expected_exit("plain"), 0);
}

#[test]
fn skip_rules_match_what_they_name_and_nothing_else() {
    for skipped in [
        "cargo run --release -p example-canary   # the main job",
        "cargo test --workspace                  # all tests",
        "cargo bench -p mesh-routing --bench route",
        "examples/bench-vs-envoy/run.sh --rounds 1",
        "cargo install cargo-fuzz",
        "RUSTC_BOOTSTRAP=1 cargo fuzz run -O load fuzz/corpus/load -- -max_total_time=600",
        "envoy --mode validate -c envoy.yaml",
        "MESH_RELOAD_STORM_SECS=30 cargo test -p mesh-tests --release --test e2e reload_storm",
        "cargo test -p mesh-routing --release --test hostile_config -- --nocapture",
        "cargo build --release -p mesh-model --example hostile",
        "/usr/bin/time -v target/release/examples/hostile routes 40000   # or any case above",
        "cargo run -q -p meshctl -- validate --kubeconfig ~/.kube/config",
        "cargo run -q -p meshctl -- route --context staging GET http://reviews/",
    ] {
        assert!(skip_rule(skipped).is_some(), "not skipped: {skipped}");
    }
    for run in [
        "cargo run -q -p meshctl -- validate examples/istio/",
        "cargo run -q -p meshctl -- envoy -f examples/istio/ -o envoy.yaml",
        "cargo run -q -p meshctl -- route -f a/ --kubeconfig k GET http://a/  # exit 2",
        "cargo test -p example-canary",
        "cargo run -p example-canary",
        "echo envoy",
        "cargo build -p meshctl",
    ] {
        assert!(skip_rule(run).is_none(), "skipped: {run}");
    }
}

#[test]
fn cargo_run_meshctl_becomes_the_built_binary() {
    let bin = Path::new("/x/it's/meshctl");
    assert_eq!(
        with_meshctl("cargo run -q -p meshctl -- validate a/ # exit 1", bin),
        r"'/x/it'\''s/meshctl' validate a/ # exit 1"
    );
    assert_eq!(
        with_meshctl("cargo run -p meshctl -- envoy -f a/ | head -1", bin),
        r"'/x/it'\''s/meshctl' envoy -f a/ | head -1"
    );
    assert_eq!(
        with_meshctl("cargo run -p meshctl --quiet -- --help", bin),
        r"'/x/it'\''s/meshctl' --help"
    );
    // Another package, or a look-alike, is left alone.
    for other in [
        "cargo run -p meshctl-extra -- x",
        "cargo run -p example-canary",
    ] {
        assert_eq!(with_meshctl(other, bin), other);
    }
}

fn line(command: &str) -> Line {
    Line {
        file: "TEST.md".to_owned(),
        number: 7,
        command: command.to_owned(),
        expect: expected_exit(command),
    }
}

#[test]
fn a_failing_command_is_reported_with_its_place_and_output() {
    let dir = std::env::temp_dir();
    let meshctl = Path::new(env!("CARGO_BIN_EXE_meshctl"));
    let limit = Duration::from_secs(30);
    let err = check(
        &line("echo seen-on-stdout; echo seen-on-stderr >&2; exit 3"),
        &dir,
        meshctl,
        limit,
    )
    .unwrap_err();
    assert!(err.starts_with("TEST.md:7: `echo seen-on-stdout"), "{err}");
    assert!(err.contains("expected exit 0, got exit 3"), "{err}");
    assert!(
        err.contains("seen-on-stdout") && err.contains("seen-on-stderr"),
        "{err}"
    );
    // A documented non-zero exit must happen: exiting 0 instead is a failure too.
    let err = check(&line("true # exit 1"), &dir, meshctl, limit).unwrap_err();
    assert!(err.contains("expected exit 1, got exit 0"), "{err}");
    assert!(check(&line("false # exit 1"), &dir, meshctl, limit).is_ok());
}

#[test]
fn shell_features_work_and_meshctl_runs_from_the_root() {
    let root = root();
    let meshctl = Path::new(env!("CARGO_BIN_EXE_meshctl"));
    let limit = Duration::from_secs(60);
    for ok in [
        "echo hello | grep -q hello",
        "false; test $? -eq 1",
        "cargo run -q -p meshctl -- validate examples/istio/ > /dev/null 2>&1",
        "cargo run -q -p meshctl -- validate meshctl/tests/fixtures/invalid.yaml  # exit 1",
    ] {
        assert_eq!(check(&line(ok), &root, meshctl, limit), Ok(()), "{ok}");
    }
    // The rewrite really runs meshctl: a bad argument is a usage error (2), not cargo's error.
    let err = check(
        &line("cargo run -q -p meshctl -- no-such-command"),
        &root,
        meshctl,
        limit,
    )
    .unwrap_err();
    assert!(err.contains("got exit 2"), "{err}");
}

#[test]
fn a_hung_command_is_stopped() {
    let dir = std::env::temp_dir();
    let meshctl = Path::new(env!("CARGO_BIN_EXE_meshctl"));
    let started = Instant::now();
    let err = check(&line("sleep 30"), &dir, meshctl, Duration::from_millis(300)).unwrap_err();
    assert!(err.contains("no exit after"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
}
