#!/usr/bin/env bash
# Deploys the compiled Patroni topology (3 Patroni members, 3 etcd members,
# HAProxy) on a real single-node Docker Swarm and kills its leader. Builds
# the stand-in images from Debian packages (build-images.sh; nothing is
# pulled), pushes them to a loopback registry, pins them with `hacompile
# lock`, compiles patroni-spec.toml with `hacompile build`, deploys with
# `docker stack deploy`, then:
#   - waits for every service, a leader and two running replicas
#     (`patronictl list` through the compiled entrypoint inside a member),
#     writes through the published write port, reads through the read port
#     (a replica), HAProxy's stats show exactly one write server UP;
#   - etcd: every member answers /health from inside a Patroni member, the
#     cluster has 3 started members, no etcd service publishes a port and
#     HAProxy (not on the DCS network) cannot even resolve an etcd name;
#   - credentials: no secret value in `docker inspect` of any service or
#     container, in any process's command line inside any member (what
#     `ps -eo args` prints, read from /proc: the official image has no ps),
#     in the PostgreSQL servers' environment, in the log of any task of any
#     service (every task container's), or in the compiled files; a control
#     shows the same search finds the value where it must be (the member's
#     /run/secrets);
#   - SIGKILLs the leader's task container while a writer inserts through
#     the write port every 0.2 s: the outage (first failed to next
#     acknowledged write), the new leader, every acknowledged write still
#     there, and the killed member back (swarm restarts its task) as a
#     streaming replica on the new timeline (Patroni's pg_rewind);
#   - backups ([backup], encrypted posix repository): the first leader's
#     scheduler takes the first full backup before the kills; after the
#     failovers the leader then (a promoted replica) archives:
#     pg_stat_archiver on it counts archived WAL and no failure, and
#     `hacompile-pgbackrest check` in its task passes (a WAL switch pushed
#     and found in the repository);
#   - after the first round, a restore for real, from what the members
#     archived across it: rows before a recorded time, rows after, DROP TABLE,
#     pg_switch_wal(), that WAL archived; then exactly what `hacompile
#     restore --into <new volume> --time T` prints, eval'd (a replicated job
#     of the members' image: restore, replay, promote, clean stop); a
#     one-off server of the members' image on the new volume, with no
#     network, holds exactly the rows before T.
# Removes the stack, secrets, registry and (if it created it) the swarm,
# also on failure. Prints the figures. Runs after run.sh (.ci/run), not
# inside it: its own stack, ports and cleanup, and it can run alone.
#
#   tests/swarm/run-patroni.sh        (root; a running Docker daemon)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/swarm/lib.sh disable=SC1091
source "$here/lib.sh"
repo="$(cd "$here/../.." && pwd)"
stack=hc_patroni
write_port=15010
read_port=15011
stats_port=18090
members=(pg-1 pg-2 pg-3)
etcds=(etcd-1 etcd-2 etcd-3)
images=(postgres:15 patroni:15 etcd:3.4 haproxy:2.6)
secret_names=(postgres_user postgres_password replication_password patroni_api_password haproxy_stats_users backup_cipher_pass)
started=$(date +%s)
log() { printf '[patroni %4ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
# To stderr: a failure inside $(...) must not vanish into a variable.
fail() {
    log "FAIL: $*" >&2
    task_errors "$stack" >&2 || true
    exit 1
}
since() { awk -v a="$1" -v b="${2:-$(date +%s.%N)}" 'BEGIN { printf "%.1f", b - a }'; }

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
    since "$t0"
}

command -v docker >/dev/null || fail "the docker CLI is needed"
[ -z "$(docker volume ls -q | grep "^${stack}_" || true)" ] || fail "volumes of an earlier $stack are left: docker volume rm \$(docker volume ls -q | grep ^${stack}_)"
docker info > /dev/null 2>&1 || fail "the Docker daemon is not running"
for tool in docker-registry psql curl openssl python3; do command -v "$tool" >/dev/null || fail "$tool is needed (tests/setup.sh)"; done

