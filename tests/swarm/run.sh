#!/usr/bin/env bash
# Deploys the compiled cluster on a real single-node Docker Swarm and shows it
# heal. Builds the images from Debian packages (nothing is pulled), pushes
# them to a loopback registry, pins them with `hacompile lock`, compiles with
# `hacompile build`, deploys with `docker stack deploy`, then:
#   - waits for every service to converge and checks routing and stats;
#   - runs the haproxy image alone: a port below 1024 binds without any
#     capability, and SIGTERM stops the master at once (not ignored);
#   - checks the images' runtime contract in the running tasks, the one the
#     stand-ins share with the official images: HAProxy's PID 1 is the
#     master (`haproxy -W -db`), master and worker run as UID 99 with no
#     capabilities and its binary has no file capability; every PostgreSQL
#     server process runs as UID 999; with [backup] PID 1 is docker's init
#     (`init: true`), whose children are the postmaster and the detached
#     backup scheduler, both UID 999;
#   - metrics ([postgres.exporter], the stand-in of the official exporter
#     image): each exporter task healthy by its own healthcheck (busybox's
#     wget), UID 65534 with a read-only root, its secret readable; from one
#     exporter task, the other's /metrics over the stack's network by
#     service name: pg_up 1 as the monitoring role, the lag series;
#   - kills the primary's and the replica's containers (SIGKILL, exit 137)
#     and measures the time until swarm replaced them and traffic works;
#     while the replica is gone its exporter reports pg_up 0, then 1;
#   - force-restarts the HAProxy task: swarm must stop the old one with
#     SIGUSR1 alone, the master must exit 0 within the grace period; then
#     checks it comes back;
#   - backups ([backup]: encrypted posix repository on a local volume): the
#     scheduler's first full backup (hacompile-pgbackrest info in the
#     primary's task), pg_stat_archiver archiving without new failures; rows
#     before a recorded time, rows after, DROP TABLE, pg_switch_wal(), that
#     WAL archived; `hacompile restore --into` a stack volume refused; then
#     exactly what `hacompile restore --into <new volume> --time T` prints,
#     eval'd: the replicated job restores and replays; a one-off server of
#     the same image on the new volume holds exactly the rows before T; the
#     same commands again are refused by the job (the volume is not empty).
# Removes the stack, secrets, registry and (if it created it) the swarm,
# also on failure. Prints the figures.
#
#   tests/swarm/run.sh        (root; a running Docker daemon)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/swarm/lib.sh disable=SC1091
source "$here/lib.sh"
repo="$(cd "$here/../.." && pwd)"
stack=hc_swarm
started=$(date +%s)
log() { printf '[swarm %4ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
# To stderr: a failure inside $(...) must not vanish into a variable.
fail() {
    log "FAIL: $*" >&2
    task_errors "$stack" >&2 || true
    exit 1
}

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
# A repository left by an earlier run holds another passphrase's stanza.
[ -z "$(docker volume ls -q | grep "^${stack}_" || true)" ] || fail "volumes of an earlier $stack are left: docker volume rm \$(docker volume ls -q | grep ^${stack}_)"
for tool in docker-registry psql curl openssl; do command -v "$tool" >/dev/null || fail "$tool is needed (tests/setup.sh)"; done
# getcap reads the file capabilities of the HAProxy task's binary from the host.
command -v getcap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcap2-bin >/dev/null; }
command -v getcap >/dev/null || fail "getcap is needed (libcap2-bin)"

