#!/usr/bin/env bash
# A small stand-in for the official postgres image's entrypoint, for test
# images built from Debian packages: the same conventions (POSTGRES_*_FILE,
# PGDATA, /docker-entrypoint-initdb.d, UID 999, `gosu postgres`).
set -Eeuo pipefail

file_env() {
    local var="$1" file_var="${1}_FILE"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        echo "error: both $var and $file_var are set" >&2
        exit 1
    fi
    if [ -n "${!file_var:-}" ]; then
        export "$var"="$(< "${!file_var}")"
    fi
}

if [ "${1:-}" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

if [ "${1:-}" = postgres ]; then
    file_env POSTGRES_USER
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_DB
    : "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}") \
            --auth-host=scram-sha-256 --auth-local=trust -D "$PGDATA"
        printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
        if [ "$POSTGRES_DB" != postgres ]; then
            psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
        fi
        export POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB PGDATA
        for f in /docker-entrypoint-initdb.d/*; do
            # shellcheck disable=SC1090 # the image's own init scripts
            case "$f" in
                *.sh) if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
                *) ;;
            esac
        done
        pg_ctl -D "$PGDATA" -m fast -w stop
    fi
    shift
    exec postgres -c listen_addresses='*' "$@"
fi

exec "$@"
