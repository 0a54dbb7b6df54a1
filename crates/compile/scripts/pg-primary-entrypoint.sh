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
# first deploy no replica has data, so no server answers there. A replica
# that cannot be reached (down, no task, not resolvable, no answer within
# connect_timeout) does not stop the start. A replica where a PostgreSQL
# server answers but not the question (starting up, authentication refused,
# hung after login) runs on data: it is asked again a few times, and if it
# still cannot tell, this primary refuses too (swarm restarts it, and it
# asks again). Every question is bounded in time (`timeout`), name
# resolution included.
#
# Parameters (environment), so it also runs outside a container:
#   PGDATA                               data directory of this primary
#   HACOMPILE_REPLICAS                   the replicas, as host:port words
#   HACOMPILE_REPLICATION_USER           replication role
#   HACOMPILE_REPLICATION_PASSWORD_FILE  file holding its password (a Docker secret)
#   HACOMPILE_ASK_ATTEMPTS               questions to a replica that answers but not the question (default 5, 2 s apart)
#   HACOMPILE_ASK_TIMEOUT                seconds one question may take, resolution included (default 15)
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
attempts="${HACOMPILE_ASK_ATTEMPTS:-5}"
if ! [[ "$attempts" =~ ^[0-9]+$ ]] || [ "$attempts" -lt 1 ]; then attempts=5; fi
ask_timeout="${HACOMPILE_ASK_TIMEOUT:-15}"
if ! [[ "$ask_timeout" =~ ^[0-9]+$ ]] || [ "$ask_timeout" -lt 6 ]; then ask_timeout=15; fi
passdir="$(mktemp -d)"
trap 'rm -rf "$passdir"' EXIT
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
    # Resolved once, bounded: libpq's connect_timeout does not cover name
    # resolution, and a name that does not resolve is a replica not there.
    addr="$(timeout "$ask_timeout" getent ahosts "$host" 2>/dev/null | awk 'NR == 1 { print $1 }' || true)"
    if [ -z "$addr" ]; then
        continue
    fi
    verdict=""
    for ((try = 1; try <= attempts; try++)); do
        rc=0
        out="$(PGPASSFILE="$passdir/pgpass" as_postgres timeout "$ask_timeout" psql -X -q -tA --no-password \
            -d "host=$host hostaddr=$addr port=$port user=$repl_user dbname=replication replication=true connect_timeout=5" \
            -c IDENTIFY_SYSTEM 2> "$passdir/err")" || rc=$?
        id="$(printf '%s\n' "$out" | head -n1 | cut -d'|' -f1)"
        if [[ "$id" =~ ^[0-9]+$ ]]; then
            verdict="cluster $id"
            break
        fi
        # Past connect_timeout (5 s) and still running: logged in, then no
        # answer. A FATAL or ERROR: a server answered. Either is a server
        # running on data; anything else (refused, unreachable) is none.
        if [ "$rc" = 124 ]; then
            verdict="a PostgreSQL server there logged in but did not answer IDENTIFY_SYSTEM within ${ask_timeout} s"
        elif grep -qE '(FATAL|ERROR|PANIC): ' "$passdir/err"; then
            why="$(grep -oE '(FATAL|ERROR|PANIC): .*' "$passdir/err" | head -n1 | tr -cd '[:print:]' | cut -c1-200)"
            verdict="a PostgreSQL server there answered but not with its cluster: $why"
        else
            verdict=""
            break
        fi
        if [ "$try" -lt "$attempts" ]; then sleep 2; fi
    done
    if [ -n "$verdict" ]; then
        held+=("$host ($verdict)")
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
