#!/usr/bin/env bash
# Makes the multi-node test's swarm node image and prints its name,
# hacompile-test/swarm-node: a minimal Debian bookworm (debootstrap, nothing
# pulled from a container registry) with Debian's docker.io, iptables,
# iproute2 and procps, imported with `docker import`, plus images/node (its
# entrypoint runs dockerd as PID 1). Each node is a container of this image
# (Docker in Docker); multinode.sh starts three.
#
# Cached like build-root.sh: the root's tarball in the cache directory, keyed
# by a hash of the recipe below (the entrypoint is not part of it); a cached
# root builds the image in seconds, a changed recipe rebuilds (about 90 s
# here) and removes the tarballs of earlier versions.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${HACOMPILE_SWARM_CACHE:-/var/cache/hacompile-swarm}"
mirror="${HACOMPILE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="docker.io iptables iproute2 procps ca-certificates"
recipe="bookworm minbase; $packages; policy-rc.d removed; apt lists removed"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
tarball="$cache/node-$key.tar"
base="hacompile-test/swarm-node-root:$key"
image="hacompile-test/swarm-node:$key"
mkdir -p "$cache"

if [ ! -s "$tarball" ]; then
    command -v debootstrap > /dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap > /dev/null; }
    root="$(mktemp -d "$cache/node.XXXXXX")"
    chmod 0755 "$root"
    trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
    echo "build-node: debootstrap bookworm (minbase) into $root" >&2
    debootstrap --variant=minbase bookworm "$root" "$mirror" > "$cache/node-debootstrap.log" 2>&1 \
        || { tail -20 "$cache/node-debootstrap.log" >&2; exit 1; }
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    mount -t proc proc "$root/proc"
    echo "build-node: installing $packages" >&2
    # shellcheck disable=SC2086 # the list is words
    chroot "$root" apt-get install -y -qq --no-install-recommends $packages \
        > "$cache/node-apt.log" 2>&1 || { tail -20 "$cache/node-apt.log" >&2; exit 1; }
    umount "$root/proc"
    chroot "$root" apt-get clean
    rm -rf "$root/var/lib/apt/lists"/* "$root/usr/sbin/policy-rc.d"
    [ -x "$root/usr/sbin/dockerd" ] && [ -x "$root/usr/bin/docker" ] && [ -x "$root/usr/sbin/iptables" ]
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
find "$cache" -maxdepth 1 -name 'node-*.tar' ! -name "node-$key.tar" -delete

if ! docker image inspect "$base" > /dev/null 2>&1; then
    docker import "$tarball" "$base" > /dev/null
fi
if ! out=$(DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" -t "$image" "$here/images/node" 2>&1); then
    echo "$out" >&2
    exit 1
fi
# Images of earlier recipes, unless a container still uses them.
for repo in hacompile-test/swarm-node hacompile-test/swarm-node-root; do docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo"; done \
    | grep -vxF -e "$image" -e "$base" | xargs -r docker rmi > /dev/null 2>&1 || true
echo "$image"
