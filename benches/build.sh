#!/usr/bin/env bash
# Benchmark: `hacompile build` on the bundled example against
# `docker stack config -c` on the stack it produces, measured in the same run.
# Prints the median wall time (hyperfine) and the peak memory (max RSS over
# the runs, /usr/bin/time) of each, and the ratios.
#
#   benches/build.sh [RUNS]      (default 200)
#
# Floors (issue #2): build under 10 ms median and under 20 MiB peak.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200}"

if ! command -v hyperfine >/dev/null || [ ! -x /usr/bin/time ]; then
    apt-get update -qq && apt-get install -y -qq hyperfine time >/dev/null
fi
command -v docker >/dev/null || { echo "bench: the docker CLI is needed" >&2; exit 1; }

cargo build --release --quiet
bin="$PWD/target/release/hacompile"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp examples/ha-postgres.toml examples/hacompile.lock "$work/"
"$bin" build "$work/ha-postgres.toml" -o "$work/out"

build="$bin build $work/ha-postgres.toml --stack-only"
peer="docker stack config -c $work/out/docker-stack.yml"

hyperfine -N --warmup 5 --runs "$runs" --style none --export-json "$work/times.json" "$build" "$peer" > /dev/null

peak_kib() {
    local max=0 kib
    for ((i = 0; i < 20; i++)); do
        # shellcheck disable=SC2086 # the command is a word list on purpose
        kib=$(/usr/bin/time -f '%M' $1 2>&1 > /dev/null | tail -n1)
        [ "$kib" -gt "$max" ] && max=$kib
    done
    echo "$max"
}
build_kib=$(peak_kib "$build")
peer_kib=$(peak_kib "$peer")

python3 - "$work/times.json" "$build_kib" "$peer_kib" "$runs" <<'PY'
import json, sys
times = json.load(open(sys.argv[1]))["results"]
build_ms, peer_ms = (r["median"] * 1000 for r in times)
build_kib, peer_kib, runs = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"{'command (' + runs + ' runs each)':<36} {'median ms':>10} {'peak MiB':>9}")
print(f"{'hacompile build (example)':<36} {build_ms:>10.2f} {build_kib / 1024:>9.1f}")
print(f"{'docker stack config -c (its stack)':<36} {peer_ms:>10.2f} {peer_kib / 1024:>9.1f}")
print(f"ratio: hacompile build is {peer_ms / build_ms:.1f}x faster (median) and peaks at "
      f"{peer_kib / build_kib:.1f}x less memory than docker stack config")
ok = build_ms < 10 and build_kib < 20 * 1024
print(f"floor (build < 10 ms median, < 20 MiB peak): {'met' if ok else 'NOT MET'}")
sys.exit(0 if ok else 1)
PY
