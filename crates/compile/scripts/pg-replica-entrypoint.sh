#!/usr/bin/env bash
# hacompile: make this node a streaming replica of the primary, then run the
# given command (the image's entrypoint).
#
# At every start:
#   1. If this replica has data and the primary answers, both must belong to
#      the same cluster (system identifier). A primary whose volume was
#      recreated is another cluster: this replica refuses to start, with a
#      message that says what to do, instead of serving the old cluster's data.
#   2. Its replication slot (HACOMPILE_REPLICATION_SLOT) exists on the
#      primary, which then keeps the WAL this replica has not received yet.
#   3. A base backup is taken when there is no data yet, or when the
#      healthcheck found this replica unable to stream from a primary that is
#      up (the WAL it needs is gone) for longer than HACOMPILE_RECOPY_AFTER
#      seconds. The copy goes to a staging directory renamed into place only
#      when complete: an interrupted copy never leaves a broken data
#      directory, and old data is replaced only by a complete new copy.
#
# Parameters (environment), so it also runs outside a container:
#   PGDATA                               data directory of this replica
#   HACOMPILE_PRIMARY_HOST               primary to copy from
#   HACOMPILE_PRIMARY_PORT               its port (default 5432)
#   HACOMPILE_REPLICATION_USER           replication role
#   HACOMPILE_REPLICATION_PASSWORD_FILE  file holding its password (a Docker secret)
#   HACOMPILE_REPLICATION_SLOT           this replica's physical slot (empty: none)
#   HACOMPILE_PGPASS_FILE                where to keep the pgpass file the
#                                        replica reconnects with (rewritten at
#                                        every start, so a rotated secret is used)
#   HACOMPILE_BASEBACKUP_ATTEMPTS        tries while the primary is not up (default 30, 2 s apart)
#   HACOMPILE_BASEBACKUP_MAX_RATE        pg_basebackup --max-rate (default: unlimited)
#   HACOMPILE_RECOPY_AFTER               seconds not streaming before a new copy (default 30)
set -euo pipefail

: "${PGDATA:?PGDATA must be set}"
primary_host="${HACOMPILE_PRIMARY_HOST:?HACOMPILE_PRIMARY_HOST must be set}"
primary_port="${HACOMPILE_PRIMARY_PORT:-5432}"
repl_user="${HACOMPILE_REPLICATION_USER:?HACOMPILE_REPLICATION_USER must be set}"
password_file="${HACOMPILE_REPLICATION_PASSWORD_FILE:?HACOMPILE_REPLICATION_PASSWORD_FILE must be set}"
passfile="${HACOMPILE_PGPASS_FILE:?HACOMPILE_PGPASS_FILE must be set}"
slot="${HACOMPILE_REPLICATION_SLOT:-}"
attempts="${HACOMPILE_BASEBACKUP_ATTEMPTS:-30}"
if ! [[ "$attempts" =~ ^[0-9]+$ ]] || [ "$attempts" -lt 1 ]; then attempts=1; fi
max_rate="${HACOMPILE_BASEBACKUP_MAX_RATE:-}"
recopy_after="${HACOMPILE_RECOPY_AFTER:-30}"
staging="$PGDATA.hacompile-basebackup"
old_data="$PGDATA.hacompile-old"
marker="$PGDATA.hacompile-not-streaming"

# In the official image this starts as root and drops to postgres with gosu.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then gosu postgres "$@"; else "$@"; fi
}
log() { echo "hacompile: $*" >&2; }

# A swap of a new copy for old data killed half-way: data is replaced by
# renames (old aside, new in place, old removed), so finish or undo it.
if [ -d "$old_data" ]; then
    if [ -s "$PGDATA/PG_VERSION" ]; then
        rm -rf "$old_data"
    else
        rm -rf "$PGDATA"
        mv "$old_data" "$PGDATA"
        echo "hacompile: restored the data set aside by an interrupted swap" >&2
    fi
fi
# No copy runs yet in this container: a staging directory and pid file on
# the volume were left by a copy killed with an earlier one. They go, or
# the healthcheck, finding that pid number alive again in this container's
# pid namespace, would report a copy in progress for ever.
rm -rf "$staging" "$staging.pid"

if [ ! -r "$password_file" ]; then
    log "cannot read the replication password file $password_file"
    exit 1
fi

# pgpass escapes `\` and `:`; the secret's trailing newline is not part of it.
password="$(< "$password_file")"
password="${password//\\/\\\\}"
password="${password//:/\\:}"
(umask 077 && printf '*:*:*:%s:%s\n' "$repl_user" "$password" > "$passfile")
unset password
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$passfile"; fi
export PGPASSFILE="$passfile"
replication="host=$primary_host port=$primary_port user=$repl_user dbname=replication replication=true connect_timeout=5"