work="$(mktemp -d)"
created_swarm=0
registry_pid=""
reg=""
probe_proxy=""
restored=""
restore_volume=${stack}_restored
cleanup() {
    local rc=$?
    log "cleaning up"
    docker stack rm "$stack" > /dev/null 2>&1 || true
    for _ in $(seq 60); do
        [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] && break
        sleep 1
    done
    docker ps -aq --filter "label=com.docker.stack.namespace=$stack" | xargs -r timeout 120 docker rm -f > /dev/null 2>&1 || true
    if [ -n "$probe_proxy" ]; then docker rm -f "$probe_proxy" > /dev/null 2>&1 || true; fi
    remove_restore_job "$stack" "$restore_volume" "$restored"
    for s in postgres_user postgres_password replication_password haproxy_stats_users backup_cipher_pass monitor_password; do docker secret rm "$s" > /dev/null 2>&1 || true; done
    docker network ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r timeout 120 docker network rm > /dev/null 2>&1 || true
    docker volume ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r timeout 120 docker volume rm > /dev/null 2>&1 || true
    if [ "$created_swarm" = 1 ]; then
        docker swarm leave --force > /dev/null 2>&1 || true
        docker network rm docker_gwbridge > /dev/null 2>&1 || true
    fi
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; fi
    if [ -n "$reg" ]; then
        for image in postgres:15 postgres-pgbackrest:15 haproxy:2.6 postgres-exporter:0.11; do docker rmi "$reg/hacompile-test/$image" > /dev/null 2>&1 || true; done
    fi
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
for image in postgres:15 postgres-pgbackrest:15 haproxy:2.6 postgres-exporter:0.11; do
    docker tag "hacompile-test/$image" "$reg/hacompile-test/$image"
    docker push -q "$reg/hacompile-test/$image" > /dev/null
done
log "images pushed to $reg"

# Two facts the compiled HAProxy service rests on, checked on the image
# alone (no network): as UID 99 with every capability dropped it still
# binds a port below 1024 (Docker 20.10+ sets
# net.ipv4.ip_unprivileged_port_start=0 in a container's network namespace),
# and its PID 1, the master, does not ignore SIGTERM: it stops the worker at
# once (hard stop), where SIGUSR1 stops it gently.
printf 'global\n    log stdout local0\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend low\n    bind 127.0.0.1:80\n    tcp-request connection reject\n' > "$work/low-port.cfg"
chmod 0644 "$work/low-port.cfg"
probe_proxy=$(docker run -d --cap-drop ALL --network none -v "$work/low-port.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" hacompile-test/haproxy:2.6)
# /proc/net/tcp: local address 127.0.0.1:80 (0100007F:0050), state 0A (LISTEN).
wait_for 20 "the image's HAProxy to listen on port 80" docker exec "$probe_proxy" grep -q '0100007F:0050 00000000:0000 0A' /proc/net/tcp > /dev/null
termed=$(date +%s.%N)
docker kill --signal TERM "$probe_proxy" > /dev/null
probe_exit=$(timeout 10 docker wait "$probe_proxy") || fail "HAProxy's master ignored SIGTERM for 10 s"
t_term=$(awk -v a="$termed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
probe_log=$(docker logs "$probe_proxy" 2>&1)
grep -q 'Exiting Master process' <<< "$probe_log" || fail "HAProxy's master did not handle SIGTERM: $(docker logs "$probe_proxy" 2>&1 | tail -n 5)"
docker rm "$probe_proxy" > /dev/null
probe_proxy=""
log "the haproxy image alone (its user, --cap-drop ALL): bound 127.0.0.1:80; SIGTERM: the master stopped its worker and exited $probe_exit after ${t_term}s"

sed "s|REGISTRY|$reg|g" "$here/spec.toml" > "$work/spec.toml"
"$hc" lock "$work/spec.toml" --insecure-registry "$reg"
"$hc" build "$work/spec.toml" -o "$work/deploy"
"$hc" lint "$work/deploy/docker-stack.yml" --format github --fail-on warning
for image in postgres-pgbackrest haproxy postgres-exporter; do
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
openssl rand -base64 48 | tr -d '\n' | docker secret create backup_cipher_pass - > /dev/null
openssl rand -hex 32 | tr -d '\n' | docker secret create monitor_password - > /dev/null
printf 'userlist hacompile_stats\n    user admin password %s\n' "$(openssl passwd -6 swarm-stats)" | docker secret create haproxy_stats_users - > /dev/null
export PGPASSWORD; PGPASSWORD=$(cat "$work/pw")

deployed=$(date +%s.%N)
(cd "$work/deploy" && docker stack deploy -c docker-stack.yml "$stack" > /dev/null)
log "deployed; waiting for every service at its desired count"
converged() {
    local lines; lines=$(docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Replicas}}')
    [ "$(echo "$lines" | wc -l)" = 5 ] && ! echo "$lines" | grep -vqE '^([1-9][0-9]*)/\1( |$)'
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
task_container() { docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1" | head -n1; }
for svc in haproxy pg-primary pg-replica-1; do
    cid=$(task_container "$svc")
    caps=$(docker inspect --format '{{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}}' "$cid")
    case "$caps" in
        "[ALL] "*) ;;
        *) fail "$svc runs with capabilities not dropped: $caps" ;;
    esac
    log "  $svc: cap_drop/cap_add applied by swarm: $caps"
done

# The images' runtime contract, seen in the running tasks (the stand-ins
# mirror the official images; see build-images.sh). One line per process
# of a container: name pid ppid real-uid effective-uid CapPrm CapEff CapBnd.
processes() {
    docker exec "$1" sh -c 'cat /proc/[0-9]*/status 2> /dev/null; true' | awk '
        /^Name:/ { name = $2 } /^Pid:/ { pid = $2 } /^PPid:/ { ppid = $2 } /^Uid:/ { uid = $2 " " $3 }
        /^CapPrm:/ { prm = $2 } /^CapEff:/ { eff = $2 } /^CapBnd:/ { print name, pid, ppid, uid, prm, eff, $2 }'
}
no_caps=0000000000000000
proxy=$(task_container haproxy)
procs=$(processes "$proxy")
pid1=$(docker exec "$proxy" sh -c 'tr "\0" " " < /proc/1/cmdline')
case "$pid1" in
    "haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg "*) ;;
    *) fail "HAProxy's PID 1 is not the master-worker master: '$pid1'" ;;
