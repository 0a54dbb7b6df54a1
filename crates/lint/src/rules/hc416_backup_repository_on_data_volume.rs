use super::backup::{DEFAULT_REPO_PATH, pgbackrest};
use super::hc402_database_volume_shared::holds_data;
use super::mounts::binds;
use super::{Check, Rule};
use crate::context::{StackCx, Svc};
use crate::finding::{Family, Hit, Severity};
use crate::yaml::NodeId;

pub const RULE: Rule = Rule {
    code: "HC416",
    name: "backup-repository-on-data-volume",
    family: Family::HighAvailability,
    severity: Severity::Warning,
    summary: "A backup repository is on the volume that holds the database's data",
    doc: r#"
## What it does
Finds the posix repositories of pgBackRest (`repoN-path`, default
`/var/lib/pgbackrest`, from `PGBACKREST_*` variables, `--repoN-path`, or a
pgbackrest.conf mounted from beside the stack) and of WAL-G
(`WALG_FILE_PREFIX`), takes the mount of the service that holds that path
(the one with the longest target above it), and reports it when that mount
is the data directory's mount of a PostgreSQL service of the stack: the
repository is inside the data volume, the same named volume is mounted
twice (once as data, once as repository), or a backup service mounts the
database's data volume (or host directory) as its repository. A data mount
is one at a PostgreSQL data path (`/var/lib/postgresql`,
`/bitnami/postgresql`, ...) or above the service's `PGDATA`. Object storage
repositories (`repoN-type=s3`, `gcs`, `azure`) are not judged.

## Why it matters
A backup must survive what destroys the data: the volume removed with the
stack (`docker volume rm`, `docker stack rm` followed by a prune), a node
or disk lost, a full disk, a corrupt filesystem. A repository on the data
volume goes with it, so the restore that was meant to follow finds
nothing. It also fills the database's disk with backups. (A separate local
volume on the same node is still the same disk: this rule cannot see
disks, so prefer NFS or object storage for the repository.)

## Example
```yaml
services:
  db:
    image: postgres:16
    environment:
      PGBACKREST_REPO1_PATH: /var/lib/postgresql/data/backup
    volumes: [pgdata:/var/lib/postgresql/data]
```

## Fix
Put the repository on storage of its own: a volume backed by NFS or another
disk, mounted at the repository path (with hacompile, `[backup.repository]`
with `volume` and `nfs`), or object storage (`repo1-type=s3`).
"#,
    check: Check::Stack(check),
};

/// Where a mount comes from: a named volume (the name swarm creates) or a host path.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Volume(String),
    Host(String),
}

impl Source {
    fn same_storage(&self, other: &Source) -> bool {
        let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{}/", b.trim_end_matches('/')));
        match (self, other) {
            (Source::Volume(a), Source::Volume(b)) => a == b,
            (Source::Host(a), Source::Host(b)) => under(a, b) || under(b, a),
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Volume(v) => format!("volume `{v}`"),
            Source::Host(h) => format!("host directory `{h}`"),
        }
    }
}

struct Mount {
    source: Source,
    target: String,
    node: NodeId,
}

fn mounts(cx: &StackCx<'_>, svc: &Svc<'_>) -> Vec<Mount> {
    let mut out: Vec<Mount> = cx
        .named_volumes(svc)
        .into_iter()
        .filter_map(|(key, node)| {
            let target = match cx.doc.scalar(node) {
                Some(short) => short.split(':').nth(1)?.to_owned(),
                None => cx.str_at(node, &["target"])?.to_owned(),
            };
            let name = cx.str_at(cx.root, &["volumes", &key, "name"]).map_or(key, str::to_owned);
            Some(Mount { source: Source::Volume(name), target, node })
        })
        .collect();
    out.extend(
        binds(cx, svc.node)
            .into_iter()
            .filter_map(|b| Some(Mount { source: Source::Host(b.source?), target: b.target, node: b.node })),
    );
    out
}

fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/")) || dir.is_empty()
}

/// The mount that holds a path: the one with the longest target above it.
fn holder<'m>(mounts: &'m [Mount], path: &str) -> Option<&'m Mount> {
    mounts.iter().filter(|m| under(path, &m.target)).max_by_key(|m| m.target.trim_end_matches('/').len())
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    // The data mounts of every PostgreSQL server: (service, source).
    let mut data: Vec<(&str, Source)> = Vec::new();
    for svc in cx.postgres_services() {
        let pgdata = cx.str_at(svc.node, &["environment", "PGDATA"]);
        for m in mounts(cx, svc) {
            if holds_data(cx, m.node, pgdata) {
                data.push((svc.name, m.source));
            }
        }
    }
    if data.is_empty() {
        return;
    }
    // Repository paths: (service index, tool and repository, path).
    let mut repos: Vec<(usize, String, String)> = Vec::new();
    for c in pgbackrest(cx) {
        for repo in c.repos() {
            let kind = c.get(repo, "type").map_or("posix", |s| s.value.as_str());
            if !matches!(kind, "posix" | "cifs") {
                continue;
            }
            let path = c.get(repo, "path").map_or(DEFAULT_REPO_PATH, |s| s.value.as_str());
            repos.push((c.service, format!("pgBackRest repository `repo{repo}`"), path.to_owned()));
        }
    }
    for (i, env) in cx.environments().iter().enumerate() {
        if let Some(prefix) = env.iter().find(|e| e.key == "WALG_FILE_PREFIX").and_then(|e| e.value) {
            repos.push((i, "WAL-G's file storage".to_owned(), prefix.to_owned()));
        }
    }
    for (i, what, path) in repos {
        let svc = &cx.services()[i];
        let mounts = mounts(cx, svc);
        let Some(m) = holder(&mounts, &path) else { continue };
        let Some((owner, _)) = data.iter().find(|(_, s)| s.same_storage(&m.source)) else { continue };
        out.push(
            Hit::new(
                cx.span(m.node),
                format!(
                    "{what} of `{}` (`{path}`) is on {}, which holds the data directory of `{owner}`: losing the volume loses the data and its backups together",
                    svc.name,
                    m.source.describe()
                ),
            )
            .help("give the repository storage of its own: a volume on NFS or another disk, or object storage (`repo1-type=s3`)"),
        );
    }
}
