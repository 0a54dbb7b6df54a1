# shellcheck shell=bash
# Shared by the swarm runs (sourced, not run).

# Removes what `hacompile restore`'s printed commands left for STACK: the
# one-off server CONTAINER on the restored copy (if any), the `STACK_restore`
# job and its finished task container, which can outlive the service and
# hold the repository's volume and the restored one, then VOLUME.
# Bounded: 30 s for the job's task to go.
remove_restore_job() {
    local stack=$1 volume=$2 container=${3:-}
    if [ -n "$container" ]; then docker rm -f "$container" > /dev/null 2>&1 || true; fi
    docker service rm "${stack}_restore" > /dev/null 2>&1 || true
    for _ in $(seq 30); do
        [ -z "$(docker ps -aq --filter "label=com.docker.swarm.service.name=${stack}_restore")" ] && break
        sleep 1
    done
    docker ps -aq --filter "label=com.docker.swarm.service.name=${stack}_restore" | xargs -r timeout 120 docker rm -f > /dev/null 2>&1 || true
    docker volume rm "$volume" > /dev/null 2>&1 || true
}

# Every docker call of a script that sources this file is bounded in time:
# the docker CLI can fail to return (`docker service logs` hangs now and
# then, docker/cli#4678; one did in CI after the Patroni hang round and ate
# the whole 20-minute budget). A call with no answer within
# HACOMPILE_DOCKER_TIMEOUT seconds (180; the longest legitimate one, a push
# of the postgres image, takes about 30 s) is killed and fails with status
# 124 and a line naming the call (its first two words: never an argument
# that could hold a value). `timeout` and `bash -c` run the binary itself,
# bounded by their own limits.
hacompile_docker_bin=$(type -P docker) || { echo "docker: not found" >&2; exit 1; }
docker() {
    local limit=${HACOMPILE_DOCKER_TIMEOUT:-180} t0=$SECONDS rc=0
    timeout --foreground -k 10 "$limit" "$hacompile_docker_bin" "$@" || rc=$?
    # 124: stopped by TERM at the limit; 137: killed 10 s later (it ignored TERM).
    if { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && (( SECONDS - t0 >= limit )); then
        echo "docker ${1:-} ${2:-}: no answer within ${limit} s, killed" >&2
        return 124
    fi
    return "$rc"
}

# The log of every task container of SERVICE on this node, oldest task
# first, stdout and stderr; extra arguments go to `docker logs` (--tail N).
# Read from each container, not with `docker service logs`, which can hang
# (above) and on a single-node swarm reads the same containers.
service_logs() {
    local svc=$1 c rc ids; shift
    ids=$(docker ps -aq --filter "label=com.docker.swarm.service.name=$svc") || return 124
    for c in $(tac <<< "$ids"); do
        # A task container swarm removed since: nothing left to read.
        # No answer: the caller's failure.
        docker logs "$@" "$c" 2>&1 || { rc=$?; [ "$rc" != 124 ] || return 124; }
    done
    return 0
}

# What swarm says went wrong with STACK's tasks (a port another process
# holds, an image it cannot pull, a rejected mount): the newest errors, for
# a failure's report (swarm's own messages: names, ports, IDs; no values).
task_errors() {
    local stack=$1
    docker stack ps "$stack" --no-trunc --format '{{.Name}} ({{.CurrentState}}): {{.Error}}' 2> /dev/null \
        | awk -F'): ' '$2 != ""' | head -n 6 | cut -c1-400 | sed 's/^/  task error: /'
}
