#!/usr/bin/env python3
"""End-to-end check of the canary demo's metrics with a real Prometheus server.

1. Builds and starts the canary demo (`example-canary --serve 127.0.0.1:PORT`), which serves
   Istio's standard metrics at /metrics from the start and keeps serving after its phases.
2. Starts Prometheus (Debian's `prometheus` package) on loopback with a scrape configuration
   pointing at the demo's /metrics every second, its data in a temporary directory.
3. Once the demo has printed its per-version table, queries
   `sum by (destination_version) (istio_requests_total)` from Prometheus's HTTP API until
   Prometheus has scraped the final values (at most 60 tries, one a second), and checks:
   - Prometheus's sums equal the demo's `requests` column (what its /metrics said);
   - they also equal the demo's `client` column: the responses the client got from each
     version's pods, which the demo counts without the metrics (when some requests ended
     without a response, the totals must still agree);
   - the total is every request the demo sent (3 phases x --requests).

Everything listens on 127.0.0.1 only; both processes are stopped at the end (by their ids).

Exit 0: every check passed. Exit 1: a check failed, a process failed, or `prometheus` could be
installed but the installation failed, or it is missing and --install was not given. Exit 0
with a SKIPPED banner (on stdout and stderr) only with --install, when `prometheus` is not
installed and no installable package exists (no apt-get, or no candidate for the package).

Usage: .ci/prometheus_e2e.py [--install]   (--install: apt-get install prometheus if missing)
Needs Python 3 (standard library only), cargo, and for the check itself `prometheus`.
"""

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUESTS_PER_PHASE = 1000
PHASES = 3
QUERY = "sum by (destination_version) (istio_requests_total)"


def log(msg):
    print(f"prometheus-e2e: {msg}", flush=True)


class NotInstallable(Exception):
    """No package to install: the only case where the check may be skipped."""


def apt(args, timeout):
    """Runs apt-get (through `sudo -n` when not root); returns the completed process."""
    cmd = ["apt-get", *args]
    if os.geteuid() != 0 and shutil.which("sudo"):
        cmd = ["sudo", "-n", *cmd]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def candidate():
    """The version apt would install, or None."""
    done = subprocess.run(["apt-cache", "policy", "prometheus"], capture_output=True, text=True,
                          timeout=120)
    for line in done.stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate":
            value = value.strip()
            return None if value in ("", "(none)") else value
    return None


