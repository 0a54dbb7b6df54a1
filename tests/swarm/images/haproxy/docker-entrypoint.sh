#!/bin/sh
# Stand-in for the official haproxy image's entrypoint (written for the swarm
# test; not a copy). It mirrors docker-library/haproxy 2.8/docker-entrypoint.sh
# at ec437dd2a3656610b10a42c08763d8fa1c591efe (lines 4-17):
#   - a first argument that is an option means "haproxy with these options";
#   - `haproxy ARGS` becomes `haproxy -W -db ARGS`: master-worker mode (the
#     master stays PID 1, forwards SIGUSR1/SIGTERM to its worker and exits
#     when the worker is gone) in the foreground;
#   - anything else runs unchanged;
# and, like the official one, it is POSIX sh: the alpine variant has no bash.
set -eu

case "${1:-}" in
    -*) set -- haproxy "$@" ;;
esac

if [ "${1:-}" = haproxy ]; then
    shift
    set -- haproxy -W -db "$@"
fi

exec "$@"
