#!/usr/bin/env bash
# hacompile: pgBackRest with the repository's credentials read from Docker
# secrets at each call, so none is in a config, the stack, a command line or
# the server's environment. Used by archive_command, restore_command, the
# backup scheduler and restores.
#
#   hacompile-pgbackrest COMMAND [OPTIONS]   pgbackrest COMMAND (archive-get %f %p, info, ...)
#   hacompile-pgbackrest archive-push WAL    pgbackrest archive-push, creating the stanza if the repository has none,
#                                            refusing a former primary's WAL past a newer timeline's fork
#   hacompile-pgbackrest archive-get WAL DEST
#                                            pgbackrest archive-get, never a segment past such a fork
#   hacompile-pgbackrest launch CMD...       start the scheduler detached, then exec CMD (the image's entrypoint)
#   hacompile-pgbackrest scheduler           base backups on the schedule while this server is the primary
#   hacompile-pgbackrest restore-into DIR latest|time|name [TARGET]
#                                            restore into DIR, which must be empty or absent
#   hacompile-pgbackrest recover-into DIR latest|time|name [TARGET]
#                                            restore-into, then replay the archive to the target on a
#                                            server of its own (socket only), promote, stop cleanly: DIR
#                                            then starts anywhere without the repository
#
# Parameters (environment), so it also runs outside a container:
#   PGBACKREST_CONFIG, PGBACKREST_STANZA, PGBACKREST_PG1_PATH  read by pgbackrest itself
#   PGBACKREST_PG1_SOCKET_PATH, PGBACKREST_PG1_PORT            (defaults /var/run/postgresql, 5432)
#   HACOMPILE_BACKUP_CIPHER_PASS_FILE      the repository's passphrase (empty: unencrypted)
#   HACOMPILE_BACKUP_S3_KEY_FILE           S3 access key id (s3 repositories)
#   HACOMPILE_BACKUP_S3_KEY_SECRET_FILE    S3 secret access key (s3 repositories)
#   HACOMPILE_BACKUP_PG_USER_FILE          the superuser's name, to connect for backups
#   HACOMPILE_BACKUP_PG_PASSWORD_FILE      its password (empty: local trust, as in the official image)
#   HACOMPILE_BACKUP_FULL_DAYS, HACOMPILE_BACKUP_FULL_TIME   full backups: `date +%u` days (`1 7`), `HH:MM` UTC
#   HACOMPILE_BACKUP_DIFF_DAYS, HACOMPILE_BACKUP_DIFF_TIME   differential backups (empty: none)
#   HACOMPILE_BACKUP_STATE_DIR             where the scheduler records its last runs (the data volume)
#   HACOMPILE_BACKUP_POLL                  seconds between schedule checks (default 30)
#   HACOMPILE_BACKUP_ROUNDS                scheduler rounds before it exits (default 0: never)
#   HACOMPILE_BACKUP_SETTLE                seconds between creating the stanza and the first push (default 5)
#   HACOMPILE_RECOVER_TIMEOUT              recover-into: seconds the replay may take (default 3600)
set -euo pipefail

log() { echo "hacompile-pgbackrest: $*" >&2; }

# A secret file's content, without the trailing newline `docker secret create` may keep.
read_secret() {
    local file="$1" value
    if [ ! -r "$file" ]; then
        log "cannot read the secret file $file"
        exit 1
    fi
    value="$(< "$file")"
    printf '%s' "${value%$'\n'}"
}

