use std::collections::BTreeSet;

use super::backup::{command_words, pgbackrest, walg_storage};
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC415",
    name: "backup-without-retention",
    family: Family::HighAvailability,
    severity: Severity::Warning,
    summary: "A backup repository has no retention: backups and archived WAL are never expired",
    doc: r#"
## What it does
Reads the pgBackRest configuration the stack shows (`PGBACKREST_*`
variables, `--repo1-...` options on a `pgbackrest` command line, and a
pgbackrest.conf mounted from beside the stack as a swarm config or a bind
mount) and reports each repository (`repo1`, `repo2`, ...) for which no
service of the stack sets `repoN-retention-full`. A configuration file the
stack names but that is not beside it is not judged, nor one baked into the
image. For WAL-G (a `WALG_*_PREFIX` storage in the environment), reports a
stack in which no command runs `wal-g delete` (`retain`, `before`); Spilo
images are left alone, they expire by `BACKUP_NUM_TO_RETAIN` (default 5).

## Why it matters
pgBackRest expires nothing without `repo1-retention-full`: every full
backup and every archived WAL segment since the first one is kept (it says
so in a warning on each backup, which nobody reads in a container log).
The repository grows until its disk or bucket quota is full; then
`archive_command` fails, WAL piles up in `pg_wal` on the primary, and the
primary's own disk fills and it stops. WAL-G has no retention setting at
all: without a scheduled `wal-g delete retain FULL N --confirm` it keeps
everything.

## Example
```ini
# pgbackrest.conf, mounted by the stack as a config
[global]
repo1-path=/var/lib/pgbackrest
repo1-cipher-type=aes-256-cbc
```

## Fix
Set how many full (and differential) backups to keep, and pgBackRest
expires older backups and the WAL they need after each backup:
`repo1-retention-full=2`, `repo1-retention-diff=7` (or
`repo1-retention-full-type=time` with a count of days); with hacompile,
`retention_full` and `retention_diff` in `[backup]`. For WAL-G, run
`wal-g delete retain FULL 2 --confirm` after each scheduled backup.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let configs = pgbackrest(cx);
    // Expiry runs where backups run: a repository with retention set on any
    // service of the stack has it.
    let kept: BTreeSet<u32> = configs
        .iter()
        .flat_map(|c| c.repos().into_iter().filter(|r| c.get(*r, "retention-full").is_some()).collect::<Vec<_>>())
        .collect();
    for c in &configs {
        if c.unseen {
            continue;
        }
        for repo in c.repos() {
            if kept.contains(&repo) {
                continue;
            }
            out.push(
                Hit::new(
                    c.anchor.clone(),
                    format!(
                        "pgBackRest repository `repo{repo}` in {} has no `repo{repo}-retention-full`: no backup or archived WAL is ever expired",
                        c.anchor_what
                    ),
                )
                .help(format!("set `repo{repo}-retention-full` (e.g. 2) and `repo{repo}-retention-diff`")),
            );
        }
    }
    walg(cx, out);
}

fn walg(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let mut storage = None;
    for (svc, env) in cx.services().iter().zip(cx.environments()) {
        if cx.image_base(svc).is_some_and(|i| i.starts_with("spilo")) {
            return;
        }
        if storage.is_none()
            && let Some(e) = env.iter().find(|e| walg_storage(e.key))
        {
            storage = Some((e.key_span.clone(), e.key, svc.name));
        }
        let deletes = command_words(cx, svc.node)
            .iter()
            .map(|(t, _)| *t)
            .chain(env.iter().filter_map(|e| e.value))
            .any(|t| t.contains("wal-g") && t.contains("delete"));
        if deletes {
            return;
        }
    }
    if let Some((span, key, name)) = storage {
        out.push(
            Hit::new(span, format!("`{name}` archives with WAL-G (`{key}`) but no service of the stack runs `wal-g delete`: nothing is ever expired"))
                .help("run `wal-g delete retain FULL 2 --confirm` after each scheduled `wal-g backup-push`"),
        );
    }
}
