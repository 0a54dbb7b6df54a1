#!/usr/bin/env bash
# Benchmark: `hacompile lint` (all rules) on generated stacks of 500, 2,000
# and 8,000 services (~11 lines each: images, environment with some literal
# passwords, deploy sections, networks), against `docker stack config -c`
# (which only parses and validates) and compose-lint, measured in the same run.
#
#   benches/lint.sh [RUNS]      (default 10 runs per tool and size; compose-lint 3)
#
# Floors (issue #3), on the 2,000-service file: at least 10x faster than
# `docker stack config`, under 30 MiB peak; time linear in the file size.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"

bash tests/setup.sh > /dev/null
if ! command -v hyperfine >/dev/null || [ ! -x /usr/bin/time ]; then
    apt-get update -qq && apt-get install -y -qq hyperfine time >/dev/null
fi
cargo build --release --quiet
bin="$PWD/target/release/hacompile"
compose_lint="$PWD/target/test-venv/bin/compose-lint"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import sys
out = sys.argv[1]
for n in (500, 2000, 8000):
    lines = ['version: "3.8"', "services:"]
    for i in range(n):
        lines += [
            f"  svc-{i:05d}:",
            f"    image: registry.example.com/team/app-{i % 50}:1.{i % 7}.{i % 11}",
            "    environment:",
            f"      APP_ENV: production",
            (f"      DB_PASSWORD: hunter2-{i}" if i % 10 == 0 else f"      DB_PASSWORD_FILE: /run/secrets/db_{i % 5}"),
            "    deploy:",
            f"      replicas: {1 + i % 3}",
            "      resources: {limits: {cpus: '0.5', memory: 256m}}",
            "      restart_policy: {condition: on-failure, max_attempts: 3}",
            "    networks: [app_net]",
            "",
        ]
    lines += ["networks:", "  app_net:", "    driver: overlay", "    driver_opts: {encrypted: 'true'}"]
    open(f"{out}/stack-{n}.yml", "w").write("\n".join(lines) + "\n")
PY

peak_kib() {
    local max=0 kib
    for ((i = 0; i < 3; i++)); do
        # shellcheck disable=SC2086 # a word list on purpose
        kib=$(/usr/bin/time -f '%M' -o /dev/stdout $1 2>/dev/null | tail -n1)
        [ "$kib" -gt "$max" ] && max=$kib
    done
    echo "$max"
}

results="$work/results.txt"
: > "$results"
for n in 500 2000 8000; do
    f="$work/stack-$n.yml"
    lines=$(wc -l < "$f")
    ours="$bin lint --format json $f"
    docker_cfg="docker stack config -c $f"
    theirs="$compose_lint check --format json --no-env --allow-partial-coverage $f"
    hyperfine -N -i --warmup 1 --runs "$runs" --style none --export-json "$work/t-$n.json" "$ours" "$docker_cfg" > /dev/null
    hyperfine -N -i --runs 3 --style none --export-json "$work/c-$n.json" "$theirs" > /dev/null
    echo "$n $lines $(peak_kib "$ours") $(peak_kib "$docker_cfg") $(peak_kib "$theirs")" >> "$results"
done

python3 - "$work" "$results" <<'PY'
import json, sys
work, results = sys.argv[1], sys.argv[2]
rows = []
for line in open(results):
    n, lines, ours_kib, docker_kib, cl_kib = map(int, line.split())
    t = json.load(open(f"{work}/t-{n}.json"))["results"]
    c = json.load(open(f"{work}/c-{n}.json"))["results"]
    ours, docker, cl = t[0]["median"] * 1000, t[1]["median"] * 1000, c[0]["median"] * 1000
    rows.append((n, lines, ours, docker, cl, ours_kib, docker_kib, cl_kib))
print(f"{'services':>8} {'lines':>7} | {'hacompile ms':>12} {'docker ms':>10} {'compose-lint ms':>15} | {'vs docker':>9} {'vs c-lint':>9} | {'ms/1k svc':>9} | {'peak MiB: hacompile':>19} {'docker':>7} {'compose-lint':>12}")
for n, lines, ours, docker, cl, ok, dk, ck in rows:
    print(f"{n:>8} {lines:>7} | {ours:>12.1f} {docker:>10.1f} {cl:>15.1f} | {docker/ours:>8.1f}x {cl/ours:>8.1f}x | {ours/n*1000:>9.2f} | {ok/1024:>19.1f} {dk/1024:>7.1f} {ck/1024:>12.1f}")
small, mid, big = rows
growth = (big[2] / big[0]) / (small[2] / small[0])
print(f"linearity: time per service at 8,000 / at 500 = {growth:.2f} (1.0 is linear)")
ratio = mid[3] / mid[2]
ok = ratio >= 10 and mid[5] < 30 * 1024 and growth < 1.5
print(f"floor (2,000 services: >= 10x faster than docker stack config, < 30 MiB; linear): {'met' if ok else 'NOT MET'} ({ratio:.1f}x, {mid[5]/1024:.1f} MiB)")
sys.exit(0 if ok else 1)
PY
