#!/usr/bin/env bash
# Deploys the compiled cluster on a real single-node Docker Swarm and shows it
# heal. Builds the images from Debian packages (nothing is pulled), pushes
# them to a loopback registry, pins them with `hacompile lock`, compiles with
# `hacompile build`, deploys with `docker stack deploy`, then:
#   - waits for every service to converge and checks routing and stats;
#   - kills the primary's and the replica's containers (SIGKILL, exit 137)
#     and measures the time until swarm replaced them and traffic works;
#   - force-restarts the HAProxy task and checks it comes back.
# Removes the stack, secrets, registry and (if it created it) the swarm,
# also on failure. Prints the figures.
#
#   tests/swarm/run.sh        (root; a running Docker daemon)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
stack=hc_swarm
started=$(date +%s)
log() { printf '[swarm %4ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

# Bounded wait: until CMD succeeds or SECS pass. Prints the seconds taken.
wait_for() {
    local secs=$1 what=$2; shift 2
    local t0; t0=$(date +%s.%N)
    while ! "$@" > /dev/null 2>&1; do
        if (( $(date +%s) - ${t0%.*} >= secs )); then
            fail "timed out after ${secs}s waiting for $what"
        fi
        sleep 0.5
    done
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

command -v docker >/dev/null || fail "the docker CLI is needed"
docker info > /dev/null 2>&1 || fail "the Docker daemon is not running"
for tool in docker-registry psql curl openssl; do command -v "$tool" >/dev/null || fail "$tool is needed (tests/setup.sh)"; done

work="$(mktemp -d)"
created_swarm=0
registry_pid=""
cleanup() {
    local rc=$?
    log "cleaning up"
    docker stack rm "$stack" > /dev/null 2>&1 || true
    for _ in $(seq 60); do
        [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] && break
        sleep 1
    done
    docker ps -aq --filter "label=com.docker.stack.namespace=$stack" | xargs -r docker rm -f > /dev/null 2>&1 || true
    for s in postgres_user postgres_password replication_password haproxy_stats_users; do docker secret rm "$s" > /dev/null 2>&1 || true; done
    docker network ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r docker network rm > /dev/null 2>&1 || true
    docker volume ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r docker volume rm > /dev/null 2>&1 || true
    if [ "$created_swarm" = 1 ]; then
        docker swarm leave --force > /dev/null 2>&1 || true
        docker network rm docker_gwbridge > /dev/null 2>&1 || true
    fi
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

log "building images from Debian packages"
bash "$here/build-images.sh"
(cd "$repo" && cargo build --quiet)
hc="$repo/target/debug/hacompile"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg="127.0.0.1:$port"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: %s\n' "$work" "$reg" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
wait_for 20 "the registry" curl -sf "http://$reg/v2/" > /dev/null
for image in postgres:15 haproxy:2.6; do
    docker tag "hacompile-test/$image" "$reg/hacompile-test/$image"
    docker push -q "$reg/hacompile-test/$image" > /dev/null
done
log "images pushed to $reg"

sed "s|REGISTRY|$reg|g" "$here/spec.toml" > "$work/spec.toml"
"$hc" lock "$work/spec.toml" --insecure-registry "$reg"
"$hc" build "$work/spec.toml" -o "$work/deploy"
"$hc" lint "$work/deploy/docker-stack.yml" --format github --fail-on warning
for image in postgres haproxy; do
    digest=$(grep -A4 "reference = \"$reg/hacompile-test/$image" "$work/hacompile.lock" | sed -n 's/^digest = "\(.*\)"/\1/p')
    grep -q "image: $reg/hacompile-test/$image:[0-9.]*@$digest" "$work/deploy/docker-stack.yml" || fail "$image is not pinned to the locked $digest"
done
log "locked, built and linted; images pinned by digest"

if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    docker swarm init --advertise-addr 127.0.0.1 > /dev/null
    created_swarm=1
fi
node=$(docker info --format '{{.Swarm.NodeID}}')
docker node update --label-add hc.primary=true --label-add hc.replica=true "$node" > /dev/null
printf '%s' cluster_admin | docker secret create postgres_user - > /dev/null
printf '%s' "Pw-$(openssl rand -hex 12)" > "$work/pw"
docker secret create postgres_password "$work/pw" > /dev/null
printf '%s' "Repl-$(openssl rand -hex 12)" | docker secret create replication_password - > /dev/null
printf 'userlist hacompile_stats\n    user admin password %s\n' "$(openssl passwd -6 swarm-stats)" | docker secret create haproxy_stats_users - > /dev/null
export PGPASSWORD; PGPASSWORD=$(cat "$work/pw")

deployed=$(date +%s.%N)
(cd "$work/deploy" && docker stack deploy -c docker-stack.yml "$stack" > /dev/null)
log "deployed; waiting for every service at its desired count"
converged() {
    local lines; lines=$(docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Replicas}}')
    [ "$(echo "$lines" | wc -l)" = 3 ] && ! echo "$lines" | grep -vqE '^([0-9]+)/\1'
}
wait_for 300 "convergence" converged > /dev/null
convergence=$(awk -v a="$deployed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '  {{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}'

q() { PGCONNECT_TIMEOUT=3 psql -X -tA -h 127.0.0.1 -p "$1" -U cluster_admin -d app -c "$2" 2> /dev/null; }
is_recovery() { [ "$(q "$1" 'select pg_is_in_recovery()')" = "$2" ]; }
stats_up() {
    local csv; csv=$(curl -sf --max-time 3 -u admin:swarm-stats "http://127.0.0.1:18080/stats;csv") || return 1
    [ "$(echo "$csv" | awk -F, '$1 ~ /^postgres_(write|read)$/ && $2 !~ /FRONTEND|BACKEND/ { n++; if ($18 == "UP") up++ } END { print (n == 3 && up == 3) ? "ok" : "no" }')" = ok ]
}
t_routes=$(wait_for 120 "writes through :15000 on the primary" is_recovery 15000 f)
wait_for 120 "reads through :15001 on the replica" is_recovery 15001 t > /dev/null
q 15000 "create table heal (id serial primary key, at timestamptz default now())" > /dev/null || fail "create table"
q 15000 "insert into heal default values" > /dev/null || fail "insert"
wait_for 30 "the row on the replica" bash -c "[ \"\$(PGPASSWORD='$PGPASSWORD' psql -X -tA -h 127.0.0.1 -p 15001 -U cluster_admin -d app -c 'select count(*) from heal' 2>/dev/null)\" = 1 ]" > /dev/null
wait_for 60 "stats: every backend UP" stats_up > /dev/null
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:18080/stats;csv")" = 401 ] || fail "stats page open without credentials"
log "routing ok: writes on the primary, reads on the replica, stats all UP (after ${t_routes}s)"
[ "$(q 15000 'show wal_keep_size')" = 1GB ] || fail "the primary does not run with the compiled wal_keep_size"
for svc in haproxy pg-primary pg-replica-1; do
    cid=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$svc" | head -n1)
    caps=$(docker inspect --format '{{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}}' "$cid")
    case "$caps" in
        "[ALL] "*) ;;
        *) fail "$svc runs with capabilities not dropped: $caps" ;;
    esac
    log "  $svc: cap_drop/cap_add applied by swarm: $caps"
