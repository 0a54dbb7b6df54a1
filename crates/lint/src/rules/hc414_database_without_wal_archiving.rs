use super::backup::{archive_mode_on, command_words, mounted_files, settings_in, walg_storage};
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC414",
    name: "database-without-wal-archiving",
    family: Family::HighAvailability,
    severity: Severity::Info,
    summary: "No PostgreSQL service of the stack archives its WAL: no point-in-time recovery",
    doc: r#"
## What it does
Reports a stack with PostgreSQL servers none of which shows WAL archiving:
`archive_mode` on (or `always`) together with an `archive_command` (or
`archive_library`). It looks where a stack sets them: the command
(`postgres -c archive_mode=on -c archive_command=...`), environment values
(Bitnami's `POSTGRESQL_EXTRA_FLAGS`, a `PATRONI_CONFIGURATION` document, a
variable ending in `ARCHIVE_MODE`), and the files the service mounts from
beside the stack (a `postgresql.conf`, a Patroni configuration). WAL-G or
WAL-E storage in the environment (`WALG_S3_PREFIX`, `WALG_FILE_PREFIX`,
Spilo's `WAL_S3_BUCKET`) counts as archiving, and so does a service that
streams WAL with `pg_receivewal` or runs Barman. One finding per stack, at
its first PostgreSQL server; a service that sets `archive_mode` without a
command is named.

It is `info`, not a warning, because a stack cannot show everything:
archiving may be set in a `postgresql.conf` baked into the image, or by
`ALTER SYSTEM` in the data directory. It also reports what `hacompile
build` emits for a spec without a `[backup]` table: that cluster has no
archive either, and an operator should hear it (the compiled output of a
spec with `[backup]` archives with pgBackRest and is clean).

## Why it matters
Replication is not a backup: a `DROP TABLE` or a bad migration reaches
every replica within milliseconds. Only a base backup plus the archived WAL
since then gives the state before the mistake (point-in-time recovery), and
a replica that fell behind `wal_keep_size` can catch up only from an
archive. Without archiving, the newest copy is the last dump, if any.

## Example
```yaml
services:
  db:
    image: postgres:16
    command: ["postgres", "-c", "max_connections=200"]
```

## Fix
Archive with a backup tool and keep base backups on a schedule: with
hacompile, add a `[backup]` table to the spec (pgBackRest, see
`examples/ha-postgres-backup.toml`); by hand,
`-c archive_mode=on -c archive_command='pgbackrest --stanza=main archive-push %p'`
(or WAL-G's `wal-g wal-push %p`) and a service that runs the base backups.
Where archiving is set where the stack does not show it, suppress the
finding with the reason.
"#,
    check: Check::Stack(check),
};

/// Programs that archive WAL by streaming, without `archive_mode`.
const STREAMERS: &[&str] = &["pg_receivewal", "barman", "barman-cloud-wal-archive", "barman-wal-archive"];

#[derive(Default)]
struct Seen {
    mode: bool,
    command: bool,
}

fn look(text: &str, seen: &mut Seen) {
    seen.mode |= settings_in(text, "archive_mode").into_iter().any(archive_mode_on);
    seen.command |= settings_in(text, "archive_command")
        .into_iter()
        .chain(settings_in(text, "archive_library"))
        .any(|v| !v.trim().is_empty());
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let Some(first) = cx.postgres_services().next() else { return };
    for svc in cx.services() {
        let programs = cx.programs(svc.node);
        let image = cx.image_base(svc);
        if programs.iter().any(|p| STREAMERS.contains(&p.as_str())) || image.is_some_and(|i| i.contains("barman")) {
            return;
        }
    }
    let mut half = None;
    for (svc, env) in cx.services().iter().zip(cx.environments()) {
        if !cx.is_postgres(svc) {
            continue;
        }
        let mut seen = Seen::default();
        for (text, _) in command_words(cx, svc.node) {
            look(text, &mut seen);
        }
        for e in env {
            if walg_storage(e.key) {
                return;
            }
            let Some(value) = e.value else { continue };
            if e.key.ends_with("ARCHIVE_MODE") && archive_mode_on(value) {
                seen.mode = true;
            }
            look(value, &mut seen);
        }
        for file in mounted_files(cx, svc.node) {
            if let Some(text) = &file.text {
                look(text, &mut seen);
            }
        }
        if seen.mode && seen.command {
            return;
        }
        if seen.mode && half.is_none() {
            half = Some(svc);
        }
    }
    let hit = match half {
        Some(svc) => Hit::new(
            cx.span(svc.key),
            format!(
                "`{}` turns `archive_mode` on but sets no `archive_command`: WAL is kept, never archived, and no PostgreSQL service of the stack archives",
                svc.name
            ),
        ),
        None => Hit::new(
            cx.span(first.key),
            format!(
                "no PostgreSQL service of the stack archives its WAL (`{}` is the first): there is no point-in-time recovery",
                first.name
            ),
        ),
    };
    out.push(hit.help(
        "archive with a backup tool: `[backup]` in a hacompile spec, or `-c archive_mode=on -c archive_command='pgbackrest --stanza=main archive-push %p'`",
    ));
}
