#!/usr/bin/env bash
# `hacompile preflight` against a real single-node Docker Swarm, before and
# after the fixes it prints:
#   1. a spec of its own (tests/swarm/spec.toml with its own labels, secret
#      names, stack name and free ports): preflight exits 1 and names the
#      missing node labels and secrets with the commands that fix them;
#   2. the printed fix commands are run as printed (test values in $VALUE
#      for the secrets): preflight exits 0, in human and JSON output;
#   3. a service of another stack publishes the spec's write port in host
#      mode (a tiny image imported from a static binary: nothing is pulled):
#      preflight exits 1 naming that service; the printed `docker service rm`
#      is run: exit 0;
#   4. a process outside docker listens on the read port of this node:
#      preflight exits 1 (it binds the port to see it); stopped: exit 0.
# Removes the labels, secrets, service and image it adds and (if it created
# it) the swarm, also on failure. Prints how long each preflight took.
#
#   tests/swarm/preflight.sh   (root; a running Docker daemon; run it under
#                               flock /tmp/hacompile-swarm.lock)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
started=$(date +%s)
log() { printf '[preflight %4ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
fail() { log "FAIL: $*" >&2; exit 1; }

command -v docker > /dev/null || fail "the docker CLI is needed"
docker info > /dev/null 2>&1 || fail "the Docker daemon is not running"
for tool in gcc python3; do command -v "$tool" > /dev/null || fail "$tool is needed (tests/setup.sh)"; done

work="$(mktemp -d)"
# The secrets the swarm test's spec declares ([secrets.NAME]): each must be
# reported missing, and each gets a name of this run's own.
mapfile -t secrets < <(sed -n 's/^\[secrets\.\([a-z_]*\)\]$/\1/p' "$here/spec.toml")
[ "${#secrets[@]}" -ge 4 ] || { echo "preflight.sh: the spec declares ${#secrets[@]} secrets" >&2; exit 1; }
created_swarm=0
node=""
holder=hcpf_holder
image=hacompile-test/preflight-holder:1
listener=""
cleanup() {
    local rc=$?
    log "cleaning up"
    if [ -n "$listener" ]; then kill "$listener" 2> /dev/null || true; fi
    docker service rm "$holder" > /dev/null 2>&1 || true
    for _ in $(seq 30); do
        [ -z "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$holder")" ] && break
        sleep 1
    done
    if [ -n "$node" ]; then docker node update --label-rm hcpf.primary --label-rm hcpf.replica "$node" > /dev/null 2>&1 || true; fi
    for s in "${secrets[@]}"; do docker secret rm "hcpf_$s" > /dev/null 2>&1 || true; done
    if [ "$created_swarm" = 1 ]; then
        docker swarm leave --force > /dev/null 2>&1 || true
        docker network rm docker_gwbridge > /dev/null 2>&1 || true
    fi
    docker rmi "$image" > /dev/null 2>&1 || true
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

(cd "$repo" && cargo build --quiet)
hc="$repo/target/debug/hacompile"

if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    docker swarm init --advertise-addr 127.0.0.1 > /dev/null
    created_swarm=1
fi
node=$(docker info --format '{{.Swarm.NodeID}}')
hostname=$(docker node inspect --format '{{.Description.Hostname}}' "$node")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'; }
write=$(free_port); read=$(free_port); stats=$(free_port)
if [ "$write" = "$read" ] || [ "$read" = "$stats" ] || [ "$write" = "$stats" ]; then fail "the free ports collide; run again"; fi
# The swarm test's spec, with names of its own: nothing another run left
# behind (labels hc.*, secrets postgres_*) can make the first check pass.
names=$(IFS='|'; echo "${secrets[*]}")
sed -e 's|REGISTRY|127.0.0.1:5000|g' -e 's|^stack = .*|stack = "hcpf"|' \
    -e 's|node.labels.hc\.|node.labels.hcpf.|g' \
    -E -e "s/\\b($names)\\b/hcpf_\\1/g" \
    -e "s|^write_port = .*|write_port = $write|" -e "s|^read_port = .*|read_port = $read|" -e "s|^port = 18080|port = $stats|" \
    "$here/spec.toml" > "$work/spec.toml"
for want in "write_port = $write" "read_port = $read" "port = $stats" 'stack = "hcpf"' hcpf.primary hcpf_postgres_user; do
    grep -qF "$want" "$work/spec.toml" || fail "the spec was not rewritten: no $want"
done

# preflight NAME EXPECTED-EXIT [ARGS...]: runs it, keeps its output in
# $work/NAME.out, prints it and its time.
preflight() {
    local name=$1 want=$2; shift 2
    local t0 rc=0; t0=$(date +%s.%N)
    "$hc" preflight "$work/spec.toml" "$@" > "$work/$name.out" 2> "$work/$name.err" || rc=$?
    local took; took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    sed 's/^/    /' "$work/$name.out"
    [ -s "$work/$name.err" ] && sed 's/^/    stderr: /' "$work/$name.err"
    log "preflight ($name): exit $rc after ${took}s"
    [ "$rc" = "$want" ] || fail "preflight ($name) exited $rc, not $want"
}
expect() { grep -qF -- "$2" "$work/$1.out" || fail "preflight ($1) does not say: $2"; }

log "1. a bare swarm: labels and secrets missing"
preflight before 1
expect before "docker node update --label-add hcpf.primary=true -- $hostname"
expect before "docker node update --label-add hcpf.replica=true -- $hostname"
for s in "${secrets[@]}"; do
    expect before "printf '%s' \"\$VALUE\" | docker secret create hcpf_$s -"
done
expect before "the deploy would not converge: $((2 + ${#secrets[@]})) problem(s)"

log "2. running the printed fixes"
mapfile -t fixes < <(sed -n 's/^    fix: //p' "$work/before.out")
[ "${#fixes[@]}" = $((2 + ${#secrets[@]})) ] || fail "expected $((2 + ${#secrets[@]})) fix commands (2 labels, ${#secrets[@]} secrets), got ${#fixes[@]}"
for fix in "${fixes[@]}"; do
    # Each secret gets a test value; the commands are run exactly as printed.
    VALUE="hcpf-test-$RANDOM" bash -c "$fix" > /dev/null || fail "the printed fix failed: $fix"
    log "  ran: $fix"
done
preflight after 0
expect after "the deploy would converge"
preflight after-json 0 --format json
python3 - "$work/after-json.out" <<'PY' || fail "the JSON report is not a converging one"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["stack"] == "hcpf" and r["findings"] == [] and r["nodes"] == 1, r
PY

log "3. a service of another stack holds the write port ($write) in host mode"
mkdir -p "$work/root"
printf '#include <signal.h>\n#include <unistd.h>\nstatic void bye(int s) { (void)s; _exit(0); }\nint main(void) { signal(SIGTERM, bye); for (;;) pause(); }\n' > "$work/pause.c"
gcc -static -O2 -o "$work/root/pause" "$work/pause.c"
tar -C "$work/root" -c . | docker import --change 'ENTRYPOINT ["/pause"]' - "$image" > /dev/null
# (docker warns that a local image has no registry digest: kept for a failure.)
docker service create --detach --quiet --name "$holder" --label com.docker.stack.namespace=hcpf_other \
    --publish "mode=host,published=$write,target=$write" "$image" > /dev/null 2> "$work/create.err" \
    || fail "cannot create the holder service: $(cat "$work/create.err")"
holder_up() { docker service ps --filter desired-state=running --format '{{.CurrentState}}' "$holder" | grep -q '^Running'; }
for _ in $(seq 60); do holder_up && break; sleep 1; done
holder_up || fail "the holder service did not start: $(docker service ps --no-trunc "$holder" 2>&1 | tail -n 3)"
preflight conflict 1
expect conflict "$holder (stack hcpf_other) publishes it in host mode on $hostname"
expect conflict "fix: docker service rm -- $holder"
fix=$(sed -n 's/^    fix: //p' "$work/conflict.out")
[ "$fix" = "docker service rm -- $holder" ] || fail "expected one fix, the holder's removal: $fix"
bash -c "$fix" > /dev/null
for _ in $(seq 30); do
    [ -z "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$holder")" ] && break
    sleep 1
done
preflight conflict-removed 0

log "4. a process outside docker listens on the read port ($read) on this node"
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(300)' "$read" &
listener=$!
bound() { python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$read"; }
for _ in $(seq 50); do bound 2> /dev/null && break; sleep 0.1; done
bound || fail "the listener did not start"
preflight local-port 1
expect local-port "publishes $read/tcp in host mode, but a process on this node ($hostname) holds it"
kill "$listener"; wait "$listener" 2> /dev/null || true; listener=""
preflight local-port-freed 0

log "ok: preflight saw every problem, printed fixes that work, and passes once they ran"