credentials() {
    if [ -n "${HACOMPILE_BACKUP_CIPHER_PASS_FILE:-}" ]; then
        PGBACKREST_REPO1_CIPHER_PASS="$(read_secret "$HACOMPILE_BACKUP_CIPHER_PASS_FILE")"
        export PGBACKREST_REPO1_CIPHER_PASS
    fi
    if [ -n "${HACOMPILE_BACKUP_S3_KEY_FILE:-}" ]; then
        PGBACKREST_REPO1_S3_KEY="$(read_secret "$HACOMPILE_BACKUP_S3_KEY_FILE")"
        PGBACKREST_REPO1_S3_KEY_SECRET="$(read_secret "${HACOMPILE_BACKUP_S3_KEY_SECRET_FILE:?HACOMPILE_BACKUP_S3_KEY_SECRET_FILE must be set}")"
        export PGBACKREST_REPO1_S3_KEY PGBACKREST_REPO1_S3_KEY_SECRET
    fi
    if [ -n "${HACOMPILE_BACKUP_PG_USER_FILE:-}" ]; then
        # libpq's PGUSER, not pgBackRest's pg1-user: pgBackRest logs every
        # option it is given ("command begin"), and the name is a secret.
        PGUSER="$(read_secret "$HACOMPILE_BACKUP_PG_USER_FILE")"
        export PGUSER
    fi
    if [ -n "${HACOMPILE_BACKUP_PG_PASSWORD_FILE:-}" ]; then
        PGPASSWORD="$(read_secret "$HACOMPILE_BACKUP_PG_PASSWORD_FILE")"
        export PGPASSWORD
    fi
}

is_primary() {
    local user
    user="$(read_secret "${HACOMPILE_BACKUP_PG_USER_FILE:?HACOMPILE_BACKUP_PG_USER_FILE must be set}")"
    [ "$(psql -X -q -tA -h "${PGBACKREST_PG1_SOCKET_PATH:-/var/run/postgresql}" -p "${PGBACKREST_PG1_PORT:-5432}" \
        -U "$user" -d postgres -c 'select pg_is_in_recovery()' 2>/dev/null)" = f ]
}

# The epoch of the most recent slot at or before now (0: none in the last 8 days).
last_slot() {
    local days="$1" time="$2" now k day at
    now="$(date -u +%s)"
    for ((k = 0; k <= 7; k++)); do
        day="$(date -u -d "@$((now - k * 86400))" +%F)"
        at="$(date -u -d "$day $time" +%s)"
        if [[ " $days " == *" $(date -u -d "$day" +%u) "* ]] && [ "$at" -le "$now" ]; then
            echo "$at"
            return
        fi
    done
    echo 0
}

# Whether a slot passed since the last run recorded in STAMP (none recorded: due).
due() {
    local days="$1" time="$2" stamp="$3" slot done_at
    [ -n "$days" ] || return 1
    slot="$(last_slot "$days" "$time")"
    done_at="$(cat "$stamp" 2>/dev/null || echo 0)"
    [[ "$done_at" =~ ^[0-9]+$ ]] || done_at=0
    [ "$done_at" -eq 0 ] || [ "$slot" -gt "$done_at" ]
}

# Whether the repository has no stanza yet (`pgbackrest info`: status 1,
# missing stanza path, or 3, missing stanza data). Any other answer, and an
# unreachable repository, is not "missing": nothing is created then.
stanza_missing() {
    local info
    info="$(pgbackrest info --output=json 2>/dev/null)" || return 1
    [[ "$info" == *'"status":{"code":1,'* || "$info" == *'"status":{"code":3,'* ]]
}

# The history file of timeline TLI (8 hex digits) from the repository, on
# stdout. Status 1: the archive has none; 2: the repository did not answer
# (pgbackrest archive-get says 1 for a missing file, other codes for errors).
history_of() {
    local tli="$1" tmp rc=0
    # No temp file (TMPDIR unwritable): the repository cannot tell.
    tmp="$(mktemp 2> /dev/null)" || return 2
    pgbackrest archive-get "$tli.history" "$tmp" > /dev/null 2>&1 || rc=$?
    if [ "$rc" = 0 ]; then cat "$tmp"; fi
    rm -f "$tmp"
    case "$rc" in 0) return 0 ;; 1) return 1 ;; *) return 2 ;; esac
}

