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
# The swarm runs' Debian roots (stand-in images, multi-node swarm nodes), and
# `ip` (multinode.sh picks a free subnet for its nodes).
have debootstrap || need_pkgs+=(debootstrap)
have ip || need_pkgs+=(iproute2)
[ -x /usr/bin/time ] || need_pkgs+=(time)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_pkgs+=(postgresql postgresql-client)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "setup: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
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
check debootstrap --version
check ip -4 route
check /usr/lib/postgresql/15/bin/postgres --version
check /usr/lib/postgresql/15/bin/pg_basebackup --version
check psql --version
check "$venv/bin/pre-commit" --version
check "$venv/bin/compose-lint" --version
check cargo nextest --version
check cargo clippy --version
check cargo fmt --version
if [ "$missing" -ne 0 ]; then
    echo "setup: the test suite needs the tools above" >&2
    exit 1
fi
echo "setup: $(haproxy -v | head -n1)"
echo "setup: docker CLI $(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')"
echo "setup: $("$venv/bin/compose-lint" --version), $("$venv/bin/pre-commit" --version)"
