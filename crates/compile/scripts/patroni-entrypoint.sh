#!/usr/bin/env bash
# hacompile: the entrypoint of a Patroni member (topology `patroni`).
#
# Patroni reads its credentials from PATRONI_* environment variables, which
# have no `_FILE` form; this script reads them from the Docker secrets named
# below and exports them, then replaces itself with Patroni, which becomes
# PID 1 (it reaps the postmaster's children and takes swarm's SIGTERM: a
# graceful stop hands the leader lock over at once). Nothing it reads is
# printed, and no credential is ever on a command line (`ps` shows none) or
# in the stack, a config or a log. Patroni keeps the PATRONI_* variables out
# of the postmaster's environment.
#
#   hacompile-patroni-entrypoint.sh          run Patroni
#   hacompile-patroni-entrypoint.sh ctl ...  run `patronictl` with the same
#                                            credentials (switchover, list):
#       docker exec -it TASK bash /usr/local/bin/hacompile-patroni-entrypoint.sh ctl list
#   hacompile-patroni-entrypoint.sh post-bootstrap DSN
#                                            Patroni's `post_bootstrap` hook, on the
#                                            first leader only: creates the database
#                                            and the monitoring role
#
# Parameters (environment), so it also runs outside a container:
#   HACOMPILE_PATRONI_CONFIG             patroni.yml (no credential in it)
#   HACOMPILE_SUPERUSER_FILE             file holding the superuser's name
#   HACOMPILE_SUPERUSER_PASSWORD_FILE    file holding its password
#   HACOMPILE_REPLICATION_USER           the replication role
#   HACOMPILE_REPLICATION_PASSWORD_FILE  file holding its password
#   HACOMPILE_RESTAPI_USER               the REST API's user (unsafe endpoints)
#   HACOMPILE_RESTAPI_PASSWORD_FILE      file holding its password
#   HACOMPILE_DATABASE                   the application database (post-bootstrap)
#   HACOMPILE_MONITOR_USER               optional: the exporters' role (post-bootstrap),
#                                        LOGIN and pg_monitor only
#   HACOMPILE_MONITOR_PASSWORD_FILE      file holding its password
set -euo pipefail

if [ "${1:-}" = post-bootstrap ]; then
    # Patroni passes a DSN and a PGPASSFILE; the name goes in as a psql
    # variable, quoted by psql, never spliced into the SQL text.
    db="${HACOMPILE_DATABASE:?HACOMPILE_DATABASE must be set}"
    dsn="${2:?the DSN Patroni passes}"
    # The monitoring role's password is checked before anything is created.
    monitor_user="${HACOMPILE_MONITOR_USER:-}"
    if [ -n "$monitor_user" ]; then
        if [ ! -r "${HACOMPILE_MONITOR_PASSWORD_FILE:?HACOMPILE_MONITOR_PASSWORD_FILE must be set}" ]; then
            echo "hacompile-patroni: cannot read the monitoring password secret at $HACOMPILE_MONITOR_PASSWORD_FILE" >&2
            exit 78
        fi
        # postgres_exporter turns the password into a connection string of its own:
        # 0.11 refuses one with a space as malformed and logs the whole string,
        # password and all. Rather than chase its quoting, only URL- and
        # base64-safe characters are taken (openssl rand -hex 32 or -base64 32 give
        # such); the value itself is never printed.
        monitor_password="$(< "$HACOMPILE_MONITOR_PASSWORD_FILE")"
        case "$monitor_password" in
            '' | *[!A-Za-z0-9._~+/=-]*)
                echo "hacompile-patroni: the monitoring password secret is empty or has characters other than A-Z a-z 0-9 . _ ~ + / = - (postgres_exporter would log it); make one with: openssl rand -hex 32" >&2
                exit 78
                ;;
        esac
        unset monitor_password
    fi
    if [ "$db" != postgres ]; then
        printf 'CREATE DATABASE :"db";\n' | psql -X -q -v ON_ERROR_STOP=1 -v db="$db" -d "$dsn"
    fi
    if [ -n "$monitor_user" ]; then
        # psql reads the password file itself (backquotes) and format()
        # quotes it: it is on no command line, and no statement is logged.
        psql -X -q -v ON_ERROR_STOP=1 -v monitor_user="$monitor_user" -d "$dsn" <<'SQL'
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';
\set monitor_password `cat "$HACOMPILE_MONITOR_PASSWORD_FILE"`
SELECT format('CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L IN ROLE pg_monitor', :'monitor_user', :'monitor_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'monitor_user') \gexec
SQL
    fi
    exit 0
fi

config="${HACOMPILE_PATRONI_CONFIG:?HACOMPILE_PATRONI_CONFIG must be set}"

# A secret's value without its trailing newlines; refuses an empty or
# unreadable file by name only (never its content).
secret() {
    local file="$1" what="$2" value
    if [ ! -r "$file" ]; then
        echo "hacompile-patroni: cannot read the $what secret at $file" >&2
        exit 78
    fi
    value="$(< "$file")"
    if [ -z "$value" ]; then
        echo "hacompile-patroni: the $what secret at $file is empty" >&2
        exit 78
    fi
    printf '%s' "$value"
}

PATRONI_SUPERUSER_USERNAME="$(secret "${HACOMPILE_SUPERUSER_FILE:?HACOMPILE_SUPERUSER_FILE must be set}" superuser)"
PATRONI_SUPERUSER_PASSWORD="$(secret "${HACOMPILE_SUPERUSER_PASSWORD_FILE:?HACOMPILE_SUPERUSER_PASSWORD_FILE must be set}" 'superuser password')"
PATRONI_REPLICATION_USERNAME="${HACOMPILE_REPLICATION_USER:?HACOMPILE_REPLICATION_USER must be set}"
PATRONI_REPLICATION_PASSWORD="$(secret "${HACOMPILE_REPLICATION_PASSWORD_FILE:?HACOMPILE_REPLICATION_PASSWORD_FILE must be set}" 'replication password')"
PATRONI_RESTAPI_USERNAME="${HACOMPILE_RESTAPI_USER:?HACOMPILE_RESTAPI_USER must be set}"
PATRONI_RESTAPI_PASSWORD="$(secret "${HACOMPILE_RESTAPI_PASSWORD_FILE:?HACOMPILE_RESTAPI_PASSWORD_FILE must be set}" 'REST API password')"
# pg_rewind of a former leader connects as a role of its own, which Patroni
# creates at the first bootstrap with only the grants pg_rewind needs. Its
# name is fixed and not secret: Patroni logs it with every rewind, where the
# superuser's name (a secret in the spec) would otherwise appear. Its
# password is the superuser's.
PATRONI_REWIND_USERNAME="hacompile_rewind"
PATRONI_REWIND_PASSWORD="$PATRONI_SUPERUSER_PASSWORD"
export PATRONI_SUPERUSER_USERNAME PATRONI_SUPERUSER_PASSWORD \
    PATRONI_REWIND_USERNAME PATRONI_REWIND_PASSWORD \
    PATRONI_REPLICATION_USERNAME PATRONI_REPLICATION_PASSWORD \
    PATRONI_RESTAPI_USERNAME PATRONI_RESTAPI_PASSWORD

if [ "${1:-}" = ctl ]; then
    shift
    exec patronictl -c "$config" "$@"
fi
exec patroni "$config"