work="$(mktemp -d)"
created_swarm=0
registry_pid=""
writer_pid=""
reg=""
restored=""
restore_volume=${stack}_restored
cleanup() {
    local rc=$?
    log "cleaning up"
    if [ -n "$writer_pid" ]; then kill "$writer_pid" 2>/dev/null || true; fi
    docker stack rm "$stack" > /dev/null 2>&1 || true
    for _ in $(seq 60); do
        [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] && break
        sleep 1
    done
    docker ps -aq --filter "label=com.docker.stack.namespace=$stack" | xargs -r timeout 120 docker rm -f > /dev/null 2>&1 || true
    remove_restore_job "$stack" "$restore_volume" "$restored"
    for s in "${secret_names[@]}"; do docker secret rm "$s" > /dev/null 2>&1 || true; done
    docker network ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r timeout 120 docker network rm > /dev/null 2>&1 || true
    # By label and by name: a volume left behind would hand the next run
    # an initialised etcd or data directory.
    { docker volume ls -q --filter "label=com.docker.stack.namespace=$stack"; docker volume ls -q | grep "^${stack}_" || true; } | sort -u | xargs -r timeout 120 docker volume rm > /dev/null 2>&1 || true
    if [ "$created_swarm" = 1 ]; then
        docker swarm leave --force > /dev/null 2>&1 || true
        docker network rm docker_gwbridge > /dev/null 2>&1 || true
    fi
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; fi
    if [ -n "$reg" ]; then
        for image in "${images[@]}"; do docker rmi "$reg/hacompile-test/$image" > /dev/null 2>&1 || true; done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

t0=$(date +%s.%N)
bash "$here/build-images.sh"
t_images=$(since "$t0")
(cd "$repo" && cargo build --quiet)
hc="$repo/target/debug/hacompile"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg="127.0.0.1:$port"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: %s\n' "$work" "$reg" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
wait_for 20 "the registry" curl -sf "http://$reg/v2/" > /dev/null
t0=$(date +%s.%N)
pushes=""
for image in "${images[@]}"; do
    t1=$(date +%s.%N)
    docker tag "hacompile-test/$image" "$reg/hacompile-test/$image"
    docker push -q "$reg/hacompile-test/$image" > /dev/null
    pushes="$pushes $image $(since "$t1")s"
done
t_push=$(since "$t0")
log "images built (${t_images}s) and pushed to $reg (${t_push}s:$pushes)"

sed "s|REGISTRY|$reg|g" "$here/patroni-spec.toml" > "$work/spec.toml"
"$hc" lock "$work/spec.toml" --insecure-registry "$reg"
"$hc" build "$work/spec.toml" -o "$work/deploy"
"$hc" lint "$work/deploy/docker-stack.yml" --format github --fail-on warning
stack_yml=$(< "$work/deploy/docker-stack.yml")
for image in patroni etcd haproxy; do
    digest=$(grep -A4 "reference = \"$reg/hacompile-test/$image" "$work/hacompile.lock" | sed -n 's/^digest = "\(.*\)"/\1/p')
    [ -n "$digest" ] || fail "hacompile.lock has no digest for $image"
    grep -q "image: $reg/hacompile-test/$image:[0-9.]*@$digest" <<< "$stack_yml" || fail "$image is not pinned to the locked $digest"
done
log "locked, built and linted; images pinned by digest"

if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    docker swarm init --advertise-addr 127.0.0.1 > /dev/null
    created_swarm=1
fi
# Secret values, kept only in this shell and in files under $work: every
# check below names a secret, never prints its value.
declare -A value
value[postgres_user]="admin_$(openssl rand -hex 6)"
value[postgres_password]="Pw-$(openssl rand -hex 12)"
value[replication_password]="Repl-$(openssl rand -hex 12)"
value[patroni_api_password]="Api-$(openssl rand -hex 12)"
value[backup_cipher_pass]="Cipher-$(openssl rand -hex 24)"
stats_hash=$(openssl passwd -6 swarm-stats)
value[haproxy_stats_users]=${stats_hash##*\$} # the hash's digest part
for s in postgres_user postgres_password replication_password patroni_api_password backup_cipher_pass; do
    printf '%s' "${value[$s]}" | docker secret create "$s" - > /dev/null
done
printf 'userlist hacompile_stats\n    user admin password %s\n' "$stats_hash" | docker secret create haproxy_stats_users - > /dev/null
export PGPASSWORD="${value[postgres_password]}"
pguser="${value[postgres_user]}"

deployed=$(date +%s.%N)
(cd "$work/deploy" && docker stack deploy -c docker-stack.yml "$stack" > /dev/null)
log "deployed; waiting for every service at its desired count"
services=$(( 1 + ${#members[@]} + ${#etcds[@]} ))
converged() {
    local lines; lines=$(docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Replicas}}')
    [ "$(echo "$lines" | wc -l)" = "$services" ] && ! echo "$lines" | grep -vqE '^([1-9][0-9]*)/\1( |$)'
}
wait_for 300 "convergence" converged > /dev/null
t_services=$(since "$deployed")
docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '  {{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}'

task_container() { docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$1" | head -n1; }
# `patronictl list` as JSON through the compiled entrypoint, from the first
# member with a running task (its credentials come from its own secrets).
cluster_json() {
    local m cid
    for m in "${members[@]}"; do
        cid=$(task_container "$m")
        [ -n "$cid" ] || continue
        timeout 10 docker exec "$cid" bash /usr/local/bin/hacompile-patroni-entrypoint.sh ctl list -f json 2> /dev/null && return 0
    done
    return 1
}
# The cluster as lines "member role state timeline lag", from cluster_json.
cluster() {
    cluster_json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    print(m.get("Member"), m.get("Role", "?").replace(" ", "_"), m.get("State"), m.get("TL", "-"), m.get("Lag in MB", "-"))'
}
leader() { cluster | awk '$2 == "Leader" && $3 == "running" { print $1 }'; }
# One leader, every other member a running (or streaming) replica on its timeline.
healthy() {
    local c; c=$(cluster) || return 1
    echo "$c" | awk -v n="${#members[@]}" '
        $2 == "Leader" && $3 == "running" { l++; tl = $4 }
        { role[NR] = $2; state[NR] = $3; t[NR] = $4 }
        END {
            if (NR != n || l != 1) exit 1
            for (i = 1; i <= NR; i++)
                if (role[i] != "Leader" && !((role[i] == "Replica" || role[i] == "Sync_Standby") && (state[i] == "running" || state[i] == "streaming") && t[i] == tl)) exit 1
        }'
}
q() { PGCONNECT_TIMEOUT=3 timeout 5 psql -X -q -tA -h 127.0.0.1 -p "$1" -U "$pguser" -d app -c "$2" 2> /dev/null; }
is_recovery() { [ "$(q "$1" 'select pg_is_in_recovery()')" = "$2" ]; }
write_servers_up() { # the number of postgres_write servers HAProxy's stats show UP
    local csv; csv=$(curl -sf --max-time 3 -u admin:swarm-stats "http://127.0.0.1:$stats_port/stats;csv") || return 1
    echo "$csv" | awk -F, '$1 == "postgres_write" && $2 !~ /FRONTEND|BACKEND/ { n++; if ($18 == "UP") up++ } END { print up + 0 "/" n + 0 }'
}
one_write_server_up() { [ "$(write_servers_up)" = "1/${#members[@]}" ]; }

wait_for 240 "a leader and $(( ${#members[@]} - 1 )) running replicas" healthy > /dev/null
t_bootstrap=$(since "$deployed")
first_leader=$(leader)
wait_for 120 "writes through :$write_port on the leader" is_recovery "$write_port" f > /dev/null
wait_for 120 "reads through :$read_port on a replica" is_recovery "$read_port" t > /dev/null
t_routes=$(since "$deployed")
q "$write_port" "create table heal (id bigserial primary key, at timestamptz default now())" || fail "create table"
[ "$(q "$write_port" "insert into heal default values returning id")" = 1 ] || fail "the first insert through :$write_port"
wait_for 30 "the row through :$read_port" bash -c "[ \"\$(PGPASSWORD='$PGPASSWORD' psql -X -tA -h 127.0.0.1 -p $read_port -U '$pguser' -d app -c 'select count(*) from heal' 2>/dev/null)\" = 1 ]" > /dev/null
wait_for 60 "HAProxy's stats: exactly one write server UP" one_write_server_up > /dev/null
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$stats_port/stats;csv")" = 401 ] || fail "stats page open without credentials"
log "services at their count after ${t_services}s; leader $first_leader and two running replicas after ${t_bootstrap}s; writes on :$write_port (the leader), reads on :$read_port (a replica) after ${t_routes}s; stats: write servers UP $(write_servers_up)"
cluster | sed 's/^/  /'
sync_standby() { [ -n "$(q "$write_port" "show synchronous_standby_names")" ]; }
wait_for 30 "synchronous_standby_names on the leader (synchronous_mode on)" sync_standby > /dev/null

# --- etcd: reachable from the members, not published, not reachable from HAProxy.
for m in "${members[@]}"; do
    cid=$(task_container "$m")
    for e in "${etcds[@]}"; do
        health=$(docker exec "$cid" python3 -c "import urllib.request; print(urllib.request.urlopen('http://$e:2379/health', timeout=3).read().decode())") \
            || fail "$m cannot reach $e's client port"
        grep -q '"health":"true"' <<< "$health" || fail "$e is not healthy as seen from $m: $health"
    done
done
etcd_members=$(docker exec "$(task_container etcd-1)" sh -c 'ETCDCTL_API=3 etcdctl member list')
[ "$(grep -c ', started, ' <<< "$etcd_members")" = "${#etcds[@]}" ] || fail "etcd does not list ${#etcds[@]} started members: $etcd_members"
for e in "${etcds[@]}"; do
    ports=$(docker service inspect --format '{{json .Spec.EndpointSpec.Ports}} {{json .Endpoint.Ports}}' "${stack}_$e")
    [ "$ports" = "null null" ] || fail "$e publishes ports: $ports"
    cid=$(task_container "$e")
    [ "$(docker inspect --format '{{json .HostConfig.PortBindings}}' "$cid")" = "{}" ] || fail "$e's container binds host ports"
done
proxy=$(task_container haproxy)
if docker exec "$proxy" getent hosts etcd-1 > /dev/null 2>&1; then fail "HAProxy resolves etcd-1: it shares a network with etcd"; fi
docker exec "$proxy" getent hosts pg-1 > /dev/null || fail "HAProxy cannot resolve pg-1: the control for the check above fails"
log "etcd: ${#etcds[@]} started members, /health true from each of ${#members[@]} members; no port published; HAProxy cannot resolve etcd-1 (but resolves pg-1)"

# --- credentials: nowhere but where they belong.
# Fails naming the secret whose value appears in TEXT (never the value).
no_secret_in() {
    local what=$1 text=$2 s
    for s in "${!value[@]}"; do
        if grep -qF -- "${value[$s]}" <<< "$text"; then fail "the $s secret's value appears in $what"; fi
    done
}
no_password_in() {
    local what=$1 text=$2 s
    for s in postgres_password replication_password patroni_api_password haproxy_stats_users; do
        if grep -qF -- "${value[$s]}" <<< "$text"; then fail "the $s secret's value appears in $what"; fi
    done
}
# The control: the same search finds each value where it must be.
cid=$(task_container "${members[0]}")
for s in postgres_user postgres_password replication_password patroni_api_password; do
    grep -qF -- "${value[$s]}" <<< "$(docker exec "$cid" cat "/run/secrets/$s")" || fail "control: the $s secret's value is not in ${members[0]}'s /run/secrets/$s"
done
# Patroni: PID 1 without [backup]; with it PID 1 is docker's init (the
# stack's `init: true`) and Patroni its child.
patroni_pid=$(docker exec "$cid" sh -c 'for p in /proc/[0-9]*; do case "$(tr "\0" " " < "$p/cmdline" 2> /dev/null)" in *bin/patroni\ *) echo "${p#/proc/}"; break ;; esac; done')
[ -n "$patroni_pid" ] || fail "control: no Patroni process in ${members[0]}"
grep -qF -- "${value[postgres_password]}" <<< "$(docker exec "$cid" sh -c "tr '\0' '\n' < /proc/$patroni_pid/environ")" \
    || fail "control: Patroni (PID $patroni_pid) has no superuser password in its environment (how did it bootstrap?)"
check_credentials() { # when -> fails on a secret value outside its place
    local when=$1 m cid pid ids cmdlines logs named inspected
    # Each read must have answered: a search of nothing finds nothing.
    mapfile -t ids < <(docker service ls -q --filter "label=com.docker.stack.namespace=$stack")
    [ "${#ids[@]}" = "$services" ] || fail "credentials ($when): ${#ids[@]} services listed, not $services"
    inspected=$(docker service inspect "${ids[@]}") || fail "credentials ($when): docker service inspect failed"
    no_secret_in "docker service inspect ($when)" "$inspected"
    mapfile -t ids < <(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")
    [ "${#ids[@]}" -ge "$services" ] || fail "credentials ($when): ${#ids[@]} containers listed, fewer than the services"
    inspected=$(docker inspect "${ids[@]}") || fail "credentials ($when): docker inspect of the containers failed"
    no_secret_in "docker inspect of the containers ($when)" "$inspected"
    for m in "${members[@]}"; do
        cid=$(task_container "$m")
        # PostgreSQL titles each backend `postgres: USER DATABASE HOST ...`
        # (even with update_process_title off): the superuser's name shows
        # for Patroni's own connection, by PostgreSQL's design. Passwords
        # must not; the name must not in any other process.
        cmdlines=$(docker exec "$cid" sh -c 'for f in /proc/[0-9]*/cmdline; do tr "\0" " " < "$f"; echo; done 2> /dev/null')
        no_secret_in "a command line in $m ($when)" "$(grep -v '^postgres: ' <<< "$cmdlines")"
        no_password_in "a PostgreSQL process title in $m ($when)" "$(grep '^postgres: ' <<< "$cmdlines")"
        # Patroni keeps PATRONI_* out of the postmaster's environment.
        for pid in $(docker exec "$cid" sh -c 'grep -l "^postgres$" /proc/[0-9]*/comm 2> /dev/null | cut -d/ -f3'); do
            no_secret_in "the environment of $m's postgres process $pid ($when)" "$(docker exec "$cid" sh -c "tr '\0' '\n' < /proc/$pid/environ" 2> /dev/null || true)"
        done
    done
    for svc in $(docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Name}}'); do
        logs=$(service_logs "$svc") || fail "credentials ($when): the logs of $svc could not be read"
        no_password_in "the logs of $svc ($when)" "$logs"
        # Patroni logs the conninfo it rewinds or clones from, user name
        # included (passwords come from the pgpass file): reported, masked.
        named=$(grep -F -- "${value[postgres_user]}" <<< "$logs" || true)
        if [ -n "$named" ]; then
            log "note: the superuser's name (a secret here) is in $(grep -c . <<< "$named") line(s) of the logs of $svc ($when), e.g.: $(head -n 1 <<< "${named//${value[postgres_user]}/<postgres_user>}" | cut -c1-300)"
        fi
    done
    no_secret_in "the compiled files" "$(cat "$work/deploy"/*)"
}
check_credentials "after bootstrap"
postmasters=$(docker exec "$(task_container "$first_leader")" sh -c 'grep -l "^postgres$" /proc/[0-9]*/comm 2> /dev/null | wc -l')
log "credentials: none in docker inspect (services, containers), command lines of every member (the superuser's name only in PostgreSQL's backend titles), the environment of $postmasters postgres processes on the leader (and the replicas'), service logs (passwords) or compiled files; the control finds each in /run/secrets and Patroni's environment"

# The first leader's scheduler: the stanza and the first full backup.
backrest() { docker exec --user postgres "$(task_container "$1")" hacompile-pgbackrest "${@:2}"; }
has_full() { backrest "$(leader)" info --output=json | python3 -c 'import json, sys; sys.exit(0 if any(b["type"] == "full" for s in json.load(sys.stdin) for b in s["backup"]) else 1)'; }
t_backup=$(wait_for 240 "the first full backup (hacompile-pgbackrest info)" has_full)
log "first full backup in the repository ${t_backup}s into the backup check"

# --- the leader fails while a writer inserts through the write port every
# 0.2 s. Lines "ok ID START END" (acknowledged) or "fail - START END" in
# $1; stops when $1.stop exists, bounded 300 s.
writer() {
    local out=$1 end=$(( $(date +%s) + 300 )) id t
    while [ ! -e "$out.stop" ] && (( $(date +%s) < end )); do
        t=$(date +%s.%N)
        if id=$(q "$write_port" "insert into heal default values returning id") && [ -n "$id" ]; then
            echo "ok $id $t $(date +%s.%N)"
        else
            echo "fail - $t $(date +%s.%N)"
        fi
        sleep 0.2
    done >> "$out"
}
# One round: MODE `kill` SIGKILLs the leader's task container (swarm
# restarts it after the compiled 1 s delay); MODE `hang` freezes it first
# (`docker pause`: Patroni can no longer renew its lock, like a hung node),
# waits for another leader, then SIGKILLs the frozen container. Sets r_*.
round() {
    local mode=$1 writes="$work/writes-$1" victim old killed frozen=""
    : > "$writes"
    writer "$writes" &
    writer_pid=$!
    sleep 3
    victim=$(leader)
    old=$(task_container "$victim")
    [ -n "$old" ] || fail "no running container for the leader $victim"
    if [ "$mode" = hang ]; then
        frozen=$(date +%s.%N)
        docker pause "$old" > /dev/null
        other_leader() { local l; l=$(leader) && [ -n "$l" ] && [ "$l" != "$victim" ]; }
        r_promoted=$(wait_for 120 "another leader while $victim is frozen" other_leader)
    fi
    killed=$(date +%s.%N)
    docker kill --signal KILL "$old" > /dev/null
    wait_for 10 "the killed leader to exit" bash -c "[ \"\$(timeout 10 docker inspect --format '{{.State.Running}}' $old)\" = false ]" > /dev/null
    [ "$(docker inspect --format '{{.State.ExitCode}}' "$old")" = 137 ] || fail "$victim's container exited with $(docker inspect --format '{{.State.ExitCode}}' "$old"), not 137"
    local t_fail=${frozen:-$killed}
    # The outage as the writer saw it: from the start of its first failed
    # write after the failure to the end of its next acknowledged one.
    outage() { awk -v k="$t_fail" -v what="$1" '
        $1 == "fail" && $3 > k && !f { f = $3 }
        $1 == "ok" && f && !e { e = $4 }
        END { if (!e) exit 1; printf "%.1f", what == "outage" ? e - f : e - k }' "$writes"; }
    wait_for 120 "a failed write and then an acknowledged one after the failure" outage outage > /dev/null
    r_writes=$(outage since)
    r_outage=$(outage outage)
    replaced() { docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$victim" | grep -vq "^${old:0:12}"; }
    wait_for 120 "swarm to restart $victim's task" replaced > /dev/null
    # When the new task's container started (checked later than it happened).
    r_restarted=$(since "$killed" "$(date -d "$(docker inspect --format '{{.State.StartedAt}}' "$(task_container "$victim")")" +%s.%N)")
    victim_running() { healthy && cluster | awk -v v="$victim" '$1 == v && $3 == "running" { found = 1 } END { exit !found }'; }
    if ! (wait_for 180 "$victim running again in a healthy cluster" victim_running > /dev/null); then
        # What the cluster and the victim said (never a secret: Patroni's
        # and PostgreSQL's log lines, masked as check_credentials does).
        cluster 2>&1 | sed 's/^/  /' >&2 || true
        local m
        for m in "${members[@]}"; do
            echo "--- the last lines of $m's log (the superuser's name masked)" >&2
            service_logs "${stack}_$m" --tail "${HACOMPILE_DIAG_LINES:-40}" | sed "s/${value[postgres_user]}/<postgres_user>/g" | cut -c1-300 >&2 || true
        done
        fail "$victim is not running again in a healthy cluster ($mode)"
    fi
    r_back=$(since "$t_fail")
    sleep 2
    touch "$writes.stop"
    wait "$writer_pid" || true
    writer_pid=""
    r_victim=$victim
    r_leader=$(leader)
    r_role=$(cluster | awk -v v="$victim" '$1 == v { print $2 }')
    r_tl=$(cluster | awk -v v="$victim" '$1 == v { print $4 }')
    cluster | sed 's/^/  /'
    # Every acknowledged id still there.
    r_failed=$(awk '$1 == "fail"' "$writes" | wc -l)
    local acked; acked=$(awk '$1 == "ok" { print $2 }' "$writes")
    r_acked=$(echo "$acked" | grep -c .)
    # Asked again (bounded) if one query right after the round gets no answer.
    r_present=""
    present() { r_present=$(q "$write_port" "select count(*) from heal where id in ($(echo "$acked" | paste -sd,))") && [ -n "$r_present" ]; }
    wait_for 30 "the acknowledged writes counted through :$write_port" present > /dev/null
    [ "$r_present" = "$r_acked" ] || fail "$(( r_acked - r_present )) of $r_acked acknowledged writes are missing after $victim's failure ($mode)"
    r_rewind=no
    if grep -q 'pg_rewind' <<< "$(docker logs "$(task_container "$victim")" 2>&1)"; then r_rewind=yes; fi
    # Before its pg_rewind, Patroni archives the crashed leader's ready WAL,
    # past the fork too; the wrapper refuses that (reported, not asserted).
    r_refused=$(docker logs "$(task_container "$victim")" 2>&1 | grep -o 'refusing to archive [0-9A-F]*: timeline [0-9]* forked off timeline [0-9]* at [0-9A-F/]*' | head -n 1 || true)
    wait_for 60 "HAProxy's stats: exactly one write server UP again" one_write_server_up > /dev/null
    if ! is_recovery "$write_port" f; then
        # What psql said (never a secret: the user's name masked), then a
        # bounded wait: HAProxy already shows the one write server UP.
        local said
        said=$(PGCONNECT_TIMEOUT=3 timeout 5 psql -X -q -tA -h 127.0.0.1 -p "$write_port" -U "$pguser" -d app -c 'select pg_is_in_recovery()' 2>&1 | sed "s/${value[postgres_user]}/<postgres_user>/g" | head -n 3 | tr '\n' ' ' || true)
        log "note: a query through :$write_port after the $mode round failed (psql: $said); waiting for the leader"
        wait_for 30 "writes to reach the leader" is_recovery "$write_port" f > /dev/null
    fi
    wait_for 30 "reads on a replica again" is_recovery "$read_port" t > /dev/null
}

round kill
k_victim=$r_victim k_leader=$r_leader k_role=$r_role k_tl=$r_tl k_writes=$r_writes k_outage=$r_outage k_failed=$r_failed k_acked=$r_acked k_restarted=$r_restarted k_back=$r_back k_rewind=$r_rewind
if [ "$k_leader" = "$k_victim" ]; then
    k_what="the restarted $k_victim took its own lock back (ttl 20 s not yet run out): no failover, timeline $k_tl"
else
    k_what="$k_leader promoted; $k_victim back as $k_role on timeline $k_tl (pg_rewind in its log: $k_rewind)"
fi
log "kill: leader $k_victim SIGKILLed (exit 137): writes acknowledged again after ${k_writes}s (writer's outage ${k_outage}s, $k_failed failed polls); task restarted after ${k_restarted}s, running again after ${k_back}s; $k_what; all $k_acked acknowledged writes present"

# --- a restore for real, from what the members archived across the
# first round (the leader killed; its timeline ended): exactly the rows
# before a recorded time come back. Before the hang round, so that a
# failure there leaves this proof standing.
restore_leader=$(leader)
archiver_now() { q "$write_port" "select archived_count || ' ' || failed_count || ' ' || coalesce(last_archived_wal, '-') from pg_stat_archiver where not pg_is_in_recovery()"; }
q "$write_port" "create table restore_probe (id int primary key, note text, stamped timestamptz not null default clock_timestamp())" || fail "create restore_probe"
tl_before=$(q "$write_port" "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
q "$write_port" "insert into restore_probe select g, 'before' from generate_series(1, 100) g" || fail "insert before"
sleep 1.1
at=$(q "$write_port" "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
[ -n "$at" ] || fail "no time recorded"
# The same moment, by name (a WAL record: no clock involved).
[ -n "$(q "$write_port" "select pg_create_restore_point('hc_before_drop')")" ] || fail "pg_create_restore_point on the leader"
sleep 1.1
q "$write_port" "insert into restore_probe select g, 'after' from generate_series(101, 150) g" || fail "insert after"
# A restore to a time is exact only if the clock moved forward across it:
# every commit before T (the round's writes, the rows before) stamped
# earlier, the rows after later. A clock stepped back (a virtual machine
# resynchronised) would make T name another moment; the test then
# restores to the restore point recorded with T, and says so.
last_write=$(awk '$1 == "ok" && $4 > m { m = $4 } END { printf "%.6f", m }' "$work/writes-kill")
clock=$(q "$write_port" "select max(stamped) filter (where note = 'before') < '$at' and '$at' < min(stamped) filter (where note = 'after') and to_timestamp($last_write) < '$at' from restore_probe")
q "$write_port" "drop table restore_probe" || fail "drop table"
switched=$(q "$write_port" "select pg_walfile_name(pg_switch_wal())")
[ -n "$switched" ] || fail "pg_switch_wal() on the leader"
[ "${switched:0:8}" = "$tl_before" ] || fail "the leader changed while the rows were written (timeline $tl_before, then ${switched:0:8}): $(cluster | tr '\n' ';')"
archived_upto() { local last; last=$(archiver_now | awk '{ print $3 }'); [[ "$last" > "$switched" || "$last" == "$switched" ]]; }
t_archived=$(wait_for 120 "the WAL with the DROP ($switched) archived by $restore_leader" archived_upto)
if [ "$clock" = t ]; then
    target=(--time "$at")
    target_what="the time $at"
else
    log "note: the clock did not move forward across $at ('$clock': the round's last write ended at epoch $last_write); restoring to the restore point recorded with it"
    target=(--name hc_before_drop)
    target_what="the restore point hc_before_drop (recorded at $at)"
fi
"$hc" restore "$work/spec.toml" --into "$restore_volume" "${target[@]}" > "$work/restore.sh"
shellcheck -s sh "$work/restore.sh" || fail "the printed restore commands fail shellcheck"
image=$(grep -o "$reg/hacompile-test/patroni:15@sha256:[0-9a-f]*" "$work/restore.sh" | head -n 1)
[ -n "$image" ] || fail "the restore job does not run the members' image pinned by digest: $(cat "$work/restore.sh")"
t0=$(date +%s.%N)
# Exactly what was printed.
if ! (eval "$(cat "$work/restore.sh")") > "$work/restore.out" 2>&1; then
    cat "$work/restore.out" >&2
    fail "the printed restore commands failed"
fi
t_restore=$(since "$t0")
grep -qE 'recovery stopping (before commit|at restore point)' "$work/restore.out" || fail "the job's log does not say where recovery stopped: $(cat "$work/restore.out")"
stopped_at=$(grep -oE 'recovery stopping (before commit|at restore point).*' "$work/restore.out" | head -n 1)
# A one-off server of the members' image on the restored volume, as the
# printed comment says: no repository, no secret, no network. Patroni's
# pg_hba.conf came with the copy: the superuser's password over the socket
# (from this shell's environment, not on a command line).
mount=$(sed -n 's/^#.*--volume [^ ]*:\([^ ]*\) .*/\1/p' "$work/restore.sh")
pgdata=$(sed -n 's/^#.*--env PGDATA=\([^ ]*\) .*/\1/p' "$work/restore.sh")
{ [ -n "$mount" ] && [ -n "$pgdata" ]; } || fail "the printed commands name no volume mount or PGDATA for a server on the copy"
restored=$(docker run -d --network none --volume "$restore_volume:$mount" --env "PGDATA=$pgdata" "$image")
rq() { docker exec --env PGPASSWORD "$restored" psql -X -tA -U "$pguser" -d app -c "$1"; }
t_server=$(wait_for 60 "a server on the restored volume" rq 'select 1')
rows=$(rq "select count(*) || '|' || max(id) || '|' || count(*) filter (where note = 'after') from restore_probe" 2>&1) || true
if [ "$rows" != "100|100|0" ]; then
    # What the job, the copy and the repository say (names, times and
    # positions; the superuser's name masked), before failing.
    {
        echo "--- the restore job's output"
        cat "$work/restore.out"
        echo "--- the copy: tables, heal rows, timeline, last replayed commit"
        rq "select string_agg(relname, ' ') from pg_stat_user_tables" 2>&1 || true
        rq "select count(*) || ' rows of heal, max id ' || max(id) from heal" 2>&1 || true
        rq "select timeline_id || ' ' || redo_lsn from pg_control_checkpoint()" 2>&1 || true
        echo "--- pgbackrest info on $restore_leader"
        backrest "$restore_leader" info 2>&1 || true
        echo "--- the archive's history and partial files (pgbackrest repo-ls, repo-get)"
        for f in $(backrest "$restore_leader" repo-ls --recurse archive 2> /dev/null | grep -E '\.history|\.partial'); do
            echo "$f"
            case "$f" in *.history) backrest "$restore_leader" repo-get "archive/$f" 2>&1 | head -n 5 ;; esac
        done
        echo "--- the leader's log: promotions and backups"
        service_logs "${stack}_$restore_leader" 2>&1 | grep -E 'promot|timeline|backup|lock' | tail -n 40 || true
    } 2>&1 | sed "s/${value[postgres_user]}/<postgres_user>/g" | cut -c1-400 >&2
    fail "the restored copy holds '$rows' (count|max|after), not exactly the 100 rows before $target_what"
fi
[ "$(rq 'select pg_is_in_recovery()')" = f ] || fail "the restored copy is still in recovery"
[ "$(rq 'show archive_mode')" = off ] || fail "the restored copy would archive into the production repository"
restored_heal=$(rq 'select count(*) from heal')
restored_tl=$(rq 'select timeline_id from pg_control_checkpoint()')
restored_sync=$(rq 'show synchronous_standby_names')
docker rm -f "$restored" > /dev/null
restored=""
log "restore: $switched archived ${t_archived}s after pg_switch_wal(); the printed job (members' image) restored and replayed in ${t_restore}s ($stopped_at); a one-off server on $restore_volume up after ${t_server}s: exactly the 100 rows before $target_what, none after, $restored_heal rows of heal, timeline $restored_tl, archive_mode off, synchronous_standby_names '$restored_sync'"

round hang
[ "$r_leader" != "$r_victim" ] || fail "the frozen and killed $r_victim leads again"
case "$r_role" in Replica | Sync_Standby) ;; *) fail "$r_victim came back as '$r_role', not a replica" ;; esac
log "hang: leader $r_victim frozen, another leader after ${r_promoted}s, then SIGKILLed: writes acknowledged again ${r_writes}s after the freeze (writer's outage ${r_outage}s, $r_failed failed polls); $r_leader leads; $r_victim's task restarted ${r_restarted}s after the kill and back as $r_role on timeline $r_tl ${r_back}s after the freeze (pg_rewind in its log: $r_rewind); all $r_acked acknowledged writes present; its WAL past the fork: ${r_refused:-none offered to the archive}"

# The leader after the failovers, a promoted replica, archives.
now_leader=$(leader)
[ "$now_leader" != "$first_leader" ] || fail "no failover happened: $first_leader still leads"
t_check=$(date +%s.%N)
check_out=$(backrest "$now_leader" check 2>&1) || fail "pgbackrest check on the new leader $now_leader: $check_out"
t_check=$(awk -v a="$t_check" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
# Through the write port: the leader only. One query there can fail right
# after a failover round (CI saw an empty answer once, with the cluster
# healthy and the check above passed): asked again, bounded.
archiver=""
archiver_row() { archiver=$(archiver_now) && [ -n "$archiver" ]; }
wait_for 30 "pg_stat_archiver of the leader through :$write_port" archiver_row > /dev/null
read -r a_count a_failed a_last <<< "$archiver"
[ "${a_count:-0}" -gt 0 ] || fail "the new leader $now_leader archived nothing: $archiver"
[ "${a_failed:-1}" = 0 ] || fail "the new leader $now_leader failed to archive: $archiver"
log "new leader $now_leader (was a replica) archives: pg_stat_archiver archived $a_count, failed $a_failed, last $a_last; pgbackrest check passed in ${t_check}s"

check_credentials "after the failovers"
log "after the failovers: routing ok, write servers UP $(write_servers_up), credentials still nowhere else"

cat <<REPORT

=== hacompile topology "patroni" on a single-node swarm (3 Patroni members, 3 etcd, ttl 20 / loop_wait 5 / retry_timeout 5, restart delay 1 s) ===
  images (build-images.sh), push:         ${t_images}s, ${t_push}s
  services at their count after deploy:   ${t_services}s
  leader + 2 running replicas:            ${t_bootstrap}s; writes and reads through HAProxy: ${t_routes}s
  leader SIGKILL -> writes acknowledged:  ${k_writes}s (writer's outage ${k_outage}s, ${k_failed} failed polls at 0.2 s); task restarted ${k_restarted}s
                                          ${k_what}
  leader frozen -> another leader:        ${r_promoted}s; writes acknowledged: ${r_writes}s (outage ${r_outage}s, ${r_failed} failed polls)
  first full backup (scheduler):         ${t_backup}s into its check; new leader archives, pgbackrest check ${t_check}s
  restore --time across the failovers:    WAL archived ${t_archived}s after switch; job ${t_restore}s; server on the copy ${t_server}s (exactly the 100 rows before T)
  frozen leader SIGKILLed -> replica:     task restarted ${r_restarted}s after the kill; a running ${r_role} ${r_back}s after the freeze (pg_rewind: ${r_rewind})
  acknowledged writes lost:               0 of $(( k_acked + r_acked ))
REPORT
