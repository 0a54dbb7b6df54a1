#!/usr/bin/env bash
# Builds the test images from Debian packages, pulling nothing from a
# container registry: a minimal Debian root (debootstrap) with PostgreSQL 15,
# HAProxy and gosu, where `postgres` has UID 999 and `haproxy` UID 99 as in
# the official images, imported twice with `docker import`:
#   hacompile-test/postgres:15   (entrypoint following the official image's conventions)
#   hacompile-test/haproxy:2.6   (runs as haproxy)
# The Debian root is cached (keyed by this script) so a second run takes
# seconds; the entrypoint is added at import time, so changing it needs no
# rebuild of the root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${HACOMPILE_SWARM_CACHE:-/var/cache/hacompile-swarm}"
mirror="${HACOMPILE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
key=$(sha256sum < "$here/build-images.sh" | cut -c1-16)
tarball="$cache/rootfs-$key.tar"
mkdir -p "$cache"

if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    root="$(mktemp -d "$cache/root.XXXXXX")"
    chmod 0755 "$root" # the image's `/`: non-root users must traverse it
    trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
    echo "build-images: debootstrap bookworm (minbase) into $root"
    debootstrap --variant=minbase bookworm "$root" "$mirror" > "$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    # No service starts inside the chroot, and no default cluster is created.
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    mkdir -p "$root/etc/postgresql-common"
    echo "create_main_cluster = false" > "$root/etc/postgresql-common/createcluster.conf"
    chroot "$root" groupadd --system --gid 999 postgres
    chroot "$root" useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
    mount -t proc proc "$root/proc"
    echo "build-images: installing postgresql-15 haproxy gosu"
    chroot "$root" apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 haproxy gosu > "$cache/apt.log" 2>&1 \
        || { tail -20 "$cache/apt.log" >&2; exit 1; }
    umount "$root/proc"
    # The official haproxy image runs as UID/GID 99; Debian's package makes a
    # dynamic system user (adduser refuses UIDs below 100), so renumber it.
    chroot "$root" groupmod --gid 99 haproxy
    chroot "$root" usermod --uid 99 --gid 99 haproxy
    chroot "$root" chown -R haproxy:haproxy /var/lib/haproxy
    chroot "$root" apt-get clean
    rm -rf "$root/var/lib/apt/lists"/* "$root/usr/sbin/policy-rc.d"
    mkdir -p "$root/docker-entrypoint-initdb.d" "$root/usr/local/etc/haproxy" "$root/var/lib/postgresql/data"
    chroot "$root" chown -R postgres:postgres /var/lib/postgresql
    [ "$(chroot "$root" id -u postgres)" = 999 ] && [ "$(chroot "$root" id -u haproxy)" = 99 ]
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi

# The entrypoint goes on top of the cached root (a later tar member wins).
layer="$(mktemp -d)"
trap 'rm -rf "$layer"' EXIT
install -D -m 0755 "$here/docker-entrypoint.sh" "$layer/usr/local/bin/docker-entrypoint.sh"
cp "$tarball" "$layer/image.tar"
tar -C "$layer" -rf "$layer/image.tar" ./usr/local/bin/docker-entrypoint.sh

docker import \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]' \
    "$layer/image.tar" hacompile-test/postgres:15 > /dev/null
docker import \
    --change 'USER haproxy' \
    --change 'CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]' \
    "$layer/image.tar" hacompile-test/haproxy:2.6 > /dev/null
echo "build-images: hacompile-test/postgres:15 and hacompile-test/haproxy:2.6 ready"
