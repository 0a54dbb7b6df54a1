#!/usr/bin/env bash
# hacompile: make this node a streaming replica of the primary, then run the
# given command (the image's entrypoint).
#
# On first start (no PG_VERSION in PGDATA) it takes a base backup of the
# primary with `pg_basebackup -R`, which also writes standby.signal and
# primary_conninfo. The backup goes to a temporary directory that is renamed
# into place only when complete, so an interrupted backup is retried from
# scratch on the next start instead of leaving a broken data directory.
#
# Parameters (environment), so it also runs outside a container:
#   PGDATA                               data directory of this replica
#   HACOMPILE_PRIMARY_HOST               primary to copy from
#   HACOMPILE_PRIMARY_PORT               its port (default 5432)
#   HACOMPILE_REPLICATION_USER           replication role
#   HACOMPILE_REPLICATION_PASSWORD_FILE  file holding its password (a Docker secret)
#   HACOMPILE_PGPASS_FILE                where to keep the pgpass file the
#                                        replica reconnects with (rewritten at
#                                        every start, so a rotated secret is used)
#   HACOMPILE_BASEBACKUP_ATTEMPTS        tries while the primary is not up (default 30, 2 s apart)
set -euo pipefail

: "${PGDATA:?PGDATA must be set}"
primary_host="${HACOMPILE_PRIMARY_HOST:?HACOMPILE_PRIMARY_HOST must be set}"
primary_port="${HACOMPILE_PRIMARY_PORT:-5432}"
repl_user="${HACOMPILE_REPLICATION_USER:?HACOMPILE_REPLICATION_USER must be set}"
password_file="${HACOMPILE_REPLICATION_PASSWORD_FILE:?HACOMPILE_REPLICATION_PASSWORD_FILE must be set}"
passfile="${HACOMPILE_PGPASS_FILE:?HACOMPILE_PGPASS_FILE must be set}"
attempts="${HACOMPILE_BASEBACKUP_ATTEMPTS:-30}"

# In the official image this starts as root and drops to postgres with gosu.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then gosu postgres "$@"; else "$@"; fi
}

if [ ! -r "$password_file" ]; then
    echo "hacompile: cannot read the replication password file $password_file" >&2
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

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    staging="$PGDATA.hacompile-basebackup"
    parent="$(dirname "$PGDATA")"
    mkdir -p "$parent"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$parent"; fi
    for ((i = 1; i <= attempts; i++)); do
        rm -rf "$staging"
        if as_postgres pg_basebackup --pgdata="$staging" --host="$primary_host" --port="$primary_port" \
            --username="$repl_user" --no-password --wal-method=stream --write-recovery-conf --checkpoint=fast; then
            break
        fi
        if [ "$i" -eq "$attempts" ]; then
            echo "hacompile: no base backup from $primary_host:$primary_port after $attempts attempts" >&2
            exit 1
        fi
        echo "hacompile: primary $primary_host:$primary_port not ready (attempt $i/$attempts)" >&2
        sleep 2
    done
    rm -rf "$PGDATA"
    mv "$staging" "$PGDATA"
    chmod 700 "$PGDATA"
    echo "hacompile: base backup from $primary_host:$primary_port complete"
fi

exec "$@"
