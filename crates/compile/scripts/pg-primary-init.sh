#!/usr/bin/env bash
# hacompile: create the replication role and its pg_hba rule on the primary.
#
# Run once by the official postgres image from /docker-entrypoint-initdb.d,
# as the postgres user, while the init-time server listens on its socket.
# Everything it needs comes from the environment, so it also runs outside a
# container:
#   PGDATA                               data directory (pg_hba.conf is appended)
#   POSTGRES_USER                        superuser to connect as (default postgres)
#   HACOMPILE_REPLICATION_USER           role to create
#   HACOMPILE_REPLICATION_PASSWORD_FILE  file holding its password (a Docker secret)
#   HACOMPILE_MONITOR_USER               optional: the monitoring role to create
#                                        (LOGIN and pg_monitor, nothing else)
#   HACOMPILE_MONITOR_PASSWORD_FILE      file holding its password (with the above)
# Extra psql connection settings (PGHOST, PGPORT) are honoured.
set -euo pipefail

: "${PGDATA:?PGDATA must be set}"
repl_user="${HACOMPILE_REPLICATION_USER:?HACOMPILE_REPLICATION_USER must be set}"
password_file="${HACOMPILE_REPLICATION_PASSWORD_FILE:?HACOMPILE_REPLICATION_PASSWORD_FILE must be set}"

if [ ! -r "$password_file" ]; then
    echo "hacompile: cannot read the replication password file $password_file" >&2
    exit 1
fi

# The monitoring role's password is checked before anything is created.
monitor_user="${HACOMPILE_MONITOR_USER:-}"
if [ -n "$monitor_user" ]; then
    monitor_file="${HACOMPILE_MONITOR_PASSWORD_FILE:?HACOMPILE_MONITOR_PASSWORD_FILE must be set with HACOMPILE_MONITOR_USER}"
    if [ ! -r "$monitor_file" ]; then
        echo "hacompile: cannot read the monitoring password file $monitor_file" >&2
        exit 1
    fi
    # postgres_exporter turns the password into a connection string of its own:
    # 0.11 refuses one with a space as malformed and logs the whole string,
    # password and all. Rather than chase its quoting, only URL- and
    # base64-safe characters are taken (openssl rand -hex 32 or -base64 32 give
    # such); the value itself is never printed.
    monitor_password="$(< "$monitor_file")"
    case "$monitor_password" in
        '' | *[!A-Za-z0-9._~+/=-]*)
            echo "hacompile: the monitoring password in $monitor_file is empty or has characters other than A-Z a-z 0-9 . _ ~ + / = - (postgres_exporter would log it); make one with: openssl rand -hex 32" >&2
            exit 1
            ;;
    esac
    unset monitor_password
fi

# The password never appears on a command line: psql reads the file itself
# (backquote expansion), and format() quotes both values.
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    --set repl_user="$repl_user" <<'SQL'
-- Whatever logging the spec's parameters turn on, these statements carry a
-- password: none of them is logged.
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';
\set repl_password `cat "$HACOMPILE_REPLICATION_PASSWORD_FILE"`
SELECT format('CREATE ROLE %I WITH REPLICATION LOGIN PASSWORD %L', :'repl_user', :'repl_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'repl_user') \gexec
SQL

# The exporters' role: it may log in and read the monitoring views
# (pg_monitor), nothing more. The image's `host all all all scram-sha-256`
# rule lets it connect; replicas get the role by replication.
if [ -n "$monitor_user" ]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
        --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        --set monitor_user="$monitor_user" <<'SQL'
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';
\set monitor_password `cat "$HACOMPILE_MONITOR_PASSWORD_FILE"`
SELECT format('CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L IN ROLE pg_monitor', :'monitor_user', :'monitor_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'monitor_user') \gexec
SQL
    echo "hacompile: monitoring role $monitor_user ready"
fi

# Replicas connect from anywhere on the overlay network, with SCRAM.
printf 'host replication %s all scram-sha-256\n' "$repl_user" >> "$PGDATA/pg_hba.conf"
echo "hacompile: replication role $repl_user ready"
