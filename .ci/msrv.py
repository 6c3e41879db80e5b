#!/usr/bin/env python3
"""Checks the workspace's MSRV promise against the dependency graph.

For each published crate, the packages its default build compiles are listed with
`cargo tree -p CRATE -e normal,build --target all` (normal and build dependencies with the
features a default build of that crate turns on, for every target platform; dev-dependencies,
benches and examples are not part of the promise), and the `rust_version` of each comes from
`cargo metadata`. The highest of them is the least Rust version that can build the crate with
the locked dependencies (Cargo.lock). The script fails (exit 1) when that is higher than the
crate's declared `rust-version`, naming the packages that need more.

What this cannot see: language features and standard-library APIs the workspace's own code
uses. Those are checked by building with the declared toolchain, which `.ci/run` does only when
that toolchain is installed (CI machines usually have one toolchain).

Usage: .ci/msrv.py             check, print one line per crate
       .ci/msrv.py --declared  print the declared rust-version of the published crates
                               (one value; fails if they differ) and exit

Needs Python 3 (standard library only) and cargo.
"""

import json
import subprocess
import sys

# The crates whose rust-version is a promise to users (the examples and `mesh-tests` are not
# published).
PUBLISHED = ["mesh-model", "mesh-routing", "mesh-resilience", "mesh-tower", "mesh-kube", "meshctl"]


def version_key(text):
    """`"1.88"` -> `(1, 88, 0)`; missing parts are 0."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def show(key):
    """`(1, 88, 0)` -> `"1.88"` (the patch is shown only when it is not 0)."""
    return ".".join(str(p) for p in (key if key[2] else key[:2]))


def cargo(*args):
    done = subprocess.run(["cargo", *args], check=True, capture_output=True, text=True)
    return done.stdout


def compiled_packages(crate):
    """The `(name, version)` of every package a default build of `crate` compiles."""
    out = cargo(
        "tree", "--locked", "-p", crate, "-e", "normal,build", "--target", "all",
        "--prefix", "none", "--format", "{p}",
    )
    packages = set()
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].startswith("v"):
            packages.add((words[0], words[1][1:]))
    return packages


def main(argv):
    meta = json.loads(cargo("metadata", "--format-version", "1", "--locked"))
    rust_version = {(p["name"], p["version"]): p.get("rust_version") for p in meta["packages"]}
    members = {
        p["name"]: p for p in meta["packages"] if p["id"] in set(meta["workspace_members"])
    }
    missing = [c for c in PUBLISHED if c not in members]
    if missing:
        print(f"msrv: not workspace members: {', '.join(missing)}", file=sys.stderr)
        return 2

    declared = {}
    for crate in PUBLISHED:
        text = members[crate].get("rust_version")
        if not text:
            print(f"msrv: {crate} declares no rust-version", file=sys.stderr)
            return 1
        declared[crate] = version_key(text)

    if argv[1:] == ["--declared"]:
        values = set(declared.values())
        if len(values) != 1:
            print("msrv: the published crates declare different rust-versions", file=sys.stderr)
            return 1
        print(show(values.pop()))
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2

    failed = False
    ours = {(p["name"], p["version"]) for p in members.values()}
    for crate in PUBLISHED:
        # The workspace's own crates are left out: their rust-version is what is being checked.
        packages = compiled_packages(crate) - ours
        needed = max(
            (version_key(rust_version[p]) for p in packages if rust_version.get(p)),
            default=(0, 0, 0),
        )
        setters = sorted(
            f"{n} {v}" for (n, v) in packages
            if rust_version.get((n, v)) and version_key(rust_version[(n, v)]) == needed
        )
        verdict = "ok"
        if needed > declared[crate]:
            verdict = "FAIL: the declared rust-version is too low"
            failed = True
        print(
            f"{crate:<16} declares {show(declared[crate]):<5} needs {show(needed):<5} "
            f"({len(packages)} dependencies; highest: {', '.join(setters) or 'none declares one'}) {verdict}"
        )
    if failed:
        print(
            "msrv: raise `rust-version` in the workspace Cargo.toml (and the READMEs' MSRV lines), "
            "or pin older dependencies in Cargo.lock",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
