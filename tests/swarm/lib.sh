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
    docker ps -aq --filter "label=com.docker.swarm.service.name=${stack}_restore" | xargs -r docker rm -f > /dev/null 2>&1 || true
    docker volume rm "$volume" > /dev/null 2>&1 || true
}