def install_prometheus():
    """apt-get install prometheus. Raises NotInstallable when there is no package to install,
    RuntimeError when there is one and its installation failed."""
    if not shutil.which("apt-get") or not shutil.which("apt-cache"):
        raise NotInstallable("there is no apt-get on this machine")
    log("`prometheus` is not installed: apt-get update && apt-get install prometheus")
    done = apt(["update", "-qq"], timeout=600)
    if done.returncode != 0:
        # Without a fresh package list there may still be a candidate from an earlier update.
        log(f"apt-get update failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    version = candidate()
    if version is None:
        raise NotInstallable("apt has no candidate for the package `prometheus`")
    done = apt(["install", "-y", "-q", "--no-install-recommends", "prometheus"], timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get install prometheus ({version}) failed "
                           f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
    found = shutil.which("prometheus")
    if not found:
        raise RuntimeError(f"apt-get installed prometheus {version} but no `prometheus` is on "
                           "PATH")
    log(f"installed prometheus {version}")
    return found


def skipped(reason):
    banner = "#" * 78
    text = (f"\n{banner}\n# prometheus-e2e: SKIPPED: {reason}.\n"
            "# The end-to-end check of the demo's metrics with a real Prometheus DID NOT RUN.\n"
            f"{banner}\n")
    print(text, flush=True)
    print(text, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_demo():
    """Builds the demo (a debug build) and returns the path of its executable, wherever the
    target directory is."""
    done = subprocess.run(
        ["cargo", "build", "-p", "example-canary", "--bin", "example-canary",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True,
    )
    for line in done.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact" and msg.get("executable")
                and msg.get("target", {}).get("name") == "example-canary"):
            return msg["executable"]
    raise RuntimeError("cargo built no example-canary executable")


def query(base, promql):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {body}")
    return {
        item["metric"].get("destination_version", ""): float(item["value"][1])
        for item in body["data"]["result"]
    }


def demo_table(lines):
    """The demo's table after `== telemetry`: `version requests client rate p99`, as two dicts
    (`requests` from its /metrics, `client` counted by the client)."""
    metrics, client = {}, {}
    table = False
    for line in lines:
        if line.startswith("== telemetry"):
            table = True
            continue
        if not table:
            continue
        words = line.split()
        if words[:1] == ["destination_version"]:
            continue
        try:
            requests, seen = float(words[1]), float(words[2])
        except (IndexError, ValueError):
            break
        if requests:
            metrics[words[0]] = requests
        client[words[0]] = seen
    return metrics, client


def problems(prom, metrics, client, sent):
    """What disagrees, as sentences (none: the check passes)."""
    out = []
    if prom != metrics:
        out.append(f"Prometheus's {QUERY} is {prom}, the demo's /metrics said {metrics}")
    total = sum(prom.values())
    if total != sent:
        out.append(f"Prometheus counts {total:g} requests, the demo sent {sent}")
    if sum(client.values()) != sent:
        out.append(f"the demo's client counted {sum(client.values()):g} requests, it sent {sent}")
    versions = {v: n for v, n in client.items() if n and v not in ("-", "no-response")}
    unattributed = sum(client.values()) - sum(versions.values())
    if unattributed == 0 and prom != versions:
        out.append(f"Prometheus's {QUERY} is {prom}, the client got {versions} by version")
    for v, n in versions.items():
        if prom.get(v, 0.0) < n:
            out.append(f"Prometheus counts {prom.get(v, 0.0):g} requests to {v}, the client got "
                       f"{n:g} responses from its pods")
    return out


def self_check():
    """`problems` must see a disagreement: a check that cannot fail is no check."""
    ok = {"v1": 9.0, "v2": 1.0}
    assert problems(ok, ok, ok, 10) == []
    assert problems({"v1": 9.0, "v2": 2.0}, ok, ok, 10)
    assert problems({"v1": 8.0, "v2": 2.0}, {"v1": 8.0, "v2": 2.0}, ok, 10)
    assert problems({}, ok, ok, 10)
    assert problems(ok, ok, {"v1": 9.0}, 10)
    assert not problems({"v1": 9.0, "unknown": 1.0}, {"v1": 9.0, "unknown": 1.0},
                        {"v1": 9.0, "no-response": 1.0}, 10)


def reader(stream):
    """The lines of `stream`, read by a thread, so that waiting for one can time out."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def run(binary):
    demo_bin = build_demo()
    demo_port, prom_port = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="mesh-prom-")
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "- job_name: canary\n"
            f"  static_configs: [{{targets: ['127.0.0.1:{demo_port}']}}]\n"
        )
    prom_log = open(os.path.join(work, "prometheus.log"), "w")
    procs = []
    try:
        demo = subprocess.Popen(
            [demo_bin, "--serve", f"127.0.0.1:{demo_port}", "--requests", str(REQUESTS_PER_PHASE)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        procs.append(demo)
        prom = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=prom_log, stderr=subprocess.STDOUT,
        )
        procs.append(prom)
        base = f"http://127.0.0.1:{prom_port}"

        # The demo's output up to the line saying it keeps serving (at most 300 s).
        lines, pending = [], reader(demo.stdout)
        deadline = time.monotonic() + 300
        while True:
            try:
                line = pending.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                log("FAILED: the demo did not finish its phases within 300 s")
                break
            if line is None:
                break
            lines.append(line)
            if line.startswith("serving http://"):
                break
        print("\n".join(lines[-8:]), flush=True)
        if demo.poll() is not None:
            log(f"FAILED: the demo exited ({demo.returncode}) instead of serving:\n"
                + "\n".join(lines))
            return 1
        metrics, client = demo_table(lines)
        if not metrics:
            log("FAILED: the demo printed no per-version counts:\n" + "\n".join(lines))
            return 1
        sent = PHASES * REQUESTS_PER_PHASE
        log(f"the demo's /metrics: {metrics}; its client: {client}")

        got, found = {}, ["no answer from Prometheus"]
        for _ in range(60):
            time.sleep(1)
            if prom.poll() is not None:
                log(f"FAILED: prometheus exited ({prom.returncode})")
                break
            try:
                got = query(base, QUERY)
            except (OSError, urllib.error.URLError, RuntimeError, ValueError) as e:
                found = [f"no answer from Prometheus: {e}"]
                continue
            found = problems(got, metrics, client, sent)
            if not found:
                break
        log(f"Prometheus: {QUERY} = {got}")
        if found:
            prom_log.flush()
            with open(os.path.join(work, "prometheus.log")) as f:
                tail = f.read()[-3000:]
            log("FAILED:\n  " + "\n  ".join(found) + f"\nprometheus's log (end):\n{tail}")
            return 1
        try:
            # Over the whole run, as the demo computes it (not a rate: the run may be shorter
            # than two scrapes).
            p99 = query(base, "histogram_quantile(0.99, sum by (le, destination_version) "
                              "(istio_request_duration_milliseconds_bucket))")
            log("p99 by destination_version (ms), from Prometheus: "
                + ", ".join(f"{v}={p:.1f}" for v, p in sorted(p99.items())))
        except (OSError, RuntimeError, ValueError) as e:
            log(f"(no p99 from Prometheus: {e}; not part of the check)")
        log(f"ok: Prometheus's counts equal the demo's ({sent} requests)")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        prom_log.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    self_check()
    binary = shutil.which("prometheus")
    if not binary:
        if "--install" not in sys.argv[1:]:
            log("FAILED: the `prometheus` binary is not installed; run with --install to "
                "apt-get install it (Debian's package `prometheus`)")
            return 1
        try:
            binary = install_prometheus()
        except NotInstallable as e:
            skipped(f"`prometheus` is not installed and cannot be: {e}")
            return 0
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            log(f"FAILED: {e}")
            return 1
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    log(f"using {binary}: {(version.stdout or version.stderr).splitlines()[0]}")
    return run(binary)


if __name__ == "__main__":
    sys.exit(main())
