use std::collections::HashMap;

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
    fn describe(&self) -> String {
        match self {
            Source::Volume(v) => format!("volume `{v}`"),
            Source::Host(h) => format!("host directory `{h}`"),
        }
    }
}

/// The data mounts' sources, indexed: which one (the first, in the order
/// given) is on the same storage as a source: the same named volume, or
/// host paths one of which is the other or below it.
/// Each question costs the length of the asked path, not a scan of every
/// data mount (which, asked once per repository, made a stack of thousands
/// of PostgreSQL services quadratic).
struct Owners<'s> {
    volumes: HashMap<&'s str, usize>,
    /// Host paths by their `/`-separated components; node 0 is the root.
    nodes: Vec<PathNode<'s>>,
}

/// A host path as the components from the root to this node.
#[derive(Default)]
struct PathNode<'s> {
    children: HashMap<&'s str, usize>,
    /// The first source that is exactly this path.
    exact: Option<usize>,
    /// The first source that is this path once its trailing `/` are trimmed.
    trimmed: Option<usize>,
    /// The first source below this path (this path and a `/` start it).
    below: Option<usize>,
}

impl<'s> Owners<'s> {
    fn new(sources: impl IntoIterator<Item = &'s Source>) -> Self {
        let mut owners = Owners { volumes: HashMap::new(), nodes: vec![PathNode::default()] };
        for (i, source) in sources.into_iter().enumerate() {
            match source {
                Source::Volume(v) => {
                    owners.volumes.entry(v.as_str()).or_insert(i);
                }
                Source::Host(h) => {
                    let parts: Vec<&str> = h.split('/').collect();
                    let mut at = 0;
                    for (depth, part) in parts.iter().enumerate() {
                        at = owners.child(at, part);
                        if depth + 1 < parts.len() {
                            owners.nodes[at].below.get_or_insert(i);
                        }
                    }
                    owners.nodes[at].exact.get_or_insert(i);
                    let trimmed = h.trim_end_matches('/').split('/').fold(0, |at, part| owners.child(at, part));
                    owners.nodes[trimmed].trimmed.get_or_insert(i);
                }
            }
        }
        owners
    }

    fn child(&mut self, at: usize, part: &'s str) -> usize {
        if let Some(&c) = self.nodes[at].children.get(part) {
            return c;
        }
        self.nodes.push(PathNode::default());
        let c = self.nodes.len() - 1;
        self.nodes[at].children.insert(part, c);
        c
    }

    fn find(&self, path: &str) -> Option<usize> {
        path.split('/').try_fold(0, |at, part| self.nodes[at].children.get(part).copied())
    }

    /// The first source on the same storage as `source`. For host paths
    /// `q` and `d` that is: the same path, `d` (trimmed) and a `/` start
    /// `q`, or `q` (trimmed) and a `/` start `d`.
    fn first(&self, source: &Source) -> Option<usize> {
        let q = match source {
            Source::Volume(v) => return self.volumes.get(v.as_str()).copied(),
            Source::Host(q) => q,
        };
        let mut first: Option<usize> = None;
        let mut keep = |i: Option<usize>| {
            if let Some(i) = i {
                first = Some(first.map_or(i, |f| f.min(i)));
            }
        };
        let parts: Vec<&str> = q.split('/').collect();
        let mut at = Some(0);
        for (depth, part) in parts.iter().enumerate() {
            at = at.and_then(|a| self.nodes[a].children.get(part).copied());
            let Some(node) = at.map(|a| &self.nodes[a]) else { break };
            if depth + 1 < parts.len() {
                keep(node.trimmed);
            } else {
                keep(node.exact);
            }
        }
        keep(self.find(q.trim_end_matches('/')).and_then(|a| self.nodes[a].below));
        first
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
    let owners = Owners::new(data.iter().map(|(_, s)| s));
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
        let Some(owner) = owners.first(&m.source).map(|i| data[i].0) else { continue };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`Owners::first`] answers with an index, by a scan of every pair.
    fn same_storage(a: &Source, b: &Source) -> bool {
        let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{}/", b.trim_end_matches('/')));
        match (a, b) {
            (Source::Volume(a), Source::Volume(b)) => a == b,
            (Source::Host(a), Source::Host(b)) => under(a, b) || under(b, a),
            _ => false,
        }
    }

    #[test]
    fn the_index_answers_as_a_scan_of_every_data_mount() {
        let paths = [
            "",
            "/",
            "//",
            "/srv",
            "/srv/",
            "/srv//",
            "/srv/pg",
            "/srv/pg/",
            "/srv/pgdata",
            "/srv//pg",
            "srv",
            "srv/pg",
            "./data",
            "./data/backup",
            ".",
            "/var/lib/postgresql/data",
            "/var/lib/postgresql/data/backup",
            "/var",
        ];
        let sources: Vec<Source> = paths
            .iter()
            .map(|p| Source::Host((*p).to_owned()))
            .chain(["pgdata", "other", ""].iter().map(|v| Source::Volume((*v).to_owned())))
            .collect();
        // Every order of a few rotations, so "the first" is tested, not just "one".
        for rotate in 0..sources.len() {
            let mut data = sources.clone();
            data.rotate_left(rotate);
            data.truncate(sources.len() - rotate % 5);
            let owners = Owners::new(&data);
            for q in &sources {
                let want = data.iter().position(|d| same_storage(d, q));
                assert_eq!(owners.first(q), want, "{q:?} in {data:?}");
            }
        }
    }
}
