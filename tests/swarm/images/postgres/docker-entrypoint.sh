#!/usr/bin/env bash
# Stand-in for the official postgres image's entrypoint (written for the swarm
# test; not a copy). It behaves like docker-library/postgres
# 16/bookworm/docker-entrypoint.sh at 6edb0a8c4def40c371514b34aef9037ec82d9110
# (line numbers there):
#   - an option as first argument means `postgres OPTIONS` (l.328-330);
#     `postgres --help/--version/...` runs without any setup (l.311-324);
#   - POSTGRES_PASSWORD, POSTGRES_USER (default postgres), POSTGRES_DB
#     (default the user) and POSTGRES_INITDB_ARGS may come from a *_FILE
#     (a Docker secret); setting both is an error; the *_FILE variable is
#     unset once read, and the value stays exported, also into the server's
#     environment (l.9-25, l.234-240);
#   - as root: PGDATA created and chmod 0700, /var/run/postgresql chmod 03775
#     (failures ignored), everything in them not owned by postgres chowned
#     to postgres, then the script runs again as postgres via gosu
#     (l.36-61, l.333-339) -- the capabilities hacompile grants serve this;
#   - an empty PGDATA (no PG_VERSION) is initialised: a password is required
#     unless POSTGRES_HOST_AUTH_METHOD=trust (l.105-120); initdb with the
#     superuser and its password and no --auth, so local and loopback
#     connections get initdb's default `trust` (l.92); pg_hba.conf gets
#     `host all all all <password_encryption>` (l.263-281); a server on its
#     socket only (l.285-301) creates POSTGRES_DB unless it exists
#     (l.217-230) and runs /docker-entrypoint-initdb.d/* in name order:
#     *.sh executed if executable, else sourced; *.sql and *.sql.gz through
#     psql; anything else ignored (l.172-199); then a fast stop (l.304-307);
#   - finally the command replaces the script (l.377): PID 1 is the server,
#     UID 999.
# Not mirrored (unused by hacompile's stacks): nss_wrapper for arbitrary
# `--user` UIDs, POSTGRES_INITDB_WALDIR, *.sql.xz/*.sql.zst, the 18+ data
# layout check, quotes inside POSTGRES_INITDB_ARGS (split on spaces here).
# Like the official script: no `set -u`, so init scripts sourced here see
# the same shell options they would see there.
set -Eeo pipefail

# Reads NAME from the file named by NAME_FILE when that is set; DEFAULT if
# neither is set.
value_or_file() {
    local name=$1 default=${2:-} via="${1}_FILE"
    local direct=${!name:-} path=${!via:-}
    if [ -n "$direct" ] && [ -n "$path" ]; then
        echo "error: $name and $via are both set; set only one of them" >&2
        exit 1
    fi
    local value=$default
    if [ -n "$direct" ]; then
        value=$direct
    elif [ -n "$path" ]; then
        value=$(< "$path")
    fi
    export "$name=$value"
    unset "$via"
}

informational() {
    local arg
    for arg in "$@"; do
        case $arg in
            '-?' | --help | --describe-config | -V | --version) return 0 ;;
        esac
    done
    return 1
}

prepare_directories() {
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA" || :
    mkdir -p /var/run/postgresql || :
    chmod 03775 /var/run/postgresql || :
    if [ "$(id -u)" = 0 ]; then
        find "$PGDATA" /var/run/postgresql ! -user postgres -exec chown postgres {} +
    fi
}

# psql on the init-time server's socket as the superuser, into database $1
# (none: psql's default).
sql_in() {
    local db=()
    if [ -n "$1" ]; then db=(--dbname "$1"); fi
    shift
    PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "${db[@]}" "$@"
}
# The official script offers a function of this name to sourced init
# scripts; so does this one.
docker_process_sql() { sql_in "$POSTGRES_DB" "$@"; }

initialise() {
    shift # "postgres"; the rest are server options, also for the init-time server
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        echo "error: the database is not initialised and POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is empty" >&2
        exit 1
    fi
    # Fails early on an unreadable init directory, before initdb.
    ls /docker-entrypoint-initdb.d/ > /dev/null

    # initdb takes the first line of the file; an empty password still needs one.
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS

    local method
    method=$(postgres -C password_encryption "$@")
    : "${POSTGRES_HOST_AUTH_METHOD:=$method}"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"

    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    local options
    options=$(printf '%q ' "$@" -c listen_addresses= -p "${PGPORT:-5432}")
    NOTIFY_SOCKET='' PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$options" -w start

    local exists
    exists=$(sql_in postgres --tuples-only --set db="$POSTGRES_DB" <<< "SELECT 1 FROM pg_database WHERE datname = :'db'")
    if [ -z "$exists" ]; then
        sql_in postgres --set db="$POSTGRES_DB" <<< 'CREATE DATABASE :"db"'
    fi

    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
            *.sh)
                if [ -x "$f" ]; then
                    echo "$0: running $f"
                    "$f"
                else
                    echo "$0: sourcing $f"
                    # shellcheck disable=SC1090 # the image user's own scripts
                    . "$f"
                fi
                ;;
            *.sql) echo "$0: running $f" && docker_process_sql -f "$f" ;;
            *.sql.gz) echo "$0: running $f" && gunzip -c "$f" | docker_process_sql ;;
            *) echo "$0: ignoring $f" ;;
        esac
    done

    PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    echo "$0: database initialised"
}

case "${1:-}" in
    -*) set -- postgres "$@" ;;
esac

if [ "${1:-}" = postgres ] && ! informational "$@"; then
    value_or_file POSTGRES_PASSWORD
    value_or_file POSTGRES_USER postgres
    value_or_file POSTGRES_DB "$POSTGRES_USER"
    value_or_file POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    prepare_directories
    if [ "$(id -u)" = 0 ]; then
        exec gosu postgres "${BASH_SOURCE[0]}" "$@"
    fi
    if [ -s "$PGDATA/PG_VERSION" ]; then
        echo "$0: PGDATA holds a database; no initialisation"
    else
        initialise "$@"
    fi
fi

exec "$@"
