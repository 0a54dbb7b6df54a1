#!/usr/bin/env bash
# Builds the swarm test's stand-ins for the official images without pulling
# anything from a container registry:
#   1. build-root.sh's Debian root, imported with `docker import` as
#      hacompile-test/debian-root:<key> (once per root);
#   2. on top of it, with `docker build` (the classic builder: it asks no
#      registry about a local base), the official images' runtime contract
#      from images/*/Dockerfile with our own entrypoints:
#        hacompile-test/postgres:15  (starts as root, gosu to postgres; STOPSIGNAL SIGINT)
#        hacompile-test/haproxy:2.6  (USER haproxy; `haproxy -W -db`; STOPSIGNAL SIGUSR1)
#      (`docker import --change` cannot set STOPSIGNAL.)
# Then checks the images' configuration; run.sh checks the running tasks.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

tarball=$(bash "$here/build-root.sh")
key=$(basename "$tarball" .tar)
key=${key#rootfs-}
base="hacompile-test/debian-root:$key"
if ! docker image inspect "$base" > /dev/null 2>&1; then
    docker import "$tarball" "$base" > /dev/null
fi
for image in postgres:15 haproxy:2.6; do
    previous=$(docker image inspect --format '{{.Id}}' "hacompile-test/$image" 2> /dev/null || true)
    # The classic builder warns that it is deprecated: shown only on failure.
    if ! out=$(DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" -t "hacompile-test/$image" "$here/images/${image%%:*}" 2>&1); then
        echo "$out" >&2
        exit 1
    fi
    # The version this build replaced, unless a container still uses it.
    if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "hacompile-test/$image")" ]; then
        docker rmi "$previous" > /dev/null 2>&1 || true
    fi
done
# Roots of earlier versions of build-root.sh, unless still in use.
docker image ls --format '{{.Repository}}:{{.Tag}}' hacompile-test/debian-root | grep -vxF "$base" | xargs -r docker rmi > /dev/null 2>&1 || true

check() {
    local got
    got=$(docker image inspect --format "$2" "$1")
    [ "$got" = "$3" ] || { echo "build-images: $1: $2 is '$got', not '$3'" >&2; exit 1; }
}
check hacompile-test/haproxy:2.6 '{{.Config.User}} {{.Config.WorkingDir}} {{.Config.StopSignal}}' 'haproxy /var/lib/haproxy SIGUSR1'
check hacompile-test/haproxy:2.6 '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' '["docker-entrypoint.sh"] ["haproxy","-f","/usr/local/etc/haproxy/haproxy.cfg"]'
check hacompile-test/postgres:15 '{{.Config.User}}|{{.Config.StopSignal}}' '|SIGINT'
check hacompile-test/postgres:15 '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' '["docker-entrypoint.sh"] ["postgres"]'
echo "build-images: hacompile-test/postgres:15 and hacompile-test/haproxy:2.6 ready"
