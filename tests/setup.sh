#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine and fails
# loudly when something is still missing. Safe to run again.
set -euo pipefail

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }

have haproxy || need_pkgs+=(haproxy)
have shellcheck || need_pkgs+=(shellcheck)
have docker || need_pkgs+=(docker.io)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "setup: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
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
check cargo nextest --version
check cargo clippy --version
check cargo fmt --version
if [ "$missing" -ne 0 ]; then
    echo "setup: the test suite needs the tools above" >&2
    exit 1
fi
echo "setup: $(haproxy -v | head -n1)"
echo "setup: docker CLI $(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')"