esac
grep -q "^haproxy 1 0 99 99 $no_caps $no_caps " <<< "$procs" || fail "HAProxy's master is not PID 1 as UID 99 without capabilities: $procs"
workers=$(echo "$procs" | awk '$1 == "haproxy" && $3 == 1' | wc -l)
[ "$workers" -ge 1 ] || fail "HAProxy's master has no worker: $procs"
echo "$procs" | awk -v none="$no_caps" '$1 == "haproxy" && !($4 == 99 && $5 == 99 && $6 == none && $7 == none) { bad = 1 } END { exit bad }' \
    || fail "a HAProxy process runs with another UID or with capabilities: $procs"
[ "$(docker exec "$proxy" readlink /proc/1/cwd)" = /var/lib/haproxy ] || fail "HAProxy does not run in /var/lib/haproxy"
# File capabilities, read from the host in the task's root filesystem. The
# probe carries one on purpose: it shows the image pipeline keeps them, so
# "none on the binary" is a finding, not an artefact of docker import.
merged=$(docker inspect --format '{{.GraphDriver.Data.MergedDir}}' "$proxy")
binary=$(docker exec "$proxy" sh -c 'command -v haproxy')
[ -n "$merged" ] || fail "the storage driver shows no root filesystem of HAProxy's task"
[ -x "$merged$binary" ] || fail "cannot see HAProxy's binary from the host ($merged$binary)"
getcap_out=$(getcap "$merged/usr/local/share/hacompile-test/capability-probe")
grep -q cap_net_bind_service <<< "$getcap_out" \
    || fail "the capability probe lost its file capability: the check below would prove nothing"
