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
#        hacompile-test/etcd:3.4     (etcd as the command, root, configured by ETCD_*)
#        hacompile-test/postgres-exporter:0.11  (busybox and the exporter
#                                    only; USER nobody; /bin/postgres_exporter)
#      (`docker import --change` cannot set STOPSIGNAL.)
#   3. on top of the postgres stand-in, what the emitted patroni.Dockerfile
#      makes of the official postgres image:
#        hacompile-test/patroni:15   (USER postgres; patroni from the root)
#        hacompile-test/postgres-pgbackrest:15  (postgres.Dockerfile's `[backup]` image: pgbackrest from the root)
# A cached root and unchanged Dockerfiles build in a few seconds (the
# classic builder's cache).
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
# image=base, in build order (patroni builds on the postgres stand-in).
for pair in "postgres:15=$base" "haproxy:2.6=$base" "etcd:3.4=$base" "postgres-exporter:0.11=$base" "patroni:15=hacompile-test/postgres:15" "postgres-pgbackrest:15=hacompile-test/postgres:15"; do
    image=${pair%%=*}
    previous=$(docker image inspect --format '{{.Id}}' "hacompile-test/$image" 2> /dev/null || true)
    # The classic builder warns that it is deprecated: shown only on failure.
    if ! out=$(DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=${pair#*=}" -t "hacompile-test/$image" "$here/images/${image%%:*}" 2>&1); then
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
check hacompile-test/patroni:15 '{{.Config.User}}|{{.Config.StopSignal}}|{{json .Config.Entrypoint}} {{json .Config.Cmd}}' 'postgres|SIGTERM|["docker-entrypoint.sh"] ["postgres"]'
check hacompile-test/etcd:3.4 '{{.Config.User}}|{{json .Config.Entrypoint}} {{json .Config.Cmd}}' '|null ["/usr/local/bin/etcd"]'
# What the compiled Patroni service relies on, run in the image itself (its
# user, no capability, no network): UID/GID 999, bash, the server's binaries
# and patroni on PATH, python's etcd client, the data directory its own.
facts=$(docker run --rm --cap-drop ALL --network none --entrypoint bash hacompile-test/patroni:15 -c \
    'echo "$(id -u):$(id -g) $(command -v postgres) $(command -v pg_rewind) $(command -v patroni) $(command -v patronictl) $(stat -c %U /var/lib/postgresql/data)"; python3 -c "import etcd, urllib3, psycopg2"')
[ "$facts" = "999:999 /usr/lib/postgresql/15/bin/postgres /usr/lib/postgresql/15/bin/pg_rewind /usr/bin/patroni /usr/bin/patronictl postgres" ] \
    || { echo "build-images: hacompile-test/patroni:15 runs as: $facts" >&2; exit 1; }
# What the backup wrapper (hacompile-pgbackrest) runs, in both images that
# carry it, as the server's user with no capability.
for image in postgres-pgbackrest:15 patroni:15; do
    facts=$(docker run --rm --cap-drop ALL --network none --user 999:999 --entrypoint bash "hacompile-test/$image" -c \
        'echo "$(pgbackrest version) $(command -v pg_ctl) $(command -v psql) $(command -v setsid) $(command -v gosu)"')
    [ "$facts" = "pgBackRest 2.45 /usr/lib/postgresql/15/bin/pg_ctl /usr/bin/psql /usr/bin/setsid /usr/sbin/gosu" ] \
        || { echo "build-images: hacompile-test/$image lacks what the backup wrapper needs: $facts" >&2; exit 1; }
done
check hacompile-test/postgres-pgbackrest:15 '{{.Config.User}}|{{.Config.StopSignal}}|{{json .Config.Entrypoint}} {{json .Config.Cmd}}' '|SIGINT|["docker-entrypoint.sh"] ["postgres"]'
facts=$(docker run --rm --cap-drop ALL --network none --entrypoint /usr/local/bin/etcdctl hacompile-test/etcd:3.4 version)
grep -q '^etcdctl version: 3\.4\.' <<< "$facts" || { echo "build-images: hacompile-test/etcd:3.4's etcdctl says: $facts" >&2; exit 1; }
facts=$(docker run --rm --cap-drop ALL --network none --entrypoint stat hacompile-test/etcd:3.4 -c '%U %a' /var/lib/etcd)
[ "$facts" = "root 755" ] || { echo "build-images: hacompile-test/etcd:3.4's /var/lib/etcd is $facts, not root 755 as in the real image" >&2; exit 1; }
# The exporter's contract, as the official image's: nobody, the binary as
# the entrypoint, busybox's wget on the default PATH (the compiled
# healthcheck runs it), nothing else of Debian (no bash, no apt).
check hacompile-test/postgres-exporter:0.11 '{{.Config.User}}|{{json .Config.Entrypoint}} {{json .Config.Cmd}}|{{json .Config.ExposedPorts}}' 'nobody|["/bin/postgres_exporter"] null|{"9187/tcp":{}}'
facts=$(docker run --rm --cap-drop ALL --network none --read-only --entrypoint sh hacompile-test/postgres-exporter:0.11 -c \
    'echo "$(id -u):$(id -g) $(which wget) $(which postgres_exporter) $(which bash || echo no-bash) $(which apt-get || echo no-apt)"')
[ "$facts" = "65534:65534 /bin/wget /bin/postgres_exporter no-bash no-apt" ] \
    || { echo "build-images: hacompile-test/postgres-exporter:0.11 runs as: $facts" >&2; exit 1; }
facts=$(docker run --rm --cap-drop ALL --network none --read-only hacompile-test/postgres-exporter:0.11 --version 2>&1)
grep -q '^postgres_exporter, version 0\.11\.' <<< "$facts" || { echo "build-images: hacompile-test/postgres-exporter:0.11 --version says: $facts" >&2; exit 1; }
echo "build-images: hacompile-test/{postgres:15,postgres-pgbackrest:15,haproxy:2.6,etcd:3.4,postgres-exporter:0.11,patroni:15} ready"
