#!/usr/bin/env bash
# hacompile: the primary's start, then the given command (the image's
# entrypoint).
#
# On an empty data directory the image's entrypoint creates a new, empty
# cluster. That is right on the first deploy, and wrong when the primary's
# volume was lost or recreated while its replicas still hold the data: the
# new cluster would take writes as if nothing had happened, and the
# replicas, which refuse a primary of another cluster, would leave the
# service. So before that, the replicas are asked over the replication
# protocol (IDENTIFY_SYSTEM) whether they hold a cluster; if one does, this
# primary refuses to start, with a message that says what to do. On the
# first deploy no replica has data, so none answers. A replica that cannot
# be reached (down, no task, not resolvable) does not stop the start.
#
# Parameters (environment), so it also runs outside a container:
#   PGDATA                               data directory of this primary
#   HACOMPILE_REPLICAS                   the replicas, as host:port words
#   HACOMPILE_REPLICATION_USER           replication role
#   HACOMPILE_REPLICATION_PASSWORD_FILE  file holding its password (a Docker secret)
set -euo pipefail

: "${PGDATA:?PGDATA must be set}"
log() { echo "hacompile: $*" >&2; }
as_postgres() {
    if [ "$(id -u)" = 0 ]; then gosu postgres "$@"; else "$@"; fi
}

if [ -s "$PGDATA/PG_VERSION" ] || [ -z "${HACOMPILE_REPLICAS:-}" ]; then
    exec "$@"
fi

repl_user="${HACOMPILE_REPLICATION_USER:?HACOMPILE_REPLICATION_USER must be set}"
password_file="${HACOMPILE_REPLICATION_PASSWORD_FILE:?HACOMPILE_REPLICATION_PASSWORD_FILE must be set}"
if [ ! -r "$password_file" ]; then
    log "cannot read the replication password file $password_file"
    exit 1
fi

# A pgpass file that lives only for the questions below; pgpass escapes `\`
# and `:`, and the secret's trailing newline is not part of the password.
passdir="$(mktemp -d)"
password="$(< "$password_file")"
password="${password//\\/\\\\}"
password="${password//:/\\:}"
(umask 077 && printf '*:*:*:%s:%s\n' "$repl_user" "$password" > "$passdir/pgpass")
unset password
if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$passdir"; fi

held=()
for replica in $HACOMPILE_REPLICAS; do
    host="${replica%:*}"
    port="${replica##*:}"
    id="$(PGPASSFILE="$passdir/pgpass" as_postgres psql -X -q -tA --no-password \
        -d "host=$host port=$port user=$repl_user dbname=replication replication=true connect_timeout=5" \
        -c IDENTIFY_SYSTEM 2>/dev/null | head -n1 | cut -d'|' -f1 || true)"
    if [[ "$id" =~ ^[0-9]+$ ]]; then
        held+=("$host (cluster $id)")
    fi
done
rm -rf "$passdir"

if [ "${#held[@]}" -gt 0 ]; then
    log "refusing to create a new, empty cluster: this primary's data directory $PGDATA is empty," \
        "but its replicas hold the cluster's data: ${held[*]}." \
        "The primary's volume was removed or recreated, or its task runs on a node without it." \
        "Promote the replica with the most recent data (README: the pinned topology's manual failover)," \
        "or restore from a backup; to start a new, empty cluster on purpose, remove the replicas' volumes first."
    exit 1
fi

exec "$@"