# Whether the WAL segment NAME (24 hex digits) of timeline T reaches past
# the point where the repository's newest timeline forked off T. Its WAL
# past that point is a former primary's (its last writes, or the
# checkpoint and WAL switch of its shutdown or crash recovery): not the
# cluster's history. Pushed under the segment's plain name, a replica still
# on T restores it from the archive, replays past the fork and can never
# follow the new timeline; Patroni checks the fork only once, when the
# leader changes. (PostgreSQL archives the new leader's copy of that
# segment as NAME.partial for this reason.) SIZE: bytes per segment, or
# empty to read this server's (segment_size) only when a fork is found.
# Prints the fork ("timeline N forked off T at LSN") and returns 0 when it
# does; 1 when it does not, or when the repository cannot tell (the push or
# restore then goes on as pgBackRest decides). At most 32 history files.
past_fork() {
    local name="$1" size="$2" tli next newest="" newest_tli="" hist rc parent point start fork
    [[ "$name" =~ ^[0-9A-F]{24}$ ]] || return 1
    tli=$((16#${name:0:8}))
    # PostgreSQL numbers a new timeline one past the newest in the archive.
    for ((next = tli + 1; next <= tli + 32; next++)); do
        rc=0
        hist="$(history_of "$(printf '%08X' "$next")")" || rc=$?
        [ "$rc" = 0 ] || break
        newest="$hist"
        newest_tli="$next"
    done
    [ -n "$newest" ] || return 1
    # Lines `parentTLI switchpoint reason`: the newest timeline's ancestry.
    while read -r parent point _; do
        [[ "$parent" =~ ^[0-9]+$ ]] || continue
        [ "$parent" -eq "$tli" ] || continue
        [[ "$point" =~ ^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$ ]] || return 1
        fork=$((16#${BASH_REMATCH[1]} * 4294967296 + 16#${BASH_REMATCH[2]}))
        [ -n "$size" ] || size="$(segment_size)"
        [[ "$size" =~ ^[0-9]+$ ]] && [ "$size" -gt 0 ] || return 1
        start=$((16#${name:8:8} * 4294967296 + 16#${name:16:8} * size))
        if ((start + size > fork)); then
            echo "timeline $newest_tli forked off timeline $tli at $point"
            return 0
        fi
        return 1
    done <<< "$newest"
    return 1
}

# Bytes per WAL segment of this server (PostgreSQL's default 16 MiB when
# pg_controldata cannot say).
segment_size() {
    local size
    size="$(pg_controldata "${PGBACKREST_PG1_PATH:-}" 2> /dev/null | sed -n 's/^Bytes per WAL segment: *\([0-9]*\)$/\1/p')"
    [[ "$size" =~ ^[0-9]+$ ]] && [ "$size" -gt 0 ] && echo "$size" || echo 16777216
}

# restore_command: never a segment past a fork of its timeline (past_fork),
# so a replica that has not yet seen the new timeline does not replay a
# former primary's WAL: "not found" sends it to the new leader's copy.
# Recovery asks for every file as pg_wal/RECOVERYXLOG (or RECOVERYHISTORY);
# pg_rewind (--restore-target-wal, as Patroni runs it on PostgreSQL 15 and
# later) asks for the former primary's own WAL, past the fork by design,
# under the segment's name: that is served.
archive_get() {
    local name="${1:-}" dest="${2:-}" fork
    if [ "$(basename -- "$dest")" != "$name" ] && fork="$(past_fork "$name" "")"; then
        log "not restoring $name: $fork, inside or before this segment; the archived copy holds a former primary's WAL past that point (the new timeline's copy is used instead)"
        return 1
    fi
    exec pgbackrest archive-get "$@"
}

# archive_command. Until the stanza exists every push fails, and a new
# cluster would pile up WAL until the scheduler's first backup; so a push
# that fails on a repository with no stanza creates it and pushes once more.
# Bounded: at most push, info, stanza-create, a pause, push (each under
# pgBackRest's own timeouts); a failure is left to PostgreSQL, which retries
# the segment. The first attempt's errors are shown only if the push fails
# in the end (the expected one would only alarm whoever reads the log).
archive_push() {
    local err settle="${HACOMPILE_BACKUP_SETTLE:-5}" wal="${1:-}" name size fork
    [[ "$settle" =~ ^[0-9]+$ ]] || settle=5
    name="$(basename -- "$wal")"
    # A former primary's segment past the newest timeline's fork (its
    # archiver, or Patroni archiving its ready WAL before pg_rewind) is
    # refused, loudly: PostgreSQL keeps it and retries, pg_stat_archiver
    # counts the failure. See past_fork.
    size="$(stat -c %s -- "$wal" 2> /dev/null || echo 0)"
    if fork="$(past_fork "$name" "$size")"; then
        log "refusing to archive $name: $fork, inside or before this segment; this server's WAL past that point is not the cluster's history (a former primary: rewind it or rebuild it from the new leader)"
        return 1
    fi
    if err="$({ pgbackrest archive-push "$@" 2>&1 1>&3 3>&-; } 3>&1)"; then
        [ -z "$err" ] || printf '%s\n' "$err" >&2
        return 0
    fi
    if ! stanza_missing; then
        printf '%s\n' "$err" >&2
        return 1
    fi
    log "the repository has no stanza yet: creating it before the first archive"
    # `--no-online`: the version and system id from pg_control, without a
    # connection, which a server refuses while it starts or shuts down (the
    # image's temporary init server archives as it stops). Only a primary
    # archives, so this is the primary's data. stanza-create writes the info
    # files only when none exists and checks them otherwise; it refuses a
    # repository of another cluster. Two primaries that race (a split brain)
    # may both write them: with encryption each writes its own random
    # subkey and the last writer's wins; the pause lets a racing writer
    # finish before this server pushes anything under the key it reads.
    # A loser of the race (its lock held, or the other's files half
    # written) fails: PostgreSQL retries, and finds the winner's stanza.
    clear_interrupted_create
    if ! pgbackrest stanza-create --no-online; then
        log "could not create the stanza; PostgreSQL will retry this WAL file"
        return 1
    fi
    sleep "$settle"
    pgbackrest archive-push "$@"
}

# A stanza-create killed mid-write (the container's SIGKILL, a lost node)
# leaves pgBackRest's temp file in a stanza directory that has no info file
# yet; stanza-create then refuses that directory for ever ("archive
# directory not empty") and nothing is backed up or archived. Such a file is
# never data: remove it when it is all the directory holds (posix
# repositories; an S3 object is written whole).
clear_interrupted_create() {
    local conf="${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}" type repo kind dir
    type="${PGBACKREST_REPO1_TYPE:-$(sed -n 's/^repo1-type=//p' "$conf" 2> /dev/null)}"
    repo="${PGBACKREST_REPO1_PATH:-$(sed -n 's/^repo1-path=//p' "$conf" 2> /dev/null)}"
    [ "$type" = posix ] && [ -n "$repo" ] || return 0
    for kind in archive backup; do
        dir="$repo/$kind/${PGBACKREST_STANZA:?PGBACKREST_STANZA must be set}"
        [ -d "$dir" ] || continue
        [ -e "$dir/$kind.info" ] || [ -e "$dir/$kind.info.copy" ] && continue
        [ -z "$(find "$dir" -mindepth 1 ! -name '*.pgbackrest.tmp' -print -quit)" ] || continue
        find "$dir" -mindepth 1 -maxdepth 1 -type f -name '*.pgbackrest.tmp' -print -delete \
            | while read -r f; do log "removed $f, left by an interrupted stanza-create"; done
    done
}

scheduler() {
    local state="${HACOMPILE_BACKUP_STATE_DIR:?HACOMPILE_BACKUP_STATE_DIR must be set}"
    local poll="${HACOMPILE_BACKUP_POLL:-30}" rounds="${HACOMPILE_BACKUP_ROUNDS:-0}" round=0 type
    [[ "$poll" =~ ^[0-9]+$ ]] && [ "$poll" -ge 1 ] || poll=30
    [[ "$rounds" =~ ^[0-9]+$ ]] || rounds=0
    mkdir -p "$state"
    while :; do
        round=$((round + 1))
        type=""
        if due "${HACOMPILE_BACKUP_FULL_DAYS:-}" "${HACOMPILE_BACKUP_FULL_TIME:-}" "$state/full"; then
            type="full"
        elif due "${HACOMPILE_BACKUP_DIFF_DAYS:-}" "${HACOMPILE_BACKUP_DIFF_TIME:-}" "$state/diff"; then
            type="diff"
        fi
        if [ -n "$type" ] && is_primary; then
            local started
            started="$(date -u +%s)"
            log "starting a $type backup"
            clear_interrupted_create
            # Idempotent: creates the stanza on first use, checks it after.
            if pgbackrest stanza-create && pgbackrest backup --type="$type"; then
                echo "$started" > "$state/$type"
                # A full backup is also the base of the next differentials.
                [ "$type" = full ] && echo "$started" > "$state/diff"
                log "$type backup complete"
            else
                log "the $type backup failed; retrying at the next check"
            fi
        fi
        if [ "$rounds" -gt 0 ] && [ "$round" -ge "$rounds" ]; then return 0; fi
        sleep "$poll"
    done
}

restore_into() {
    local dir="${1:?restore-into needs a target directory}" kind="${2:?restore-into needs latest, time or name}"
    local target="${3:-}"
    # Never over a running cluster: the target must be new or empty.
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
        log "refusing to restore into $dir: it is not empty (a restore never overwrites data; use a new directory or volume)"
        exit 1
    fi
    local args=(restore --pg1-path="$dir" --archive-mode=off)
    case "$kind" in
        latest) ;;
        time | name)
            [ -n "$target" ] || { log "restore-into $kind needs a target"; exit 1; }
            args+=(--type="$kind" --target="$target" --target-action=promote)
            ;;
        *) log "restore-into: unknown target kind $kind (latest, time or name)"; exit 1 ;;
    esac
    mkdir -p "$dir"
    chmod 700 "$dir"
    pgbackrest "${args[@]}"
    # A copy is nobody's primary and has no standby: the cluster's
    # synchronous_standby_names (Patroni's synchronous mode) came with it,
    # and a commit on it would wait for ever for a standby that never comes.
    printf "# hacompile restore-into: a restored copy has no synchronous standby\nsynchronous_standby_names = ''\n" \
        >> "$dir/postgresql.auto.conf"
    log "restored into $dir; start a server on it to replay the archive to the target"
}

# Replays the archive into a restored DIR with a server that listens on a
# private socket only and inherits this script's environment (the
# repository's credentials reach the restore_command pgBackRest wrote, and
# nothing else), waits until it reached the target and promoted, and stops
# it cleanly. A target the archive does not reach stops the server with
# FATAL; its log is shown.
recover() {
    local dir="$1" timeout="${HACOMPILE_RECOVER_TIMEOUT:-3600}" work waited=0 status=0
    [[ "$timeout" =~ ^[0-9]+$ ]] && [ "$timeout" -ge 1 ] || timeout=3600
    work="$(mktemp -d)"
    log "replaying the archive into $dir"
    if ! pg_ctl -D "$dir" -l "$work/postgres.log" -w -t "$timeout" \
        -o "-c listen_addresses= -c unix_socket_directories=$work -c archive_mode=off" start > /dev/null; then
        status=1
    fi
    while [ "$status" = 0 ] && [ -e "$dir/recovery.signal" ]; do
        if ! pg_ctl -D "$dir" status > /dev/null || [ "$waited" -ge "$timeout" ]; then
            status=1
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    pg_ctl -D "$dir" -m fast -w -t "$timeout" stop > /dev/null 2>&1 || true
    # The server's own account: where recovery stopped, or why it failed.
    grep -E 'recovery stopping|recovery has paused|selected new timeline|FATAL|PANIC' "$work/postgres.log" >&2 || true
    rm -rf "$work"
    if [ "$status" != 0 ] || [ -e "$dir/recovery.signal" ]; then
        log "the replay into $dir did not reach its target (the server's log is above)"
        exit 1
    fi
    log "recovered into $dir: promoted and stopped cleanly; start a server on it"
}

case "${1:-}" in
    launch)
        shift
        # Detached twice: the container's init (stack `init: true`) adopts the
        # scheduler, never the postmaster, which must see only its own children.
        # `exec` in the background job: no shell stays behind as its parent.
        (
            if [ "$(id -u)" = 0 ]; then
                exec gosu postgres setsid bash "$0" scheduler < /dev/null &
            else
                exec setsid bash "$0" scheduler < /dev/null &
            fi
        )
        exec "$@"
        ;;
    scheduler)
        credentials
        scheduler
        ;;
    restore-into)
        shift
        credentials
        restore_into "$@"
        ;;
    archive-push)
        shift
        credentials
        archive_push "$@"
        ;;
    archive-get)
        shift
        credentials
        archive_get "$@"
        ;;
    recover-into)
        shift
        credentials
        restore_into "$@"
        recover "$1"
        ;;
    *)
        credentials
        exec pgbackrest "$@"
        ;;
esac