[ -z "$(getcap "$merged$binary")" ] || fail "HAProxy's binary carries a file capability: $(getcap "$merged$binary")"
log "  haproxy: PID 1 '$pid1'(master), $workers worker(s); every process UID 99, CapPrm=CapEff=0 (CapBnd $(echo "$procs" | awk '$2 == 1 { print $8 }')); no file capability on $binary; ip_unprivileged_port_start=$(docker exec "$proxy" cat /proc/sys/net/ipv4/ip_unprivileged_port_start)"
for svc in pg-primary pg-replica-1; do
    cid=$(task_container "$svc")
    procs=$(processes "$cid")
    grep -q "^docker-init 1 0 " <<< "$procs" || fail "$svc: PID 1 is not docker's init (init: true): $procs"
    grep -q "^postgres [0-9]* 1 999 999 " <<< "$procs" || fail "$svc: the postmaster is not init's child as UID 999: $procs"
    echo "$procs" | awk '$1 == "postgres" && !($4 == 999 && $5 == 999) { bad = 1 } END { exit bad }' \
        || fail "$svc: a server process runs with another UID: $procs"
    scheduler=$(docker exec "$cid" sh -c 'for p in /proc/[0-9]*; do tr "\0" " " < $p/cmdline; echo " $(stat -c %u $p) $(awk "/^PPid:/ { print \$2 }" $p/status)"; done 2> /dev/null' | grep ' scheduler ' || true)
    grep -q ' 999 1$' <<< "$scheduler" || fail "$svc: the backup scheduler is not init's child as UID 999: '$scheduler'"
    log "  $svc: PID 1 '$(docker exec "$cid" sh -c 'tr "\0" " " < /proc/1/cmdline')', $(echo "$procs" | awk '$1 == "postgres"' | wc -l) server processes, all UID 999; scheduler '$scheduler'"
done

