#!/usr/bin/env bash
# hacompile: the container healthcheck of a PostgreSQL service (official image).
#
# Swarm lists a task in DNS (and so in HAProxy's pools) only while it is
# healthy, and replaces a task that stays unhealthy. Accepting connections is
# not enough for a replica: one that can no longer stream (the WAL it needs
# was removed, its password was rotated, the primary belongs to another
# cluster now) would serve old data on the read port for ever. So:
#   - a base backup in progress is healthy (a first copy can outlast any
#     start_period; killing it would only start it again from scratch);
#   - the server must accept connections;
#   - the primary is then healthy;
#   - a replica must be streaming from the primary, unless the primary is
#     unreachable: while the primary is away, replicas keep serving reads.
# A replica that is not streaming while its primary is up is unhealthy; it
# also leaves a marker holding the time it was first found not streaming, so
# that its entrypoint copies the primary again on the next start instead of
# serving the same old data (see the entrypoint).
#
# Parameters (environment), so it also runs outside a container:
#   PGDATA                  data directory
#   HACOMPILE_ROLE          primary | replica
#   HACOMPILE_PRIMARY_HOST  the primary (replicas)
#   HACOMPILE_PRIMARY_PORT  its port (default 5432)
#   POSTGRES_USER_FILE      file holding the superuser name (a Docker secret)
#   HACOMPILE_SOCKET_DIR    the server's socket directory (default /var/run/postgresql)
#   HACOMPILE_PORT          the server's port (default 5432)
set -uo pipefail

: "${PGDATA:?PGDATA must be set}"
role="${HACOMPILE_ROLE:?HACOMPILE_ROLE must be set}"
socket="${HACOMPILE_SOCKET_DIR:-/var/run/postgresql}"
port="${HACOMPILE_PORT:-5432}"
staging="$PGDATA.hacompile-basebackup"
marker="$PGDATA.hacompile-not-streaming"

# A base backup in progress: its pid is recorded by the entrypoint.
if [ -d "$staging" ] && [ -s "$staging.pid" ] && kill -0 "$(cat "$staging.pid")" 2>/dev/null; then
    exit 0
fi

# As the superuser by name: Docker runs this as the container's user (root),
# and a check as a role that does not exist logs a FATAL line every time.
user="$(cat "${POSTGRES_USER_FILE:?POSTGRES_USER_FILE must be set}")"
pg_isready -q -h "$socket" -p "$port" -U "$user" -d postgres || exit 1
[ "$role" = primary ] && exit 0

status="$(psql -X -q -tA -h "$socket" -p "$port" -U "$user" -d postgres \
    -c "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null)"
if [ "$status" = streaming ]; then
    rm -f "$marker"
    exit 0
fi
primary_host="${HACOMPILE_PRIMARY_HOST:?HACOMPILE_PRIMARY_HOST must be set}"
primary_port="${HACOMPILE_PRIMARY_PORT:-5432}"
if ! pg_isready -q -h "$primary_host" -p "$primary_port" -U "$user" -d postgres -t 3; then
    echo "hacompile: the primary $primary_host:$primary_port is unreachable; serving reads meanwhile"
    exit 0
fi
echo "hacompile: the primary $primary_host:$primary_port is up but this replica is not streaming from it (${status:-no WAL receiver})"
# The marker holds when this replica was first found not streaming: a later
# check must not move it, or its age would never reach the entrypoint's
# HACOMPILE_RECOPY_AFTER (checks run more often than that).
since="$(cat "$marker" 2>/dev/null || true)"
if ! [[ "$since" =~ ^[0-9]+$ ]]; then
    date +%s > "$marker" 2>/dev/null || true
fi
exit 1
