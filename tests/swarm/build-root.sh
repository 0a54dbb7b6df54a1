#!/usr/bin/env bash
# Makes the Debian root the swarm test's stand-in images are built on and
# prints the path of its tarball: a minimal Debian bookworm (debootstrap,
# nothing pulled from a container registry) with PostgreSQL 15, HAProxy 2.6,
# gosu, Patroni 3.0 (with python3-etcd for its etcd3 store), etcd 3.4,
# pgBackRest 2.45 (what the emitted recipes install for `[backup]`),
# postgres_exporter 0.11 and a static busybox (the exporter stand-in's),
# `postgres` as UID/GID 999 and `haproxy` as UID/GID 99 with the official
# images' directories and modes. One root for every stand-in: one cache
# entry and one `docker import`; the packages a stand-in does not use are
# inert files in it. Cached by a hash of this script:
# a second run takes no time; a changed script rebuilds (about 3 minutes here)
# and removes the tarballs of earlier versions.
#
# File capabilities: the tar keeps security.capability, so a capability on
# a packaged binary would reach the image as it does in a Dockerfile build.
# Debian's haproxy binary has none, as the official one has none (its
# Dockerfile never runs setcap); this script checks that. One inert,
# non-executable file carries a capability on purpose
# (/usr/local/share/hacompile-test/capability-probe): run.sh finds it in
# the deployed task, which shows its check for "none on haproxy" can fail.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${HACOMPILE_SWARM_CACHE:-/var/cache/hacompile-swarm}"
mirror="${HACOMPILE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
key=$(sha256sum < "$here/build-root.sh" | cut -c1-16)
tarball="$cache/rootfs-$key.tar"
probe=/usr/local/share/hacompile-test/capability-probe
mkdir -p "$cache"

if [ ! -s "$tarball" ]; then
    command -v debootstrap > /dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap > /dev/null; }
    command -v setcap > /dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcap2-bin > /dev/null; }
    root="$(mktemp -d "$cache/root.XXXXXX")"
    chmod 0755 "$root" # the image's `/`: non-root users must traverse it
    trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
    echo "build-root: debootstrap bookworm (minbase) into $root" >&2
    debootstrap --variant=minbase bookworm "$root" "$mirror" > "$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    # No service starts inside the chroot, and no default cluster is created
    # (the official image turns create_main_cluster off the same way).
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    mkdir -p "$root/etc/postgresql-common"
    echo "create_main_cluster = false" > "$root/etc/postgresql-common/createcluster.conf"
    # docker-library/postgres 16/bookworm/Dockerfile l.11-13: UID/GID 999.
    chroot "$root" groupadd --system --gid 999 postgres
    chroot "$root" useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
    mount -t proc proc "$root/proc"
    echo "build-root: installing postgresql-15 haproxy gosu patroni etcd pgbackrest postgres_exporter busybox" >&2
    chroot "$root" apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 haproxy gosu \
        patroni python3-etcd etcd-server etcd-client pgbackrest prometheus-postgres-exporter busybox-static > "$cache/apt.log" 2>&1 \
        || { tail -20 "$cache/apt.log" >&2; exit 1; }
    umount "$root/proc"
    # docker-library/haproxy 2.8/Dockerfile l.20-31: UID/GID 99, home
    # /var/lib/haproxy owned by it. Debian's package makes a dynamic system
    # user (adduser refuses UIDs below 100), so renumber it.
    chroot "$root" groupmod --gid 99 haproxy
    chroot "$root" usermod --uid 99 --gid 99 haproxy
    chroot "$root" chown -R haproxy:haproxy /var/lib/haproxy
    mkdir -p "$root/usr/local/etc/haproxy" # l.77: where the image reads its config
    chroot "$root" apt-get clean
    rm -rf "$root/var/lib/apt/lists"/* "$root/usr/sbin/policy-rc.d"
    # docker-library/postgres 16/bookworm/Dockerfile: l.16 (home 1777),
    # l.75 (init directory), l.179 (listen on every address by default),
    # l.182 (socket directory 3777), l.186 (PGDATA 1777, 0700 at run time).
    # Inside the chroot: /var/run is a symlink to /run there.
    chroot "$root" install -d -m 0755 /docker-entrypoint-initdb.d
    chroot "$root" install -d -o postgres -g postgres -m 1777 /var/lib/postgresql /var/lib/postgresql/data
    chroot "$root" install -d -o postgres -g postgres -m 3777 /var/run/postgresql
    sample="$root/usr/share/postgresql/15/postgresql.conf.sample"
    sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$sample"
    grep -qF "listen_addresses = '*'" "$sample"
    [ "$(chroot "$root" id -u postgres)" = 999 ] && [ "$(chroot "$root" id -u haproxy)" = 99 ]
    [ -x "$root/usr/sbin/haproxy" ] && [ -x "$root/usr/bin/pgbackrest" ] && [ -x "$root/usr/bin/patroni" ] && [ -x "$root/usr/bin/etcd" ] && [ -x "$root/usr/bin/etcdctl" ] \
        && [ -x "$root/usr/bin/prometheus-postgres-exporter" ] && [ -x "$root/usr/bin/busybox" ]
    if [ -n "$(getcap "$root/usr/sbin/haproxy")" ]; then
        echo "build-root: Debian's haproxy carries a file capability: $(getcap "$root/usr/sbin/haproxy")" >&2
        exit 1
    fi
    install -D -m 0644 /dev/null "$root$probe"
    setcap cap_net_bind_service+ep "$root$probe"
    tar --xattrs --xattrs-include=security.capability -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi

find "$cache" -maxdepth 1 -name 'rootfs-*.tar' ! -name "rootfs-$key.tar" -delete
echo "$tarball"