# Metrics. Each exporter task as the compiled service and the image make it:
# healthy by docker's own healthcheck (the compiled `wget` of its landing
# page), UID 65534 with a read-only root and its secret readable by it.
exporter_healthy() { [ "$(docker inspect --format '{{.State.Health.Status}}' "$(task_container "$1")")" = healthy ]; }
wait_for 120 "pg-primary-exporter healthy" exporter_healthy pg-primary-exporter > /dev/null
wait_for 120 "pg-replica-1-exporter healthy" exporter_healthy pg-replica-1-exporter > /dev/null
# From the task's start to its first passing check (docker keeps the last 5).
healthy_after() {
    local cid pass; cid=$(task_container "$1")
    pass=$(docker inspect --format '{{range .State.Health.Log}}{{if eq .ExitCode 0}}{{.End.Format "2006-01-02T15:04:05.999999999Z07:00"}}{{"\n"}}{{end}}{{end}}' "$cid" | head -n 1)
    [ -n "$pass" ] || fail "$1 is healthy but docker keeps no passing check"
    since_iso "$(docker inspect --format '{{.State.StartedAt}}' "$cid")" "$pass"
}
since_iso() { awk -v a="$(date -d "$1" +%s.%N)" -v b="$(date -d "$2" +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
t_exporter_healthy=$(healthy_after pg-primary-exporter)
for svc in pg-primary-exporter pg-replica-1-exporter; do
    cid=$(task_container "$svc")
    facts=$(docker inspect --format '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{index .Config.Labels "com.docker.swarm.service.name"}}' "$cid")
    [ "$facts" = "65534:65534 true [ALL] ${stack}_$svc" ] || fail "$svc: user, read-only root, capabilities: $facts"
    uid=$(docker exec "$cid" awk '/^Uid:/ { print $2, $3 }' /proc/1/status)
    [ "$uid" = "65534 65534" ] || fail "$svc: PID 1 runs as $uid, not 65534"
    [ "$(docker exec "$cid" sh -c 'tr "\0" " " < /proc/1/cmdline')" = "/bin/postgres_exporter --web.listen-address=:9187 --extend.query-path=/etc/postgres_exporter/queries.yaml " ] \
        || fail "$svc: PID 1 is not the exporter: $(docker exec "$cid" sh -c 'tr "\0" " " < /proc/1/cmdline')"
    if docker exec "$cid" touch /probe 2> /dev/null; then fail "$svc: its root file system is writable"; fi
    # Read as the task's user; its length only, never its value.
    secret_len=$(docker exec "$cid" sh -c 'wc -c < /run/secrets/monitor_password') || fail "$svc: the password's secret is not readable by UID 65534"
    [ "$secret_len" -eq 64 ] || fail "$svc: the secret read back has $secret_len bytes, not 64"
    facts=$(docker exec "$cid" stat -c '%u %a' /run/secrets/monitor_password /etc/postgres_exporter/queries.yaml | tr '\n' ' ')
    [ "$facts" = "65534 400 65534 440 " ] || fail "$svc: the secret and the queries file are $facts"
    labels=$(docker service inspect --format '{{index .Spec.Labels "prometheus.io/scrape"}} {{index .Spec.Labels "prometheus.io/port"}} {{index .Spec.Labels "prometheus.io/path"}}' "${stack}_$svc")
    [ "$labels" = "true 9187 /metrics" ] || fail "$svc: deploy labels for Prometheus: $labels"
done
# /metrics over the stack's network by service name, from the other
# exporter's task (busybox's wget, bounded from here: Debian's static
# busybox 1.35 crashes on wget's own -T).
metrics() { timeout 10 docker exec "$(task_container "$1")" wget -q -O - "http://$2:9187/metrics"; }
series() { grep -E "^$1(\{[^}]*\})? " | awk '{ print $NF }' | head -n 1; }
exporter_up() { [ "$(metrics "$1" "$2" | series pg_up)" = "$3" ]; }
# What an exporter said and logged, when it is not up (never a secret: the
# exporter's log and its own series only).
exporter_diagnosis() {
    log "$1's series pg_up and pg_exporter_last_scrape_error, fetched from ${2}'s task: $(metrics "$2" "$1" 2>&1 | grep -E '^(pg_up|pg_exporter_last_scrape_error|wget)' | tr '\n' ' ')" >&2
    log "$1's log (last lines): $(service_logs "${stack}_$1" --tail 5 | cut -c1-400)" >&2
}
if ! t_pg_up=$(wait_for 60 "pg_up 1 from pg-primary-exporter" exporter_up pg-replica-1-exporter pg-primary-exporter 1); then
    exporter_diagnosis pg-primary-exporter pg-replica-1-exporter
    fail "pg-primary-exporter is not up"
fi
wait_for 60 "pg_up 1 from pg-replica-1-exporter" exporter_up pg-primary-exporter pg-replica-1-exporter 1 > /dev/null
primary_metrics=$(metrics pg-replica-1-exporter pg-primary-exporter)
replica_metrics=$(metrics pg-primary-exporter pg-replica-1-exporter)
[ "$(series pg_replica_is_replica <<< "$primary_metrics")" = 0 ] || fail "pg-primary-exporter: pg_replica_is_replica is not 0: $(grep '^pg_replica' <<< "$primary_metrics")"
[ "$(series pg_replica_is_replica <<< "$replica_metrics")" = 1 ] || fail "pg-replica-1-exporter: pg_replica_is_replica is not 1: $(grep '^pg_replica' <<< "$replica_metrics")"
replica_lag=$(series pg_replica_lag_seconds <<< "$replica_metrics")
[ -n "$replica_lag" ] || fail "pg-replica-1-exporter: no pg_replica_lag_seconds: $(grep '^pg_' <<< "$replica_metrics" | head -n 20)"
standby=$(grep -E '^pg_standby_replay_lag_seconds\{.*application_name="pg-replica-1"' <<< "$primary_metrics" || true)
[ -n "$standby" ] || fail "pg-primary-exporter: no pg_standby_replay_lag_seconds for pg-replica-1: $(grep '^pg_standby' <<< "$primary_metrics")"
log "exporters: healthy (docker's healthcheck: pg-primary-exporter's first pass ${t_exporter_healthy}s after its start); UID 65534, read-only root, no capabilities, secret 0400 readable; pg-primary-exporter's /metrics by name: pg_up 1 (after ${t_pg_up}s), $standby; pg-replica-1-exporter: pg_up 1, pg_replica_lag_seconds $replica_lag, pg_replica_is_replica 1; $(wc -l <<< "$primary_metrics") lines"

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
wait_for 10 "the killed primary to exit" bash -c "[ \"\$(timeout 10 docker inspect --format '{{.State.Running}}' $old)\" = false ]" > /dev/null
[ "$(exit_code "$old")" = 137 ] || fail "the primary's container exited with $(exit_code "$old"), not 137"
t_replaced=$(wait_for 120 "a new primary task" running_other_than pg-primary "$old")
failed=$(count_failures writes_ok)
t_writes=$(awk -v a="$killed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "primary killed (exit 137): replacement running after ${t_replaced}s, writes through HAProxy again after ${t_writes}s (${failed} failed writes while polling)"

# The replica restarts by itself when its primary goes away (its entrypoint
# exits): wait for its task and its reads before killing it.
replica_task() { [ -n "$(task_container pg-replica-1)" ]; }
wait_for 120 "a running replica task" replica_task > /dev/null
wait_for 120 "reads on the replica before killing it" is_recovery 15001 t > /dev/null
old=$(kill_task pg-replica-1)
killed=$(date +%s.%N)
t_pg_down=$(wait_for 30 "pg_up 0 from pg-replica-1-exporter while its server is gone" exporter_up pg-primary-exporter pg-replica-1-exporter 0)
wait_for 10 "the killed replica to exit" bash -c "[ \"\$(timeout 10 docker inspect --format '{{.State.Running}}' $old)\" = false ]" > /dev/null
[ "$(exit_code "$old")" = 137 ] || fail "the replica's container exited with $(exit_code "$old"), not 137"
t_replaced_r=$(wait_for 120 "a new replica task" running_other_than pg-replica-1 "$old")
failed_r=$(count_failures is_recovery 15001 t)
t_reads=$(awk -v a="$killed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
wait_for 60 "pg_up 1 from pg-replica-1-exporter again" exporter_up pg-primary-exporter pg-replica-1-exporter 1 > /dev/null
t_pg_back=$(awk -v a="$killed" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "replica killed (exit 137): replacement running after ${t_replaced_r}s, reads on the replica again after ${t_reads}s (${failed_r} failed reads while polling); its exporter: pg_up 0 after ${t_pg_down}s, pg_up 1 again after ${t_pg_back}s"

old_proxy=$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_haproxy" | head -n1)
restarted=$(date +%s.%N)
docker service update --force --detach "${stack}_haproxy" > /dev/null
wait_for 120 "HAProxy to converge after a restart" converged > /dev/null
failed_h=$(count_failures writes_ok)
t_haproxy=$(awk -v a="$restarted" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
proxy_state=$(docker service ps "${stack}_haproxy" --format '{{.CurrentState}} {{.Error}}')
grep -q '^Running' <<< "${proxy_state%%$'\n'*}" || fail "HAProxy's task is not running"
proxy_exit=$(exit_code "$old_proxy")
finished=$(date -d "$(docker inspect --format '{{.State.FinishedAt}}' "$old_proxy")" +%s.%N)
t_proxy_stop=$(awk -v a="$restarted" -v b="$finished" 'BEGIN { printf "%.1f", b - a }')
# When swarm signalled the old proxy (and with what), and when it died.
kills=$(docker events --since "${restarted%.*}" --until "$(date +%s)" --filter "container=$old_proxy" --filter event=kill --format '{{.TimeNano}} {{index .Actor.Attributes "signal"}}')
signalled=$(echo "$kills" | awk 'NR == 1 { print $1 }')
t_signal=$(awk -v a="$restarted" -v b="${signalled:-0}" 'BEGIN { printf "%.1f", b / 1e9 - a }')
t_signal_exit=$(awk -v a="${signalled:-0}" -v b="$finished" 'BEGIN { printf "%.1f", b - a / 1e9 }')
grace=$(docker service inspect --format '{{json .Spec.TaskTemplate.ContainerSpec.StopGracePeriod}}' "${stack}_haproxy" | awk '{ print $1 / 1e9 }')
[ "$(echo "$kills" | awk '{ print $2 }' | tr '\n' ' ')" = "10 " ] || fail "swarm did not stop the old proxy with SIGUSR1 alone (signals: $(echo "$kills" | awk '{ print $2 }' | tr '\n' ' '))"
[ "$proxy_exit" = 0 ] || fail "the replaced HAProxy exited with $proxy_exit: it should stop by itself on SIGUSR1, not be killed"
awk -v t="$t_signal_exit" -v g="${grace:-0}" 'BEGIN { exit !(t < g) }' || fail "the old proxy took ${t_signal_exit}s after SIGUSR1, not less than its ${grace}s grace period"
old_log=$(docker logs "$old_proxy" 2>&1)
grep -q 'All workers exited' <<< "$old_log" || fail "the old proxy's master did not report its workers' exit"
log "HAProxy task restarted: swarm sent SIGUSR1 (only) after ${t_signal}s; the master exited 0 ${t_signal_exit}s later (grace ${grace}s), ${t_proxy_stop}s after the update began; running and routing again after ${t_haproxy}s (${failed_h} failed writes while polling)"

wait_for 60 "stats: every backend UP again" stats_up > /dev/null
rows=$(q 15001 "select count(*) from heal")
log "rows written during the run, read back from the replica: $rows"

# Backups. The scheduler takes the first full backup at once (none is
# recorded), as the primary's server user, with the repository's secret.
primary_task() { task_container pg-primary; }
backrest() { docker exec --user postgres "$(primary_task)" hacompile-pgbackrest "$@"; }
has_full() { backrest info --output=json | python3 -c 'import json, sys; sys.exit(0 if any(b["type"] == "full" for s in json.load(sys.stdin) for b in s["backup"]) else 1)'; }
t_first_backup=$(wait_for 240 "the scheduler's first full backup (hacompile-pgbackrest info)" has_full)
info=$(backrest info)
grep -q 'cipher: aes-256-cbc' <<< "$info" || fail "the repository is not encrypted: $info"
backup_secs=$(backrest info --output=json | python3 -c 'import json, sys; b = [b for s in json.load(sys.stdin) for b in s["backup"] if b["type"] == "full"][0]; print(b["timestamp"]["stop"] - b["timestamp"]["start"])')
log "first full backup in the repository ${t_first_backup}s into the backup checks (the backup itself: ${backup_secs}s)"
archiver() { q 15000 "select archived_count || ' ' || failed_count || ' ' || coalesce(last_archived_wal, '-') from pg_stat_archiver"; }
read -r archived_before failed_before _ <<< "$(archiver)"
[ "${archived_before:-0}" -gt 0 ] || fail "pg_stat_archiver: nothing archived ($(archiver))"

q 15000 "create table restore_probe (id int primary key, note text)" > /dev/null || fail "create restore_probe"
q 15000 "insert into restore_probe select g, 'before' from generate_series(1, 100) g" > /dev/null || fail "insert before"
sleep 1.1
at=$(q 15000 "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.1
q 15000 "insert into restore_probe select g, 'after' from generate_series(101, 150) g" > /dev/null || fail "insert after"
q 15000 "drop table restore_probe" > /dev/null || fail "drop table"
switched=$(q 15000 "select pg_walfile_name(pg_switch_wal())")
archived_upto() { [[ "$(archiver | awk '{ print $3 }')" > "$switched" || "$(archiver | awk '{ print $3 }')" == "$switched" ]]; }
t_archived=$(wait_for 120 "the WAL with the DROP ($switched) archived" archived_upto)
read -r archived_after failed_after _ <<< "$(archiver)"
[ "$failed_after" = "$failed_before" ] || fail "pg_stat_archiver: archiving failed after the first backup ($failed_before -> $failed_after)"
[ "$archived_after" -gt "$archived_before" ] || fail "pg_stat_archiver: archived_count did not grow ($archived_before -> $archived_after)"
log "pg_stat_archiver: archived $archived_before -> $archived_after, failed $failed_before (before the stanza existed) -> $failed_after; $switched archived ${t_archived}s after pg_switch_wal()"

# Never over the running cluster: a volume of the stack is refused.
for volume in "${stack}_pg-primary-data" pgbackrest-repo; do
    set +e
    "$hc" restore "$work/spec.toml" --into "$volume" --time "$at" > "$work/refused.out" 2> "$work/refused.err"
    rc=$?
    set -e
    { [ "$rc" = 2 ] && [ ! -s "$work/refused.out" ] && grep -q 'restore::stack-volume' "$work/refused.err"; } \
        || fail "restore --into $volume: exit $rc, $(cat "$work/refused.out" "$work/refused.err")"
done
log "restore --into ${stack}_pg-primary-data / pgbackrest-repo: refused (exit 2, restore::stack-volume)"

"$hc" restore "$work/spec.toml" --into "$restore_volume" --time "$at" > "$work/restore.sh"
shellcheck -s sh "$work/restore.sh" || fail "the printed restore commands fail shellcheck"
grep -q "$reg/hacompile-test/postgres-pgbackrest:15@sha256:" "$work/restore.sh" || fail "the restore job's image is not pinned by digest"
started_restore=$(date +%s.%N)
# Exactly what was printed.
if ! (eval "$(cat "$work/restore.sh")") > "$work/restore.out" 2>&1; then
    cat "$work/restore.out" >&2
    fail "the printed restore commands failed"
fi
t_restore=$(awk -v a="$started_restore" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
grep -q 'recovery stopping before commit' "$work/restore.out" || fail "the job's log does not say where recovery stopped: $(cat "$work/restore.out")"
log "restore job (restore + replay to $at + promote + clean stop) done in ${t_restore}s: $(grep -o 'recovery stopping before commit.*' "$work/restore.out" | head -n 1)"

# A one-off server of the same image on the restored volume: no repository,
# no secret, no network.
image=$(grep -o "$reg/hacompile-test/postgres-pgbackrest:15@sha256:[0-9a-f]*" "$work/restore.sh" | head -n 1)
restored=$(docker run -d --network none --volume "$restore_volume:/var/lib/postgresql/data" --env PGDATA=/var/lib/postgresql/data/pgdata "$image")
rq() { docker exec --user postgres "$restored" psql -X -tA -U cluster_admin -d app -c "$1"; }
t_server=$(wait_for 60 "a server on the restored volume" rq 'select 1')
rows=$(rq "select count(*) || '|' || max(id) || '|' || count(*) filter (where note = 'after') from restore_probe")
[ "$rows" = "100|100|0" ] || fail "the restored copy holds '$rows' (count|max|after), not exactly the 100 rows before $at"
[ "$(rq 'select pg_is_in_recovery()')" = f ] || fail "the restored copy is still in recovery"
[ "$(rq 'show archive_mode')" = off ] || fail "the restored copy would archive into the production repository"
docker rm -f "$restored" > /dev/null
restored=""
log "one-off server on $restore_volume up after ${t_server}s: exactly the 100 rows before $at, none after; archive_mode off"

# The same commands again: the volume now holds a copy, and the job refuses.
if (eval "$(cat "$work/restore.sh")") > "$work/again.out" 2>&1; then
    fail "a second restore into $restore_volume succeeded: $(cat "$work/again.out")"
fi
grep -q 'it is not empty' "$work/again.out" || fail "the second restore failed for another reason: $(cat "$work/again.out")"
docker service rm "${stack}_restore" > /dev/null 2>&1 || true
log "the same commands again: the job refused (the volume is not empty)"

cat <<REPORT

=== hacompile on a single-node swarm (encrypted overlay: $(docker network inspect "${stack}_pg_net" --format '{{index .Options "encrypted"}}')) ===
  convergence after deploy:            ${convergence}s
  primary SIGKILL -> replacement task:  ${t_replaced}s; writes through HAProxy: ${t_writes}s (${failed} failed polls)
  replica SIGKILL -> replacement task:  ${t_replaced_r}s; reads on the replica: ${t_reads}s (${failed_r} failed polls)
  its exporter (pg_up, by name):         0 after ${t_pg_down}s, 1 again after ${t_pg_back}s
  exporter's first passing healthcheck:  ${t_exporter_healthy}s after its task started (interval 30s, start period 10s)
  HAProxy task force-restarted -> SIGUSR1 at ${t_signal}s, master exited 0 ${t_signal_exit}s later (grace ${grace}s); routing: ${t_haproxy}s (${failed_h} failed polls)
  first full backup by the scheduler:    ${backup_secs}s (pgbackrest info: start to stop)
  WAL of the DROP archived after switch: ${t_archived}s
  hacompile restore --time (the job):    ${t_restore}s (restore, replay, promote, stop); a server on the copy after ${t_server}s
REPORT