done

kill_task() { # service -> container id killed with SIGKILL
    local cid; cid=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1" | head -n1)
    [ -n "$cid" ] || fail "no running container for $1"
    docker kill --signal KILL "$cid" > /dev/null
    echo "$cid"
}
exit_code() { docker inspect --format '{{.State.ExitCode}}' "$1"; }
running_other_than() { # service old-container -> a different running container exists
    docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1" | grep -vq "^${2:0:12}"
}
writes_ok() { q 15000 "insert into heal default values" > /dev/null; }
count_failures() { # command... -> counts failures until success (bounded 120 s)
    local n=0 t0; t0=$(date +%s)
    until "$@" > /dev/null 2>&1; do n=$((n + 1)); (( $(date +%s) - t0 < 120 )) || fail "no recovery in 120s"; sleep 0.5; done
    echo "$n"
}

old=$(kill_task pg-primary)
killed=$(date +%s.%N)
wait_for 10 "the killed primary to exit" bash -c "[ \"\$(docker inspect --format '{{.State.Running}}' $old)\" = false ]" > /dev/null
[ "$(exit_code "$old")" = 137 ] || fail "the primary's container exited with $(exit_code "$old"), not 137"
t_replaced=$(wait_for 120 "a new primary task" running_other_than pg-primary "$old")
failed=$(count_failures writes_ok)
t_writes=$(awk -v a="$killed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "primary killed (exit 137): replacement running after ${t_replaced}s, writes through HAProxy again after ${t_writes}s (${failed} failed writes while polling)"

old=$(kill_task pg-replica-1)
killed=$(date +%s.%N)
wait_for 10 "the killed replica to exit" bash -c "[ \"\$(docker inspect --format '{{.State.Running}}' $old)\" = false ]" > /dev/null
[ "$(exit_code "$old")" = 137 ] || fail "the replica's container exited with $(exit_code "$old"), not 137"
t_replaced_r=$(wait_for 120 "a new replica task" running_other_than pg-replica-1 "$old")
failed_r=$(count_failures is_recovery 15001 t)
t_reads=$(awk -v a="$killed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "replica killed (exit 137): replacement running after ${t_replaced_r}s, reads on the replica again after ${t_reads}s (${failed_r} failed reads while polling)"

old_proxy=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_haproxy" | head -n1)
restarted=$(date +%s.%N)
docker service update --force --detach "${stack}_haproxy" > /dev/null
wait_for 120 "HAProxy to converge after a restart" converged > /dev/null
failed_h=$(count_failures writes_ok)
t_haproxy=$(awk -v a="$restarted" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
docker service ps "${stack}_haproxy" --format '{{.CurrentState}} {{.Error}}' | head -n1 | grep -q '^Running' || fail "HAProxy's task is not running"
proxy_exit=$(exit_code "$old_proxy")
finished=$(date -d "$(docker inspect --format '{{.State.FinishedAt}}' "$old_proxy")" +%s.%N)
t_proxy_stop=$(awk -v a="$restarted" -v b="$finished" 'BEGIN { printf "%.1f", b - a }')
# When swarm signalled the old proxy, and when it died: the split of the stop time.
signalled=$(docker events --since "${restarted%.*}" --until "$(date +%s)" --filter "container=$old_proxy" --filter event=kill --format '{{.TimeNano}}' | head -n1)
t_signal=$(awk -v a="$restarted" -v b="${signalled:-0}" 'BEGIN { printf "%.1f", b / 1e9 - a }')
[ "$proxy_exit" = 0 ] || fail "the replaced HAProxy exited with $proxy_exit: it should stop by itself on SIGUSR1, not be killed"
log "HAProxy task restarted: swarm signalled the old proxy after ${t_signal}s, it exited 0 on its own ${t_proxy_stop}s after the update began; running and routing again after ${t_haproxy}s (${failed_h} failed writes while polling)"

wait_for 60 "stats: every backend UP again" stats_up > /dev/null
rows=$(q 15001 "select count(*) from heal")
log "rows written during the run, read back from the replica: $rows"

cat <<REPORT

=== hacompile on a single-node swarm (encrypted overlay: $(docker network inspect "${stack}_pg_net" --format '{{index .Options "encrypted"}}')) ===
  convergence after deploy:            ${convergence}s
  primary SIGKILL -> replacement task:  ${t_replaced}s; writes through HAProxy: ${t_writes}s (${failed} failed polls)
  replica SIGKILL -> replacement task:  ${t_replaced_r}s; reads on the replica: ${t_reads}s (${failed_r} failed polls)
  HAProxy task force-restarted -> old task exited 0 after ${t_proxy_stop}s; routing: ${t_haproxy}s (${failed_h} failed polls)
REPORT
