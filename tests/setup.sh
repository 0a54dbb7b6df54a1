#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine and fails
# loudly when something is still missing. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }

have haproxy || need_pkgs+=(haproxy)
have shellcheck || need_pkgs+=(shellcheck)
have docker || need_pkgs+=(docker.io)
have git || need_pkgs+=(git)
have skopeo || need_pkgs+=(skopeo)
have docker-registry || need_pkgs+=(docker-registry)
have htpasswd || need_pkgs+=(apache2-utils)
have openssl || need_pkgs+=(openssl)
have unshare || need_pkgs+=(util-linux)
have curl || need_pkgs+=(curl)
have man || need_pkgs+=(man-db)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_pkgs+=(fonts-dejavu-core)
# The swarm runs' Debian roots (stand-in images, multi-node swarm nodes), and
# `ip` (multinode.sh picks a free subnet for its nodes).
have debootstrap || need_pkgs+=(debootstrap)
have ip || need_pkgs+=(iproute2)
[ -x /usr/bin/time ] || need_pkgs+=(time)
# tests/swarm/preflight.sh imports an image holding one static binary it
# compiles (nothing is pulled): gcc and glibc's static libc.
have gcc || need_pkgs+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || need_pkgs+=(libc6-dev)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_pkgs+=(postgresql postgresql-client)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
# The patroni topology's process-level tests (tests/cluster_patroni.rs):
# Patroni 3.0 with its etcd3 backend (python3-etcd, for the system python
# Patroni runs on), etcd 3.4 and etcdctl.
have patroni || need_pkgs+=(patroni)
/usr/bin/python3 -c 'import etcd' >/dev/null 2>&1 || need_pkgs+=(python3-etcd)
have etcd || need_pkgs+=(etcd-server)
have etcdctl || need_pkgs+=(etcd-client)
# Backups (tests/backup_restore.rs, benches/backup.sh): pgBackRest 2.45.
have pgbackrest || need_pkgs+=(pgbackrest)
# benches/backup.sh: tar | zstd -3 beside pgBackRest's zst level 3.
have zstd || need_pkgs+=(zstd)
# The per-database metrics exporter (tests/metrics.rs): postgres_exporter 0.11,
# run as `nobody` with the compiled exporter services' environment.
have prometheus-postgres-exporter || need_pkgs+=(prometheus-postgres-exporter)
# promtool checks the documented scrape configuration (tests/metrics.rs).
have promtool || need_pkgs+=(prometheus)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "setup: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages must not start their services (etcd-server's would hold
    # 127.0.0.1:2379; the tests start their own etcd and Patroni). Debian's
    # maintainer scripts ask policy-rc.d first, with or without systemd; a
    # container usually has one that denies everything, else one is put in
    # place for the install only.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# hacompile tests/setup.sh: no service starts during this install\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Python tools the tests run, pinned: the real pre-commit, and compose-lint
# as the peer the secrets recall is measured against.
venv=target/test-venv
pins=(pre-commit==4.7.0 compose-lint==0.36.2)
if ! "$venv/bin/python" -m pip show -q "${pins[@]%%==*}" >/dev/null 2>&1 \
    || ! "$venv/bin/compose-lint" --version 2>/dev/null | grep -q '0.36.2'; then
    echo "setup: installing ${pins[*]} into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
fi

# The S3-compatible server the S3 backup test runs on loopback (moto's
# server; tests/support/s3.rs), pinned, in a venv of its own: its many
# dependencies stay apart from the tools above.
s3venv=target/moto-venv
s3pin='moto[server]==5.2.5'
moto_version() { "$s3venv/bin/python" -m pip show moto 2>/dev/null | sed -n 's/^Version: //p'; }
if [ "$(moto_version)" != 5.2.5 ] || ! "$s3venv/bin/python" -c 'import moto.server, flask' >/dev/null 2>&1; then
    echo "setup: installing $s3pin into $s3venv"
    python3 -m venv "$s3venv"
    "$s3venv/bin/python" -m pip install -q --disable-pip-version-check "$s3pin"
fi

missing=0
check() {
    if ! "$@" >/dev/null 2>&1; then
        echo "setup: MISSING: \`$*\` does not work" >&2
        missing=1
    fi
}
check haproxy -v
check shellcheck --version
check docker stack config --help
check git --version
check skopeo --version
check docker-registry --version
check sh -c 'command -v htpasswd'
check openssl version
check unshare --version
check setpriv --version
check /usr/bin/time --version
check curl --version
check man --version
check test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
check debootstrap --version
check sh -c 'printf "int main(void) { return 0; }\n" | gcc -static -x c -o /dev/null -'
check ip -4 route
check /usr/lib/postgresql/15/bin/postgres --version
check /usr/lib/postgresql/15/bin/pg_basebackup --version
check psql --version
check pgbench --version
check patroni --version
check patronictl version
check /usr/bin/python3 -c 'import etcd, urllib3, psycopg2' # Patroni's interpreter
check etcd --version
check env ETCDCTL_API=3 etcdctl version
check pgbackrest version
check zstd --version
check prometheus-postgres-exporter --version
check promtool --version
# No packaged etcd left running on its default client port.
check bash -c '! (exec 3<>/dev/tcp/127.0.0.1/2379) 2>/dev/null'
check "$venv/bin/pre-commit" --version
check "$venv/bin/compose-lint" --version
check "$s3venv/bin/moto_server" --help
check "$s3venv/bin/python" -c 'import moto.server, flask'
check test "$(moto_version)" = 5.2.5
check cargo nextest --version
check cargo clippy --version
check cargo fmt --version
if [ "$missing" -ne 0 ]; then
    echo "setup: the test suite needs the tools above" >&2
    exit 1
fi
echo "setup: $(haproxy -v | head -n1)"
echo "setup: $(patroni --version), etcd $(etcd --version | sed -n 's/^etcd Version: //p')"
echo "setup: docker CLI $(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')"
echo "setup: $("$venv/bin/compose-lint" --version), $("$venv/bin/pre-commit" --version)"
echo "setup: moto $(moto_version) (S3-compatible server for tests/backup_restore.rs)"
