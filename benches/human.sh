#!/usr/bin/env bash
# Benchmark: the human report against the JSON report of the same run, on
# generated stacks of 2,000 and 8,000 services with findings on every
# service (a literal password, privileged, the Docker socket, no limits),
# plus a one-line 1.2 MB JSON compose with non-ASCII text and its ASCII twin.
#
#   benches/human.sh [RUNS]      (default 5 runs per format and size)
#
# Floor (issue #9): human output within 2x of JSON at both sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"

if ! command -v hyperfine >/dev/null; then
    apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null
fi
cargo build --release --quiet
bin="$PWD/target/release/hacompile"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import json, sys
out = sys.argv[1]
for n in (2000, 8000):
    lines = ['version: "3.8"', "services:"]
    for i in range(n):
        lines += [
            f"  svc-{i:05d}:",
            f"    image: registry.example.com/team/app-{i % 50}:latest",
            "    privileged: true",
            "    environment:",
            f"      DB_PASSWORD: hunter2-{i}",
            f"      DATABASE_URL: postgres://app:pw-{i}@db/app",
            "    volumes: [/var/run/docker.sock:/var/run/docker.sock]",
            "",
        ]
    open(f"{out}/stack-{n}.yml", "w").write("\n".join(lines) + "\n")
for name, word in (("ascii", "plain-text"), ("unicode", "ünïcödé-tëxt")):
    services = {f"s{i}": {"image": "app:latest", "privileged": True, "labels": {"note": word * 3}} for i in range(6000)}
    open(f"{out}/oneline-{name}.yml", "w").write(json.dumps({"services": services}, ensure_ascii=False) + "\n")
PY

for f in stack-2000 stack-8000 oneline-ascii oneline-unicode; do
    hyperfine -N -i --warmup 1 --runs "$runs" --style none --export-json "$work/$f.json" \
        "$bin lint --format json $work/$f.yml" "$bin lint --format human $work/$f.yml" > /dev/null
done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
print(f"{'input':<18} {'findings':>8} {'json ms':>9} {'human ms':>9} {'human/json':>10}")
for f in ("stack-2000", "stack-8000", "oneline-ascii", "oneline-unicode"):
    r = json.load(open(f"{work}/{f}.json"))["results"]
    j, h = r[0]["median"] * 1000, r[1]["median"] * 1000
    print(f"{f:<18} {'':>8} {j:>9.0f} {h:>9.0f} {h / j:>9.2f}x")
PY
