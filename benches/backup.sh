#!/usr/bin/env bash
# Benchmark: the compiled backups (issue #14 item 6), on loopback with real
# PostgreSQL 15 and pgBackRest 2.45. examples/ha-postgres-backup.toml
# (posix repository, encrypted, zst level 3: what users get) is compiled by
# the built hacompile and its primary runs with the compiled archive
# settings through the emitted wrapper and pgbackrest.conf. On a pgbench
# database of SCALE it prints, measured in the same run:
#   - full backup: pgBackRest through the wrapper (process-max 1 as
#     compiled, and 2) against pg_basebackup -X stream (plain), cp -a and
#     tar (plain, zstd -3) of the stopped data directory: seconds, MB/s,
#     bytes written, ratio to pg_basebackup;
#   - restore into a fresh directory: restore-into DIR latest against cp -a
#     of the pg_basebackup copy;
#   - WAL archive lag under pgbench TPC-B (-c 4, SECONDS) sampled every
#     second (median, p95, max in bytes and in age of the last archived
#     segment), archived and failed counts, and pgbench tps with archiving
#     against archive_mode off (ABBA);
#   - milliseconds per archive-get and archive-push through the emitted
#     wrapper against pgbackrest called directly (the wrapper's cost).
#
#   benches/backup.sh [SCALE] [SECONDS]   (defaults 75: about 1.1 GB, and 60;
#                                          about 20 minutes on 2 busy cores,
#                                          12 GB free in the temp directory)
#
# Runs as root: the servers run as the postgres user (setpriv), as in the
# images. Everything it starts runs under one temp directory, removed on
# exit with the servers found in it.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-75}"
secs="${2:-60}"
case "$scale$secs" in
'' | *[!0-9]*) echo "usage: benches/backup.sh [SCALE] [SECONDS]" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
    echo "benches/backup.sh: run it as root (PostgreSQL and pgBackRest run as the postgres user through setpriv)" >&2
    exit 2
fi

tests/setup.sh
work="$(mktemp -d)"
# Sticky and world-writable like /tmp: the servers and scripts run as
# postgres and make their temp files here (TMPDIR below).
chmod 1777 "$work"
# A server still running in the temp directory (the bench was interrupted)
# is stopped by its postmaster.pid, then the directory goes.
cleanup() {
    local pidfile pid
    while IFS= read -r pidfile; do
        pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
        case "$pid" in
        '' | *[!0-9]*) continue ;;
        esac
        kill -INT "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done < <(find "$work" -name postmaster.pid 2>/dev/null)
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The dev profile: the measured parts are the servers and pgBackRest, not
# this program, and it reuses the test build. Its temp directories go under
# $work (tempfile reads TMPDIR).
TMPDIR="$work" timeout -k 60 7200 cargo bench --profile dev --bench backup -- "$scale" "$secs"
