#!/usr/bin/env bash
# Benchmark: pinning 50 distinct tags in a local registry with `hacompile pin`
# (one stack file with 50 services), against a loop of `skopeo inspect` over
# the same 50, measured in the same run.
#
#   benches/pin.sh [RUNS]      (default 5)
#
# Floor (issue #4): at least 10x faster than the skopeo loop.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"

bash tests/setup.sh > /dev/null
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release --quiet
bin="$PWD/target/release/hacompile"
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/data
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/config.yml" > /dev/null 2>&1 &
reg=$!
trap 'kill $reg 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

python3 tests/registry/make-layout.py "$work/layout" bench > /dev/null
{
    echo "services:"
    for i in $(seq -w 1 50); do
        skopeo copy -q --all --dest-tls-verify=false "oci:$work/layout:multi" "docker://127.0.0.1:$port/bench/app-$i:1.0"
        printf '  app-%s:\n    image: 127.0.0.1:%s/bench/app-%s:1.0\n' "$i" "$port" "$i"
    done
} > "$work/stack.template.yml"

cat > "$work/skopeo-loop.sh" <<SH
#!/usr/bin/env bash
for i in \$(seq -w 1 50); do
    skopeo inspect --tls-verify=false --format '{{.Digest}}' docker://127.0.0.1:$port/bench/app-\$i:1.0 > /dev/null
done
SH
chmod +x "$work/skopeo-loop.sh"
export DOCKER_CONFIG="$work/empty-docker-config"
mkdir -p "$DOCKER_CONFIG"

hyperfine -N --warmup 1 --runs "$runs" --style none --export-json "$work/t.json" \
    --prepare "cp $work/stack.template.yml $work/stack.yml" \
    "$bin pin $work/stack.yml --insecure-registry 127.0.0.1:$port" \
    "$work/skopeo-loop.sh" > /dev/null 2>&1
cp "$work/stack.template.yml" "$work/stack.yml"
"$bin" pin "$work/stack.yml" --insecure-registry "127.0.0.1:$port" 2> /dev/null
[ "$(grep -c '@sha256:' "$work/stack.yml")" = 50 ] || { echo "bench: pin did not pin all 50 images" >&2; exit 1; }

python3 - "$work/t.json" <<'PY'
import json, sys
ours, loop = (r["median"] * 1000 for r in json.load(open(sys.argv[1]))["results"])
print(f"{'command (50 tags, local registry)':<36} {'median ms':>10}")
print(f"{'hacompile pin (one stack, 50 images)':<36} {ours:>10.1f}")
print(f"{'skopeo inspect loop (50 calls)':<36} {loop:>10.1f}")
print(f"ratio: hacompile pin is {loop / ours:.1f}x faster than the skopeo loop")
ok = loop / ours >= 10
print(f"floor (>= 10x): {'met' if ok else 'NOT MET'}")
sys.exit(0 if ok else 1)
PY