primary_up() { pg_isready -q -h "$primary_host" -p "$primary_port" -t 3; }

# The primary's system identifier, through the replication protocol.
primary_system_id() {
    as_postgres psql -X -q -tA -d "$replication" -c "IDENTIFY_SYSTEM" 2>/dev/null | head -n1 | cut -d'|' -f1
}

local_system_id() {
    as_postgres pg_controldata "$PGDATA" 2>/dev/null | sed -n 's/^Database system identifier: *//p'
}

ensure_slot() {
    [ -n "$slot" ] || return 0
    as_postgres pg_receivewal --dbname="$replication" --slot="$slot" --create-slot --if-not-exists --no-password \
        || { log "cannot create the replication slot $slot on $primary_host:$primary_port"; return 1; }
}

base_backup() {
    local parent
    parent="$(dirname "$PGDATA")"
    mkdir -p "$parent"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$parent"; fi
    local args=(--pgdata="$staging" --dbname="$replication" --no-password --wal-method=stream
        --write-recovery-conf --checkpoint=fast)
    [ -n "$slot" ] && args+=(--slot="$slot")
    [ -n "$max_rate" ] && args+=(--max-rate="$max_rate")
    local copied=0
    for ((i = 1; i <= attempts; i++)); do
        rm -rf "$staging" "$staging.pid"
        if primary_up && ensure_slot; then
            as_postgres pg_basebackup "${args[@]}" &
            echo $! > "$staging.pid"
            if wait $!; then
                copied=1
                break
            fi
        fi
        if [ "$i" -eq "$attempts" ]; then
            rm -rf "$staging" "$staging.pid"
            log "no base backup from $primary_host:$primary_port after $attempts attempts"
            exit 1
        fi
        log "primary $primary_host:$primary_port not ready (attempt $i/$attempts)"
        sleep 2
    done
    if [ "$copied" -ne 1 ] || [ ! -s "$staging/PG_VERSION" ]; then
        rm -rf "$staging" "$staging.pid"
        log "the base backup from $primary_host:$primary_port is incomplete; keeping the data as it is"
        exit 1
    fi
    # Old data aside, the complete copy in place, then the old removed: a
    # kill at any point leaves one whole data directory (see the top).
    rm -f "$staging.pid" "$marker"
    if [ -e "$PGDATA" ]; then mv "$PGDATA" "$old_data"; fi
    mv "$staging" "$PGDATA"
    rm -rf "$old_data"
    chmod 700 "$PGDATA"
    log "base backup from $primary_host:$primary_port complete"
}

if [ -s "$PGDATA/PG_VERSION" ] && primary_up; then
    theirs="$(primary_system_id || true)"
    mine="$(local_system_id)"
    # Data is replaced only when both identities were read and agree: a
    # primary that cannot be asked (a timeout, no walsender free) might be
    # another cluster, and this data the only copy of the old one.
    same_cluster=0
    if [ -n "$theirs" ] && [ -n "$mine" ] && [ "$theirs" = "$mine" ]; then same_cluster=1; fi
    if [ -n "$theirs" ] && [ -n "$mine" ] && [ "$theirs" != "$mine" ]; then
        log "refusing to start: this replica's data belongs to cluster $mine, but the primary" \
            "$primary_host:$primary_port is cluster $theirs (was its volume recreated?)." \
            "Serving this data next to it would mix two databases. Restore the old primary," \
            "or remove this replica's volume so that it copies the new one."
        exit 1
    fi
    # When the healthcheck first found this replica not streaming; a marker
    # that is not a time (a check that hit a full disk) is dropped.
    since="$(cat "$marker" 2>/dev/null || true)"
    if [ -e "$marker" ] && ! [[ "$since" =~ ^[0-9]+$ ]]; then
        log "ignoring the unreadable marker $marker"
        rm -f "$marker"
        since=""
    fi
    if [ -n "$since" ] && [ "$same_cluster" = 1 ] && [ $(($(date +%s) - since)) -ge "$recopy_after" ]; then
        log "this replica could not stream from $primary_host:$primary_port (WAL gone, or its slot was" \
            "invalidated): copying the primary again"
        if [ -n "$slot" ]; then
            as_postgres pg_receivewal --dbname="$replication" --slot="$slot" --drop-slot --no-password 2>/dev/null || true
        fi
        base_backup
    else
        ensure_slot || true
    fi
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    base_backup
fi

exec "$@"
