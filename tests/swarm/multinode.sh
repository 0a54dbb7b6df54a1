#!/usr/bin/env bash
# Deploys both compiled topologies on a real three-node Docker Swarm built on
# this machine, and takes nodes away. Each node is a Docker-in-Docker
# container (build-node.sh) with its own dockerd, its /var/lib/docker on the
# host's disk, a fixed address on a bridge network this script creates; the
# three are swarm managers. Images are the stand-ins of build-images.sh,
# served to the nodes by a registry on that network's gateway; nothing is
# pulled from outside. Then:
#   pinned (multinode-pinned.toml):
#     - placement: the primary on the node labelled pg.role=primary, the
#       replica on pg.role=replica, one HAProxy per node, never two database
#       tasks on a node; writes and reads answer on every node's ports;
#     - the replica's node is killed: reads through the other nodes' proxies
#       (failed reads counted, time to recover); it returns: the replica runs
#       on it again and serves reads;
#     - the primary's node is killed while a client writes through another
#       node's proxy: writes stop (the topology's documented limit); the
#       README's manual failover runbook, step by step; every write the old
#       primary acknowledged that reached the replica is on the new primary;
#       the ones that did not are counted, and found on the old primary's
#       volume once its node returns (the runbook leaves it untouched);
#   patroni (multinode-patroni.toml):
#     - placement: pg-N and etcd-N on node N, one HAProxy per node;
#     - the leader's node is killed KILLS times (default 3) while a client
#       writes through a surviving node's proxy: a member on another node
#       becomes leader, etcd keeps quorum (a write to etcd succeeds), the
#       time from the kill to the first acknowledged write attempted after
#       it is measured, no acknowledged write is lost (synchronous mode);
#       the node returns (docker start, nothing else): its member rejoins as
#       a replica streaming from the leader, etcd has 3 healthy members, the
#       swarm is back to the spec's placement.
# The nodes are killed with `docker kill` (SIGKILL to the node's dockerd and
# everything in it: a machine's power cut, as far as the swarm can tell).
# Swarm's dispatcher heartbeat keeps its default (5 s): Patroni's failover
# does not depend on it.
# Removes the node containers (and with them the swarm, its tasks and
# volumes), the network, the registry and its images, and the nodes' data
# directories, also on failure. Prints the figures.
#
#   tests/swarm/multinode.sh          (root; a running Docker daemon)
#   KILLS=5 tests/swarm/multinode.sh  (more leader-node kills for the figures)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
kills=${KILLS:-3}
started=$(date +%s)
log() { printf '[multinode %4ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
# To stderr: a failure inside $(...) is seen, not captured.
fail() { log "FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Bounded wait: until CMD succeeds or SECS pass. Prints the seconds taken.
wait_for() {
    local secs=$1 what=$2; shift 2
    local t0; t0=$(now)
    while ! "$@" > /dev/null 2>&1; do
        if (( $(date +%s) - ${t0%.*} >= secs )); then
            fail "timed out after ${secs}s waiting for $what"
        fi
        sleep 0.5
    done
    since "$t0"
}

(( kills >= 3 && kills <= 10 )) || fail "KILLS must be 3 to 10"
command -v docker > /dev/null || fail "the docker CLI is needed"
docker info > /dev/null 2>&1 || fail "the Docker daemon is not running"
for tool in docker-registry psql curl openssl python3; do command -v "$tool" > /dev/null || fail "$tool is needed (tests/setup.sh)"; done

# The nodes' /var/lib/docker must be on a disk (overlay2 inside a node does
# not work on overlayfs or tmpfs): under /var/tmp, not /tmp.
if [ -z "${HCMN_WORK:-}" ]; then
    # This shell only starts the run in a child, waits and cleans up: bash
    # runs a trap only once its foreground command returns, and a docker
    # client in the foreground may outlive `timeout`'s TERM until its KILL
    # (which no trap sees); `wait` returns at once. Everything the run makes
    # is named from HCMN_PREFIX or lives in HCMN_WORK, so the cleanup needs
    # nothing from the child.
    HCMN_WORK="$(mktemp -d /var/tmp/hacompile-multinode.XXXXXX)"
    HCMN_PREFIX="hcmn-$$"
    export HCMN_WORK HCMN_PREFIX HCMN_STARTED=$started
    bash "$0" "$@" &
    child=$!
    trap 'kill -TERM "$child" 2> /dev/null || true' TERM INT
    rc=0
    wait "$child" || rc=$?
    if kill -0 "$child" 2> /dev/null; then
        log "interrupted (signal); stopping the run"
        kill -TERM "$child" 2> /dev/null || true
    fi
    log "cleaning up"
    # Removing a node container ends its dockerd and every task in it; the
    # mounts its dockerd made live in the container's mount namespace and go
    # with it. A client still talking to a node then fails at once.
    for i in 1 2 3; do docker rm -f "$HCMN_PREFIX-node-$i" > /dev/null 2>&1 || true; done
    docker network rm "$HCMN_PREFIX" > /dev/null 2>&1 || true
    for f in registry.pids writer.pids; do
        if [ -s "$HCMN_WORK/$f" ]; then xargs -r kill < "$HCMN_WORK/$f" 2> /dev/null || true; fi
    done
    if [ -s "$HCMN_WORK/pushed" ]; then xargs -r docker rmi < "$HCMN_WORK/pushed" > /dev/null 2>&1 || true; fi
    rm -rf "$HCMN_WORK"
    [ ! -e "$HCMN_WORK" ] || log "could not remove $HCMN_WORK"
    kill -KILL "$child" 2> /dev/null || true
    log "done (exit $rc) after $(( $(date +%s) - started ))s"
    exit "$rc"
fi
started=${HCMN_STARTED:-$started}
work=$HCMN_WORK
prefix=$HCMN_PREFIX
net="$prefix"

# ------------------------------------------------------------------ images
log "building images from Debian packages"
bash "$here/build-images.sh"
node_image=$(bash "$here/build-node.sh")
(cd "$repo" && cargo build --quiet)
hc="$repo/target/debug/hacompile"
log "node image $node_image"

# A /24 in 192.168.0.0/16 that no route and no Docker network uses (the
# proxies' client ACL admits 192.168.0.0/16; the nodes' own Docker networks
# take 172.16.0.0/12 and 10.0.0.0/8).
subnet=""
for _ in $(seq 20); do
    candidate="192.168.$(( 200 + RANDOM % 50 ))"
    ip -4 route | grep -q "^$candidate\." && continue
    if docker network create --driver bridge --subnet "$candidate.0/24" --gateway "$candidate.1" "$net" > /dev/null 2>&1; then
        subnet=$candidate
        break
    fi
done
[ -n "$subnet" ] || fail "no free 192.168.x.0/24 for the nodes' network"
gw="$subnet.1"
node_ip() { echo "$subnet.1$1"; }
nodec() { echo "$prefix-node-$1"; }

free_port() { python3 -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"; }
# One registry storage, two servers: the host pushes to the loopback one
# (Docker allows plain HTTP to 127.0.0.0/8 only), the nodes pull from the
# gateway one (each node's dockerd allows it by --insecure-registry).
push_reg="127.0.0.1:$(free_port 127.0.0.1)"
reg="$gw:$(free_port "$gw")"
for addr in "$push_reg" "$reg"; do
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/registry\nhttp:\n  addr: %s\n' "$work" "$addr" > "$work/registry-${addr##*:}.yml"
    docker-registry serve "$work/registry-${addr##*:}.yml" > "$work/registry-${addr##*:}.log" 2>&1 &
    echo $! >> "$work/registry.pids"
    wait_for 20 "the registry on $addr" curl -sf "http://$addr/v2/" > /dev/null
done
t_push=$(now)
for image in postgres:15 haproxy:2.6 patroni:15 etcd:3.4; do
    docker tag "hacompile-test/$image" "$push_reg/hacompile-test/$image"
    echo "$push_reg/hacompile-test/$image" >> "$work/pushed"
    docker push -q "$push_reg/hacompile-test/$image" > /dev/null
done
log "images pushed to $push_reg, served to the nodes as $reg ($(since "$t_push")s)"

# ------------------------------------------------------------------- nodes
# Not --privileged (it fails here: the bounding set lacks CAP_SYS_RESOURCE);
# every other capability, no seccomp/AppArmor/masked paths, every device;
# /run a fresh tmpfs at each start (else a restarted node keeps stale
# network namespaces: "node is missing network attachments").
start_node_container() {
    local i=$1
    mkdir -p "$work/node-$i"
    docker run -d --name "$(nodec "$i")" --hostname "node-$i" \
        --network "$net" --ip "$(node_ip "$i")" \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
        --device-cgroup-rule 'a *:* rwm' --tmpfs /run:exec \
        -v "$work/node-$i:/var/lib/docker" \
        -e "HACOMPILE_NODE_REGISTRY=$reg" \
        "$node_image" > /dev/null
}
# Bounded (HACOMPILE_DOCKER_TIMEOUT, 180 s): a docker CLI with no answer
# fails the run at that call, not at the script's own bound.
on() { local i=$1; shift; timeout --foreground -k 10 "${HACOMPILE_DOCKER_TIMEOUT:-180}" docker exec -i "$(nodec "$i")" "$@"; }
dk() { local i=$1; shift; on "$i" docker "$@"; }
mgr=1
dm() { dk "$mgr" "$@"; }
# A manager command that may meet a raft election right after a node loss.
dm_retry() {
    local _n
    for _n in $(seq 30); do
        if dm "$@"; then return 0; fi
        sleep 1
    done
    fail "docker $* on node-$mgr failed for 30 s"
}
t_nodes=$(now)
for i in 1 2 3; do start_node_container "$i"; done
for i in 1 2 3; do wait_for 60 "dockerd on node-$i" dk "$i" info > /dev/null; done
[ "$(dk 1 info --format '{{.Driver}}')" = overlay2 ] || fail "node-1's dockerd does not use overlay2: $(dk 1 info --format '{{.Driver}}')"
dk 1 swarm init --advertise-addr "$(node_ip 1)" > /dev/null
token=$(dk 1 swarm join-token -q manager)
for i in 2 3; do dk "$i" swarm join --advertise-addr "$(node_ip "$i")" --token "$token" "$(node_ip 1):2377" > /dev/null; done
declare -A node_id
for i in 1 2 3; do
    node_id[$i]=$(dk "$i" info --format '{{.Swarm.NodeID}}')
done
ready() { [ "$(dm node inspect --format '{{.Status.State}}' "${node_id[$1]}")" = ready ]; }
for i in 1 2 3; do wait_for 60 "node-$i ready" ready "$i" > /dev/null; done
log "three nodes, three managers, swarm formed ($(since "$t_nodes")s): $(dm node ls --format '{{.Hostname}}={{.ManagerStatus}}' | tr '\n' ' ')"

printf '%s' cluster_admin | dm secret create postgres_user - > /dev/null
printf '%s' "Pw-$(openssl rand -hex 12)" > "$work/pw"
dm secret create postgres_password - < "$work/pw" > /dev/null
printf '%s' "Repl-$(openssl rand -hex 12)" | dm secret create replication_password - > /dev/null
printf '%s' "Api-$(openssl rand -hex 12)" | dm secret create patroni_api_password - > /dev/null
printf 'userlist hacompile_stats\n    user admin password %s\n' "$(openssl passwd -6 swarm-stats)" | dm secret create haproxy_stats_users - > /dev/null
export PGPASSWORD; PGPASSWORD=$(cat "$work/pw")

# ----------------------------------------------------------------- helpers
q() { # node port sql -> output (one connection, bounded)
    PGCONNECT_TIMEOUT=3 timeout 8 psql -X -tA -h "$(node_ip "$1")" -p "$2" -U cluster_admin -d app -c "$3" 2> /dev/null
}
is_recovery() { [ "$(q "$1" "$2" 'select pg_is_in_recovery()')" = "$3" ]; }
converged() { # stack count -> every service of it at its desired count
    local lines; lines=$(dm service ls --filter "label=com.docker.stack.namespace=$1" --format '{{.Replicas}}')
    [ "$(echo "$lines" | grep -c .)" = "$2" ] && ! echo "$lines" | grep -vqE '^([0-9]+)/\1( |$)'
}
running_nodes() { # service -> node numbers of its running tasks, sorted
    local host
    dm service ps "$1" --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' \
        | awk '$2 == "Running" { print $1 }' | while read -r host; do echo "${host#node-}"; done | sort
}
task_on() { # node service -> its container there
    dk "$1" ps -q --filter "label=com.docker.swarm.service.name=$2" | head -n1
}
deploy() { # stack dir
    docker cp "$2" "$(nodec "$mgr"):/deploy-$1-$(basename "$2")"
    dm_retry stack deploy -c "/deploy-$1-$(basename "$2")/docker-stack.yml" "$1" > /dev/null
}
# No node runs two database tasks of the stack.
one_db_task_per_node() { # stack service...
    local stack=$1 s; shift
    local all=""
    for s in "$@"; do all+="$(running_nodes "${stack}_$s")"$'\n'; done
    local dup; dup=$(echo "$all" | grep . | sort | uniq -d)
    [ -z "$dup" ] || fail "two database tasks on node-$dup"
}
placed_on() { # service node -> its one running task is there
    [ "$(running_nodes "$1")" = "$2" ]
}
# Waited for (bounded): right after a node loss or a redeploy a manager may
# answer `service ps` with nothing while raft settles (seen once in CI).
check_placement() { # service expected-node
    (wait_for 30 "$1 on node-$2" placed_on "$1" "$2" > /dev/null) \
        || fail "$1 runs on node(s) '$(running_nodes "$1" | tr '\n' ' ')', not node-$2 as its constraint names"
}
one_on_each() { # service nodes... -> one running task on each of them and none elsewhere
    local svc=$1; shift
    [ "$(running_nodes "$svc" | tr '\n' ' ')" = "$(printf '%s ' "$@")" ]
}
# A global service: one task per node. Waited for (bounded): a node that has
# just returned counts for the service only once swarm has placed its task.
check_global() { # service nodes...
    (wait_for 90 "$1 on exactly nodes ${*:2}" one_on_each "$@" > /dev/null) \
        || fail "$1 runs on node(s) '$(running_nodes "$1" | tr '\n' ' ')', not one task on each of nodes ${*:2}"
}

# A client writing rows id = base+1, base+2, ... through one node's proxy
# until STOP exists; each acknowledged insert is logged as
# "id attempt-start acknowledged-at". Bounded in count and time.
start_writer() { # name node port base
    local name=$1 node=$2 port=$3 base=$4
    rm -f "$work/$name.stop"
    : > "$work/$name.acked"
    (
        i=$base; deadline=$(( $(date +%s) + 600 ))
        while [ -d "$work" ] && [ ! -e "$work/$name.stop" ] && (( i < base + 20000 )) && (( $(date +%s) < deadline )); do
            i=$((i + 1)); t0=$(date +%s.%N)
            if PGCONNECT_TIMEOUT=2 timeout 5 psql -X -q -h "$(node_ip "$node")" -p "$port" -U cluster_admin -d app \
                -c "insert into acks (id) values ($i)" > /dev/null 2>&1; then
                echo "$i $t0 $(date +%s.%N)" >> "$work/$name.acked"
            fi
            sleep 0.1
        done
        echo "$i" > "$work/$name.last"
    ) &
    echo $! >> "$work/writer.pids"
}
stop_writer() { # name
    touch "$work/$1.stop"
    local _n; for _n in $(seq 100); do [ -e "$work/$1.last" ] && return 0; sleep 0.1; done
    fail "the writer $1 did not stop"
}
# The first write attempted after T and acknowledged: seconds after T.
first_ack_after() { # name T
    awk -v t="$2" '$2 > t { printf "%.1f", $3 - t; found = 1; exit } END { if (!found) exit 1 }' "$work/$1.acked"
}
acked_count_after() { awk -v t="$2" '$2 > t' "$work/$1.acked" | wc -l; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ========================================================== pinned topology
stack=hc_mn
log "pinned: labels, lock, build, deploy"
dm node update --label-add pg.role=primary "${node_id[1]}" > /dev/null
dm node update --label-add pg.role=replica "${node_id[2]}" > /dev/null
sed "s|REGISTRY|$reg|g" "$here/multinode-pinned.toml" > "$work/pinned.toml"
out=$("$hc" lock "$work/pinned.toml" --insecure-registry "$reg" 2>&1) || fail "hacompile lock: $out"
"$hc" build "$work/pinned.toml" -o "$work/pinned" > /dev/null
# encrypted = false leaves the option out (Docker's default: not encrypted).
! grep -q "encrypted" "$work/pinned/docker-stack.yml" || fail "the pinned stack's network is encrypted: nothing would cross between nodes here"
t_deploy=$(now)
deploy "$stack" "$work/pinned"
wait_for 300 "the pinned stack to converge" converged "$stack" 3 > /dev/null
t_conv_pinned=$(since "$t_deploy")
check_placement "${stack}_pg-primary" 1
check_placement "${stack}_pg-replica-1" 2
check_global "${stack}_haproxy" 1 2 3
one_db_task_per_node "$stack" pg-primary pg-replica-1
for i in 1 2 3; do
    wait_for 120 "writes on the primary through node-$i:15000" is_recovery "$i" 15000 f > /dev/null
    wait_for 120 "reads on the replica through node-$i:15001" is_recovery "$i" 15001 t > /dev/null
done
log "pinned: converged in ${t_conv_pinned}s; primary on node-1, replica on node-2, HAProxy on nodes 1 2 3; writes on the primary and reads on the replica through every node"
q 3 15000 "create table acks (id bigint primary key, at timestamptz not null default now())" > /dev/null || fail "create table"

# --- the replica's node is lost
kill_node() { docker kill "$(nodec "$1")" > /dev/null; }
return_node() { docker start "$(nodec "$1")" > /dev/null; }
mgr=3
t_kill=$(now)
kill_node 2
# Reads through node-1's and node-3's proxies until each answered 5 times in
# a row (bounded): failures counted; reads served by the primary (backup)
# while the replica is gone.
failed_reads=0; streak=0; on_primary=0; t_recovered=""
while (( streak < 5 )); do
    (( $(date +%s) - ${t_kill%.*} < 120 )) || fail "reads through nodes 1 and 3 did not recover within 120 s of the replica's node loss"
    ok=1
    for i in 1 3; do
        r=$(q "$i" 15001 'select pg_is_in_recovery()') || r=""
        case "$r" in
            f) on_primary=$((on_primary + 1)) ;;
            t) ;;
            *) ok=0; failed_reads=$((failed_reads + 1)) ;;
        esac
    done
    if (( ok )); then
        [ "$streak" = 0 ] && t_recovered=$(since "$t_kill")
        streak=$((streak + 1))
    else
        streak=0
    fi
    sleep 0.5
done
(( on_primary > 0 )) || fail "reads never reached the primary while the replica's node was down"
wait_for 60 "node-2 to be seen down" bash -c "[ \"\$(docker exec $(nodec 3) docker node inspect --format '{{.Status.State}}' ${node_id[2]})\" = down ]" > /dev/null
t_down_2=$(since "$t_kill")
is_recovery 1 15000 f || fail "writes through node-1 failed while only the replica's node was down"
log "pinned: replica's node killed: reads through nodes 1 and 3 answered again after ${t_recovered}s (${failed_reads} failed reads; the primary served them); node-2 Down in swarm after ${t_down_2}s"
t_return=$(now)
return_node 2
wait_for 60 "node-2 ready again" ready 2 > /dev/null
t_ready_2=$(since "$t_return")
for i in 1 2 3; do wait_for 180 "reads on the replica through node-$i after node-2 returned" is_recovery "$i" 15001 t > /dev/null; done
t_replica_back=$(since "$t_return")
wait_for 120 "the pinned stack to converge after node-2 returned" converged "$stack" 3 > /dev/null
check_placement "${stack}_pg-replica-1" 2
check_global "${stack}_haproxy" 1 2 3
one_db_task_per_node "$stack" pg-primary pg-replica-1
log "pinned: node-2 returned: Ready after ${t_ready_2}s, replica on node-2 serving reads on every node after ${t_replica_back}s, HAProxy on nodes 1 2 3 again"

# --- the primary's node is lost; the README's manual failover runbook
start_writer pinned 3 15000 0
wait_for 30 "acknowledged writes before the kill" bash -c "[ \$(wc -l < '$work/pinned.acked') -ge 20 ]" > /dev/null
seen=$(q 3 15001 "select pg_is_in_recovery() || ' ' || coalesce(max(id), 0) from acks")
[ "${seen%% *}" = true ] || fail "the read port did not answer from the replica: '$seen'"
seen_on_replica=${seen#* }
mgr=3
t_kill=$(now)
kill_node 1
sleep 5
# Writes stop: the write listener has only the primary's service.
is_recovery 3 15000 f && fail "a write through node-3 succeeded with the primary's node down and nothing promoted"
is_recovery 2 15000 f && fail "a write through node-2 succeeded with the primary's node down and nothing promoted"
t_runbook=$(now)
# 1. Fence the old primary.
dm_retry service scale --detach "${stack}_pg-primary=0" > /dev/null
[ "$(dm service inspect --format '{{.Spec.Mode.Replicated.Replicas}}' "${stack}_pg-primary")" = 0 ] || fail "runbook 1: pg-primary not scaled to 0"
# 2. The replica that received the most WAL (there is one) replays all of
#    it. Asked in whichever task swarm runs for it now.
rq() { dk 2 exec "$(task_on 2 "${stack}_pg-replica-1")" psql -X -tA -U cluster_admin -d "$1" -c "$2"; }
replica_tasks_before=$(dm service ps -q "${stack}_pg-replica-1" | wc -l)
# Replay equals receive, as the runbook says; or, with no WAL receiver left,
# replay beyond receive: a replica task restarted after the primary was gone
# reports the start of its last WAL segment as received (it never received
# anything since). Either way nothing received is left to replay.
caught_up() { [ "$(rq postgres "select pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() and (pg_last_wal_replay_lsn() = pg_last_wal_receive_lsn() or not exists (select 1 from pg_stat_wal_receiver where status = 'streaming'))")" = t ]; }
wait_for 60 "runbook 2: the replica replays all it received" caught_up > /dev/null
lsns=$(rq postgres "select pg_last_wal_receive_lsn() || ' received, ' || pg_last_wal_replay_lsn() || ' replayed'")
replica_restarts=$(( $(dm service ps -q "${stack}_pg-replica-1" | wc -l) - replica_tasks_before ))
# 3. Promote it.
[ "$(rq postgres 'select pg_promote(wait => true)')" = t ] || fail "runbook 3: pg_promote did not return true"
[ "$(rq postgres 'select pg_is_in_recovery()')" = f ] || fail "runbook 3: the replica is still in recovery"
rq app "select id from acks order by id" > "$work/kept"
# 4. Stop its service; no task may hold its volume any more.
dm_retry service scale --detach "${stack}_pg-replica-1=0" > /dev/null
no_replica_task() { [ -z "$(running_nodes "${stack}_pg-replica-1")" ] && [ -z "$(task_on 2 "${stack}_pg-replica-1")" ]; }
wait_for 90 "runbook 4: no running replica task" no_replica_task > /dev/null
# 5. Swap the roles in the spec; move the labels (node-1 is gone: the new
#    replica goes to node-3, "or a new node").
sed '/^# Placement/,$d' "$work/pinned.toml" > "$work/pinned-after.toml"
cat >> "$work/pinned-after.toml" << 'EOF'
# Placement after the manual failover (README, runbook step 5).
[postgres.primary]
constraints = ["node.labels.pg.role == primary"]
volume = "pg-replica-1-data"

[[postgres.replicas]]
constraints = ["node.labels.pg.role == replica"]
volume = "pg-replica-1-data-2"
EOF
dm_retry node update --label-rm pg.role "${node_id[1]}" > /dev/null
dm_retry node update --label-rm pg.role "${node_id[2]}" > /dev/null
dm_retry node update --label-add pg.role=primary "${node_id[2]}" > /dev/null
dm_retry node update --label-add pg.role=replica "${node_id[3]}" > /dev/null
# 6. Build and deploy.
"$hc" build "$work/pinned-after.toml" -o "$work/pinned-after" > /dev/null
t_redeploy=$(now)
deploy "$stack" "$work/pinned-after"
wait_for 180 "writes through node-3 after the runbook" is_recovery 3 15000 f > /dev/null
t_writes_back=$(since "$t_kill")
t_runbook_total=$(since "$t_runbook")
wait_for 60 "the writer's first acknowledged write after the runbook" first_ack_after pinned "$t_redeploy" > /dev/null
stop_writer pinned
check_placement "${stack}_pg-primary" 2
wait_for 240 "the new replica on node-3 serving reads" is_recovery 3 15001 t > /dev/null
t_new_replica=$(since "$t_redeploy")
check_placement "${stack}_pg-replica-1" 3
one_db_task_per_node "$stack" pg-primary pg-replica-1
# What the runbook keeps: every acknowledged write the replica received.
# The writer is sequential, so the WAL the replica received is a prefix of
# the acknowledged writes: none of them below the highest kept id may be
# missing, and every id the replica showed before the kill is kept.
# (comm wants text order: every list below is sorted with plain sort.)
awk -v t="$t_kill" '$3 <= t { print $1 }' "$work/pinned.acked" | sort > "$work/acked-before"
acked_before=$(grep -c . "$work/acked-before")
acked_max=$(sort -n "$work/acked-before" | tail -n1)
sort -o "$work/kept" "$work/kept"
max_kept=$(sort -n "$work/kept" | tail -n1)
[ -n "$max_kept" ] || fail "the promoted server has no row"
(( max_kept >= seen_on_replica )) || fail "the promoted server's highest id $max_kept is below $seen_on_replica, seen on the replica before the kill"
missing=$(awk -v m="$max_kept" '$1 <= m' "$work/acked-before" | comm -23 - "$work/kept" | grep -c . || true)
[ "$missing" = 0 ] || fail "$missing acknowledged writes at or below the promoted server's highest id ($max_kept) are missing on it"
extra=$(comm -13 "$work/acked-before" "$work/kept" | grep -c . || true)
lost=$(awk -v m="$max_kept" '$1 > m' "$work/acked-before" | grep -c . || true)
# And through HAProxy after the redeploy: all of them, and the writes since.
q 3 15000 "select id from acks order by id" > "$work/after-runbook" || fail "reading acks through node-3"
missing_after=$(comm -23 "$work/kept" <(sort "$work/after-runbook") | grep -c . || true)
[ "$missing_after" = 0 ] || fail "$missing_after rows of the promoted server are missing after the redeploy"
during=$(awk -v a="$t_kill" -v b="$t_redeploy" '$2 > a + 1 && $3 < b' "$work/pinned.acked" | wc -l)
[ "$during" = 0 ] || fail "$during writes were acknowledged through HAProxy between the kill and the redeploy"
log "pinned: primary's node killed; writes stopped; runbook steps 1-6 done (replica tasks restarted by swarm meanwhile: $replica_restarts); writes through node-3 again ${t_writes_back}s after the kill (runbook ${t_runbook_total}s); new replica on node-3 serving reads ${t_new_replica}s after the redeploy"
log "pinned: ${acked_before} writes acknowledged before the kill: $((acked_before - lost)) on the promoted server (all that reached it, highest id $max_kept; $lsns; $extra committed there but unacknowledged), ${lost} lost with the primary's node (asynchronous replication)"

# --- the old primary's node returns
t_return=$(now)
return_node 1
wait_for 60 "node-1 ready again" ready 1 > /dev/null
t_ready_1=$(since "$t_return")
wait_for 120 "the pinned stack to converge after node-1 returned" converged "$stack" 3 > /dev/null
check_global "${stack}_haproxy" 1 2 3
wait_for 60 "writes through node-1 again" is_recovery 1 15000 f > /dev/null
[ -z "$(dk 1 ps -q --filter "label=com.docker.swarm.service.name=${stack}_pg-primary")$(dk 1 ps -q --filter "label=com.docker.swarm.service.name=${stack}_pg-replica-1")" ] \
    || fail "a database task runs on node-1, which no label names any more"
# The old primary's volume: still there, used by no container, and its last
# commits in it (read by a throwaway single-user server, as the runbook's
# salvage step suggests).
dk 1 volume inspect "${stack}_pg-primary-data" > /dev/null || fail "the old primary's volume is gone from node-1"
[ -z "$(dk 1 ps -aq --filter "volume=${stack}_pg-primary-data")" ] || fail "a container on node-1 uses the old primary's volume"
pg_image=$(sed -n "s|^ *image: \($reg/hacompile-test/postgres:15@sha256:[0-9a-f]*\)$|\1|p" "$work/pinned/docker-stack.yml" | head -n1)
salvaged=$(echo "select coalesce(max(id), 0) as salvage from acks;" | timeout 120 docker exec -i "$(nodec 1)" docker run --rm -i --network none \
    -v "${stack}_pg-primary-data:/var/lib/postgresql/data" -u postgres --entrypoint postgres "$pg_image" \
    --single -D /var/lib/postgresql/data/pgdata app 2> /dev/null | sed -n 's/^[[:space:]]*1: salvage = "\([0-9]*\)".*/\1/p')
[ -n "$salvaged" ] || fail "could not read the old primary's volume on node-1"
(( salvaged >= acked_max )) || fail "the old primary's volume ends at id $salvaged, below the last acknowledged $acked_max"
log "pinned: node-1 returned: Ready after ${t_ready_1}s; HAProxy on it again; no database task there (its label moved); its old volume untouched, holding ids up to $salvaged (the $lost lost writes are salvageable)"

pinned_report="  pinned, replica's node killed:  reads through the other nodes' proxies back after ${t_recovered}s (${failed_reads} failed reads; the primary served them); node Down in swarm after ${t_down_2}s
  pinned, replica's node returned: Ready after ${t_ready_2}s, replica serving reads on every node after ${t_replica_back}s
  pinned, primary's node killed:  writes stop; the runbook by script: writes through a surviving node's proxy after ${t_writes_back}s (runbook ${t_runbook_total}s); new replica streaming ${t_new_replica}s after the redeploy
  pinned, acknowledged writes:   $acked_before before the kill; $((acked_before - lost)) kept (all the replica had received); $lost lost with the node, found on its returned volume
  pinned, primary's node returned: Ready after ${t_ready_1}s; HAProxy task back; no database task moves back (the labels moved)"

log "pinned: removing the stack"
dm stack rm "$stack" > /dev/null
stack_gone() { local i; for i in 1 2 3; do [ -z "$(dk "$i" ps -aq --filter "label=com.docker.stack.namespace=$1")" ] || return 1; done; }
wait_for 120 "the pinned stack's containers to go" stack_gone "$stack" > /dev/null
for i in 1 2 3; do
    dk "$i" volume ls -q --filter "label=com.docker.stack.namespace=$stack" | while read -r v; do dk "$i" volume rm "$v" > /dev/null; done
    dm node update --label-rm pg.role "${node_id[$i]}" > /dev/null 2>&1 || true
done

# ========================================================= patroni topology
stack=hc_mnp
log "patroni: labels, lock, build, deploy"
for i in 1 2 3; do dm node update --label-add "pg.member=$i" --label-add "etcd.member=$i" "${node_id[$i]}" > /dev/null; done
# Its own directory: its own hacompile.lock.
mkdir -p "$work/patroni-spec"
sed "s|REGISTRY|$reg|g" "$here/multinode-patroni.toml" > "$work/patroni-spec/spec.toml"
out=$("$hc" lock "$work/patroni-spec/spec.toml" --insecure-registry "$reg" 2>&1) || fail "hacompile lock: $out"
"$hc" build "$work/patroni-spec/spec.toml" -o "$work/patroni" > /dev/null
! grep -q "encrypted" "$work/patroni/docker-stack.yml" || fail "the patroni stack's networks are encrypted: nothing would cross between nodes here"
ttl=$(sed -n 's/^ *ttl: *\([0-9]*\).*/\1/p' "$work/patroni/patroni-pg-1.yml" | head -n1)
[ -n "$ttl" ] || fail "no ttl in the emitted patroni-pg-1.yml"
t_deploy=$(now)
deploy "$stack" "$work/patroni"
wait_for 300 "the patroni stack to converge" converged "$stack" 7 > /dev/null
t_conv_patroni=$(since "$t_deploy")
for i in 1 2 3; do check_placement "${stack}_pg-$i" "$i"; check_placement "${stack}_etcd-$i" "$i"; done
check_global "${stack}_haproxy" 1 2 3
one_db_task_per_node "$stack" pg-1 pg-2 pg-3

# Patroni's view, from a member on a live node: "member role state timeline" lines.
members() {
    local i task
    for i in 1 2 3; do
        [ "$(docker inspect --format '{{.State.Running}}' "$(nodec "$i")")" = true ] || continue
        task=$(task_on "$i" "${stack}_pg-$i") || continue
        [ -n "$task" ] || continue
        dk "$i" exec "$task" bash /usr/local/bin/hacompile-patroni-entrypoint.sh ctl list -f json 2> /dev/null \
            | python3 -c 'import json, sys
for m in json.load(sys.stdin): print(m["Member"], m["Role"].replace(" ", "_"), m["State"], m.get("TL", "-"))' && return 0
    done
    return 1
}
leader() { members | awk '$2 == "Leader" && $3 == "running" { print $1 }'; }
healthy_cluster() { # every member running, one leader, the others replicas on its timeline
    local m; m=$(members) || return 1
    [ "$(echo "$m" | awk '$2 == "Leader" && $3 == "running"' | wc -l)" = 1 ] || return 1
    [ "$(echo "$m" | awk '($2 == "Replica" || $2 == "Sync_Standby") && ($3 == "running" || $3 == "streaming")' | wc -l)" = 2 ] || return 1
    [ "$(echo "$m" | awk '{ print $4 }' | sort -u | wc -l)" = 1 ]
}
streaming_from_leader() { # member -> the leader lists it streaming
    [ "$(q "$2" 15010 "select count(*) from pg_stat_replication where application_name = '$1' and state = 'streaming'")" = 1 ]
}
etcd_task() { task_on "$1" "${stack}_etcd-$1"; }
etcd_write() { # node -> a write to etcd through that node's member succeeds (needs quorum)
    dk "$1" exec "$(etcd_task "$1")" etcdctl --endpoints=http://127.0.0.1:2379 --command-timeout=3s put /hacompile-test/quorum "$(date +%s)" > /dev/null
}
etcd_all_healthy() {
    local out; out=$(dk "$1" exec "$(etcd_task "$1")" etcdctl --endpoints=http://127.0.0.1:2379 endpoint health --cluster 2>&1) || return 1
    [ "$(grep -c 'is healthy' <<< "$out")" = 3 ]
}
wait_for 180 "a leader and two streaming replicas" healthy_cluster > /dev/null
for i in 1 2 3; do
    wait_for 120 "writes through node-$i:15010" is_recovery "$i" 15010 f > /dev/null
    wait_for 120 "reads through node-$i:15011" is_recovery "$i" 15011 t > /dev/null
done
wait_for 60 "etcd: three healthy members" etcd_all_healthy 1 > /dev/null
log "patroni: converged in ${t_conv_patroni}s; pg-N and etcd-N on node N, HAProxy on nodes 1 2 3; leader $(leader); writes and reads through every node; etcd 3 healthy"
q 1 15010 "create table acks (id bigint primary key, at timestamptz not null default now())" > /dev/null || fail "create table"

patroni_times=()
patroni_lines=""
for k in $(seq "$kills"); do
    old=$(leader)
    [ -n "$old" ] || fail "no leader before kill $k"
    victim=${old#pg-}
    check_placement "${stack}_pg-$victim" "$victim"
    # A surviving node for the client and for swarm commands.
    via=$(( victim % 3 + 1 ))
    mgr=$via
    start_writer "patroni-$k" "$via" 15010 $(( k * 100000 ))
    wait_for 30 "acknowledged writes before kill $k" bash -c "[ \$(wc -l < '$work/patroni-$k.acked') -ge 10 ]" > /dev/null
    t_kill=$(now)
    kill_node "$victim"
    t_first=$(wait_for 120 "kill $k: an acknowledged write through node-$via after the kill" first_ack_after "patroni-$k" "$t_kill")
    t_first=$(first_ack_after "patroni-$k" "$t_kill")
    new=$(leader)
    { [ -n "$new" ] && [ "$new" != "$old" ]; } || fail "kill $k: the leader is '$new', not a member other than $old"
    check_placement "${stack}_$new" "${new#pg-}"
    etcd_write "$via" || fail "kill $k: etcd refused a write with one member down: quorum lost"
    for i in 1 2 3; do
        [ "$i" = "$victim" ] && continue
        is_recovery "$i" 15010 f || fail "kill $k: writes through node-$i fail after the failover"
    done
    # The node returns; nothing else is done.
    t_return=$(now)
    return_node "$victim"
    wait_for 60 "node-$victim ready again" ready "$victim" > /dev/null
    t_ready=$(since "$t_return")
    wait_for 180 "kill $k: $old rejoins as a replica" healthy_cluster > /dev/null
    wait_for 60 "kill $k: $old streaming from the leader" streaming_from_leader "$old" "$via" > /dev/null
    t_rejoin=$(since "$t_return")
    role=$(members | awk -v m="$old" '$1 == m { print $2 }')
    wait_for 120 "the patroni stack to converge after node-$victim returned" converged "$stack" 7 > /dev/null
    for i in 1 2 3; do check_placement "${stack}_pg-$i" "$i"; check_placement "${stack}_etcd-$i" "$i"; done
    check_global "${stack}_haproxy" 1 2 3
    one_db_task_per_node "$stack" pg-1 pg-2 pg-3
    wait_for 60 "etcd: three healthy members after node-$victim returned" etcd_all_healthy "$via" > /dev/null
    wait_for 60 "writes through node-$victim again" is_recovery "$victim" 15010 f > /dev/null
    stop_writer "patroni-$k"
    # No acknowledged write lost (synchronous_mode "on").
    awk '{ print $1 }' "$work/patroni-$k.acked" | sort > "$work/patroni-$k.ids"
    q "$via" 15010 "select id from acks where id > $(( k * 100000 )) and id <= $(( k * 100000 + 20000 ))" | sort > "$work/patroni-$k.present" || fail "reading acks"
    lost_k=$(comm -23 "$work/patroni-$k.ids" "$work/patroni-$k.present" | grep -c . || true)
    acked_k=$(grep -c . "$work/patroni-$k.ids")
    [ "$lost_k" = 0 ] || fail "kill $k: $lost_k of $acked_k acknowledged writes are missing after the failover"
    after_k=$(acked_count_after "patroni-$k" "$t_kill")
    patroni_times+=("$t_first")
    patroni_lines+="  patroni, kill $k: $old's node (node-$victim) killed; $new leader; first acknowledged write through node-$via ${t_first}s after the kill; node Ready ${t_ready}s after its return, $old a $role streaming ${t_rejoin}s after; ${acked_k} writes acknowledged, 0 lost"$'\n'
    log "patroni: kill $k: node-$victim ($old, leader) killed; $new leader; etcd write ok; first acknowledged write through node-$via after ${t_first}s ($(( acked_k - after_k )) before the kill, $after_k after); node-$victim returned: Ready ${t_ready}s, $old $role streaming after ${t_rejoin}s; placement as the spec; 0 of $acked_k acknowledged writes lost"
done
median_t=$(printf '%s\n' "${patroni_times[@]}" | median)
max_t=$(printf '%s\n' "${patroni_times[@]}" | sort -n | tail -n1)
floor=$(( ttl + 5 ))
holds=$(awk -v m="$median_t" -v f="$floor" 'BEGIN { print (m <= f) ? "holds" : "does NOT hold" }')
final_leader=$(leader)

cat << REPORT

=== hacompile on a three-node swarm (Docker-in-Docker nodes, all managers; overlay not encrypted: this kernel has no IPsec) ===
  pinned convergence after deploy:   ${t_conv_pinned}s
$pinned_report
  patroni convergence after deploy:  ${t_conv_patroni}s (ttl ${ttl}, loop_wait 5, retry_timeout 5, synchronous_mode on)
${patroni_lines}  patroni, leader's node killed ${kills} times: write unavailability median ${median_t}s, max ${max_t}s (kill to the first acknowledged write attempted after it, through a surviving node's proxy)
  floor "median <= ttl + 5 = ${floor}s": ${holds}
  heal: swarm put every member, etcd member and HAProxy task back on its node as the constraints name (they can go nowhere else);
        it does not move Patroni's leadership back: ${final_leader} leads now (patronictl switchover if a member is preferred);
        pinned: after the runbook nothing returns to node-1 (its label moved); only HAProxy (global) runs there again.
  wall time so far: $(( $(date +%s) - started ))s
REPORT
