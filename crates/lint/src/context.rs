//! What a stack rule sees: the document, its services, and helpers for the
//! questions many rules ask (is this a database? which named volumes?).

use std::borrow::Cow;
use std::path::PathBuf;

use hacompile_image::LockFile;

use crate::source::Source;
use crate::yaml::{Doc, NodeId};

pub struct StackCx<'a> {
    pub src: &'a Source,
    pub doc: &'a Doc<'a>,
    pub root: NodeId,
    pub lock: Option<&'a LockFile>,
    /// The directory of the linted file, when it is a file on disk.
    pub dir: Option<PathBuf>,
    /// The services, computed once: most rules walk them.
    services: std::sync::OnceLock<Vec<Svc<'a>>>,
    /// Each service's `environment` entries, in service order, computed once.
    environments: std::sync::OnceLock<Vec<Vec<Entry<'a>>>>,
    /// Each service's image, parsed once for the supply-chain rules.
    images: std::sync::OnceLock<Vec<crate::rules::images::Image>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Svc<'a> {
    pub name: &'a str,
    pub key: NodeId,
    pub node: NodeId,
    /// Runs a database image (computed once; several rules ask).
    database: bool,
    postgres: bool,
}

/// Images that hold a database's state: the repository's last path
/// component is one of these, alone or followed by `-something`
/// (`postgresql-repmgr`, `spilo-16`, `timescaledb-ha`). Not Pgpool-II: a
/// pooler and router in front of the servers, with no data directory (a
/// proxy, like HAProxy).
const DATABASE_IMAGES: &[&str] = &[
    "postgres",
    "postgresql",
    "postgis",
    "timescaledb",
    "citus",
    "pgvector",
    "mysql",
    "mariadb",
    "mongo",
    "mongodb",
    "cockroach",
    "patroni",
    "spilo",
];

/// The images of these run PostgreSQL (besides names containing `postgres`).
const POSTGRES_IMAGES: &[&str] = &["postgis", "timescaledb", "citus", "pgvector", "patroni", "spilo"];

/// A word in an image name that makes it a tool around a database, not the
/// database: `postgres-exporter`, `postgres-backup-s3`, `mongo-express`.
const TOOL_WORDS: &[&str] = &[
    "exporter",
    "backup",
    "backups",
    "dump",
    "dumper",
    "restore",
    "client",
    "cli",
    "express",
    "admin",
    "ui",
    "web",
    "operator",
    "proxy",
    "bouncer",
    "router",
    "agent",
    "tools",
    "migrate",
    "migrations",
    "cron",
    "monitor",
    "metrics",
    "sidecar",
    "s3",
    "gcs",
];

/// Database clients: a service whose command runs these, and no server, is
/// a job that uses the image (a backup, a schema load), not a database.
const CLIENTS: &[&str] = &[
    "pg_dump",
    "pg_dumpall",
    "pg_basebackup",
    "pg_restore",
    "pg_receivewal",
    "pg_verifybackup",
    "pgbench",
    "psql",
    "pg_isready",
    "mysqldump",
    "mysqlpump",
    "mysql",
    "mysqladmin",
    "mysqlcheck",
    "mysqlimport",
    "mysqlsh",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mongodump",
    "mongorestore",
    "mongoimport",
    "mongoexport",
    "mongosh",
    "mongo",
];

/// Database servers and the entrypoints that start them.
const SERVERS: &[&str] = &[
    "postgres",
    "postmaster",
    "pg_ctl",
    "pg_ctlcluster",
    "docker-entrypoint.sh",
    "mysqld",
    "mysqld_safe",
    "mariadbd",
    "mongod",
    "mongos",
    "patroni",
    "stolon-keeper",
];

/// Servers of other kinds that database images also ship (Patroni's and
/// Spilo's demo images run etcd and HAProxy): a service whose command ends in
/// one of these (the program it runs last) and runs no database server is
/// that server, not a database.
const OTHER_SERVERS: &[&str] = &["etcd", "haproxy", "confd", "consul", "pgbouncer", "vip-manager", "keepalived"];

/// Does an image's base name say PostgreSQL: `postgres` or `postgresql`
/// followed by nothing, a version or a separator (`postgres`,
/// `postgresql-repmgr`, `postgres16`, `docker-postgres`), not by more of
/// another word (`postgrest`, PostgREST's REST server).
fn names_postgres(base: &str) -> bool {
    base.match_indices("postgres").any(|(i, m)| {
        let rest = &base[i + m.len()..];
        let rest = rest.strip_prefix("ql").unwrap_or(rest);
        !rest.starts_with(|c: char| c.is_ascii_alphabetic())
    })
}

/// Words after which the next word is still a command name (`gosu` and
/// `su-exec` take a user first).
const COMMAND_PREFIXES: &[&str] =
    &["exec", "then", "do", "else", "if", "while", "until", "time", "!", "env", "nohup", "command", "{", "("];

impl<'a> StackCx<'a> {
    pub fn new(
        src: &'a Source,
        doc: &'a Doc<'a>,
        root: NodeId,
        lock: Option<&'a LockFile>,
        dir: Option<PathBuf>,
    ) -> Self {
        Self {
            src,
            doc,
            root,
            lock,
            dir,
            services: std::sync::OnceLock::new(),
            environments: std::sync::OnceLock::new(),
            images: std::sync::OnceLock::new(),
        }
    }

    pub fn services(&self) -> &[Svc<'a>] {
        self.services.get_or_init(|| {
            let Some(services) = self.doc.get(self.root, "services") else { return Vec::new() };
            self.doc
                .entries(services)
                .into_iter()
                .filter(|(_, v)| self.doc.is_map(*v))
                .filter_map(|(k, v)| {
                    let mut svc = Svc { name: self.doc.scalar(k)?, key: k, node: v, database: false, postgres: false };
                    if let Some(base) = self.image_base(&svc) {
                        let (database, postgres) = self.database_server(v, &base);
                        svc.database = database;
                        svc.postgres = postgres;
                    }
                    Some(svc)
                })
                .collect()
        })
    }

    /// The value at a path of keys below `node` (merge-aware at each step).
    pub fn at(&self, node: NodeId, path: &[&str]) -> Option<NodeId> {
        self.doc.at(node, path)
    }

    pub fn str_at(&self, node: NodeId, path: &[&str]) -> Option<&'a str> {
        self.at(node, path).and_then(|n| self.doc.scalar(n))
    }

    pub fn span(&self, node: NodeId) -> std::ops::Range<usize> {
        self.doc.span(node)
    }

    /// The image as deployed when no variable is set: `${IMG:-postgres:16}`
    /// is `postgres:16`; `None` when a variable has no default.
    pub fn image(&self, svc: &Svc<'_>) -> Option<Cow<'a, str>> {
        crate::rules::interpolation::with_defaults(self.str_at(svc.node, &["image"])?)
    }

    /// The repository's last path component, without tag or digest
    /// (repository names are lowercase, so no case folding is needed).
    pub fn image_base(&self, svc: &Svc<'_>) -> Option<Cow<'a, str>> {
        let base = |image: &str| -> std::ops::Range<usize> {
            let no_digest = image.split('@').next().unwrap_or(image);
            let last_at = no_digest.rfind('/').map_or(0, |i| i + 1);
            let last = &no_digest[last_at..];
            last_at..last_at + last.split(':').next().unwrap_or(last).len()
        };
        Some(match self.image(svc)? {
            Cow::Borrowed(i) => Cow::Borrowed(&i[base(i)]),
            Cow::Owned(i) => Cow::Owned(i[base(&i)].to_owned()),
        })
    }

    /// Is the service with this image base a database server, and a
    /// PostgreSQL one? A database image whose command starts another kind
    /// of server (etcd, HAProxy) and no database is that server. A
    /// database image run as a job is not a server: a
    /// swarm job (`mode: replicated-job`/`global-job`); a command that runs
    /// database clients (`pg_dump`, `pg_basebackup`, `psql -f`) and no
    /// server; or a command of its own that starts no server, run once
    /// (`restart_policy.condition: none`). Stolon's one image is a database
    /// only as a keeper.
    fn database_server(&self, node: NodeId, base: &str) -> (bool, bool) {
        let named = |list: &[&str]| {
            list.iter().any(|d| base.strip_prefix(d).is_some_and(|rest| rest.is_empty() || rest.starts_with('-')))
        };
        if base.split(['-', '_']).any(|w| TOOL_WORDS.contains(&w)) {
            return (false, false);
        }
        let programs = std::cell::OnceCell::new();
        let programs = || programs.get_or_init(|| self.programs(node));
        let (database, postgres) = if base == "stolon" {
            let keeper = programs().iter().any(|p| p == "stolon-keeper");
            (keeper, keeper)
        } else {
            let postgres = names_postgres(base) || named(POSTGRES_IMAGES);
            (postgres || named(DATABASE_IMAGES), postgres)
        };
        if !database {
            return (false, false);
        }
        let mode = self.str_at(node, &["deploy", "mode"]);
        let p = programs();
        let runs_server = p.iter().any(|w| SERVERS.contains(&w.as_str()));
        let runs_client = p.iter().any(|w| CLIENTS.contains(&w.as_str()));
        // The program the command ends in is the service: one started on
        // the way (`confd -onetime && exec start.sh`, a sidecar with `&`)
        // does not make a database something else.
        let runs_other = p.last().is_some_and(|w| OTHER_SERVERS.contains(&w.as_str()));
        // `condition: none` on the image's own command is a server that will
        // not come back (HC408's case); with a command of its own that starts
        // no server, it is a one-shot task.
        let one_shot = self.str_at(node, &["deploy", "restart_policy", "condition"]) == Some("none")
            && !p.is_empty()
            && !runs_server;
        let job = matches!(mode, Some("replicated-job" | "global-job")) || (runs_client && !runs_server) || one_shot;
        if job || (runs_other && !runs_server) { (false, false) } else { (database, postgres) }
    }

    /// The programs `entrypoint` and `command` run (the words in command
    /// position, by base name), scripts after `sh -c` included.
    pub(crate) fn programs(&self, node: NodeId) -> Vec<String> {
        let mut text = String::new();
        for field in ["entrypoint", "command"] {
            let Some(n) = self.at(node, &[field]) else { continue };
            if let Some(s) = self.doc.scalar(n) {
                text.push_str(s);
            } else {
                for item in self.doc.seq(n).unwrap_or(&[]) {
                    if let Some(s) = self.doc.scalar(*item) {
                        text.push(' ');
                        text.push_str(s);
                    }
                }
            }
            // The command is the entrypoint's arguments, not a new command line.
            text.push(' ');
        }
        // What a command substitution runs is an argument's value, not a
        // program of the service (`etcd --name $(hostname)` runs etcd).
        let text = without_substitutions(&text);
        // Separators start a new command; read them as words of their own.
        let text: String = text
            .chars()
            .flat_map(|c| {
                let sep = matches!(c, ';' | '&' | '|' | '`' | '(' | ')' | '\n');
                [if sep { ' ' } else { c }, if sep { ';' } else { '\0' }, if sep { ' ' } else { '\0' }]
            })
            .filter(|c| *c != '\0')
            .collect();
        let mut out = Vec::new();
        let mut command_position = true;
        let mut after_shell = false;
        let mut skip_user = false;
        for raw in text.split_whitespace() {
            if raw == ";" {
                command_position = true;
                continue;
            }
            let word = raw.trim_matches(['"', '\'']);
            let base = word.rsplit('/').next().unwrap_or(word);
            if skip_user {
                skip_user = false;
                continue;
            }
            if command_position {
                if COMMAND_PREFIXES.contains(&word) || word.contains('=') {
                    continue;
                }
                if matches!(base, "gosu" | "su-exec") {
                    skip_user = true;
                    continue;
                }
                out.push(base.to_owned());
                after_shell = matches!(base, "sh" | "bash" | "ash" | "dash");
                command_position = false;
            } else if after_shell && word == "-c" {
                command_position = true;
            }
        }
        out
    }

    /// The services that run a database image.
    pub fn databases(&self) -> impl Iterator<Item = &Svc<'a>> {
        self.services().iter().filter(|s| s.database)
    }

    /// The services that run a PostgreSQL image.
    pub fn postgres_services(&self) -> impl Iterator<Item = &Svc<'a>> {
        self.services().iter().filter(|s| s.postgres)
    }

    pub fn is_database(&self, svc: &Svc<'_>) -> bool {
        svc.database
    }

    /// Does this service run a PostgreSQL image? Known with the service:
    /// a rule asks it per service, never by scanning
    /// [`Self::postgres_services`] (that made a stack of many services
    /// quadratic).
    pub fn is_postgres(&self, svc: &Svc<'_>) -> bool {
        svc.postgres
    }

    /// Named volumes a service mounts (short `name:/path` or long `type: volume`).
    pub fn named_volumes(&self, svc: &Svc<'_>) -> Vec<(String, NodeId)> {
        let Some(list) = self.at(svc.node, &["volumes"]).and_then(|v| self.doc.seq(v)) else { return Vec::new() };
        let mut out = Vec::new();
        for &item in list {
            if let Some(short) = self.doc.scalar(item) {
                let source = short.split(':').next().unwrap_or("");
                if short.contains(':') && is_volume_name(source) {
                    out.push((source.to_owned(), item));
                }
            } else if self.str_at(item, &["type"]).unwrap_or("volume") == "volume"
                && let Some(source) = self.str_at(item, &["source"])
                && is_volume_name(source)
            {
                out.push((source.to_owned(), item));
            }
        }
        out
    }

    /// Every scalar below `node` (aliases followed), with a visit budget.
    pub fn scalars_below(&self, node: NodeId, out: &mut Vec<NodeId>) {
        let mut stack = vec![node];
        // Bounded by the document itself: aliases can revisit nodes, and the
        // expanded size was capped when the file was parsed.
        let mut budget = crate::yaml::MAX_EXPANDED_NODES as usize;
        while let Some(n) = stack.pop() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return;
            }
            let n = self.doc.resolve(n);
            match &self.doc.node(n).kind {
                crate::yaml::Kind::Scalar { .. } => out.push(n),
                crate::yaml::Kind::Seq(items) => stack.extend(items.iter().rev()),
                crate::yaml::Kind::Map(pairs, _) => stack.extend(pairs.iter().rev().map(|(_, v)| *v)),
                crate::yaml::Kind::Alias(_) => {}
            }
        }
    }

    /// `environment` entries of every service (map or list form), in the
    /// order of [`Self::services`].
    pub fn environments(&self) -> &[Vec<Entry<'a>>] {
        self.environments
            .get_or_init(|| self.services().iter().map(|s| self.entries_of(s.node, "environment")).collect())
    }

    /// Every service image whose text is literal, parsed once.
    pub fn images(&self) -> &[crate::rules::images::Image] {
        self.images.get_or_init(|| crate::rules::images::collect(self))
    }

    /// A map-or-list field such as `environment` or `labels`, as entries
    /// whose value span is exactly the value's text in the file.
    pub fn entries_of(&self, node: NodeId, field: &str) -> Vec<Entry<'a>> {
        let Some(value) = self.doc.get(node, field) else { return Vec::new() };
        if self.doc.is_map(value) {
            return self
                .doc
                .entries(value)
                .into_iter()
                .filter_map(|(k, v)| {
                    let key = self.doc.scalar(k)?;
                    Some(Entry {
                        key,
                        credential: crate::secrets::is_credential_key(key),
                        key_span: self.span(k),
                        value: self.doc.scalar(v),
                        value_span: self.span(v),
                        quoted: self.doc.is_quoted(v),
                    })
                })
                .collect();
        }
        // List form: `- KEY=value`, one scalar; find the value inside it.
        self.doc
            .seq(value)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&item| {
                let text = self.doc.scalar(item)?;
                let span = self.span(item);
                let (key, value) = match text.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (text, None),
                };
                let raw = &self.src.text[span.clone()];
                let value_span = match (value, raw.find('=')) {
                    (Some(v), Some(eq)) => span.start + eq + 1..(span.start + eq + 1 + v.len()).min(span.end),
                    _ => span.clone(),
                };
                Some(Entry {
                    key,
                    credential: crate::secrets::is_credential_key(key),
                    key_span: span,
                    value,
                    value_span,
                    quoted: self.doc.is_quoted(item),
                })
            })
            .collect()
    }
}

/// One `KEY: value` or `- KEY=value` entry.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub key: &'a str,
    /// The key names a credential ([`crate::secrets::is_credential_key`]), computed once.
    pub credential: bool,
    pub key_span: std::ops::Range<usize>,
    pub value: Option<&'a str>,
    pub value_span: std::ops::Range<usize>,
    pub quoted: bool,
}

/// A named volume, not a bind path (`./x`, `/x`, `~/x`).
fn is_volume_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with(['.', '/', '~', '$'])
}

/// `text` with each command substitution (`$(...)`, nested ones, compose's
/// `$$(...)`, and `` `...` ``) replaced by one word, `_`: its programs run to
/// make an argument. A `$((...))` arithmetic expansion goes the same way.
fn without_substitutions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let mut backtick = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'(') => {
                chars.next();
                if depth == 0 && !backtick {
                    out.push('_');
                }
                depth += 1;
            }
            '(' if depth > 0 => depth += 1,
            ')' if depth > 0 => depth -= 1,
            '`' if depth == 0 => {
                if !backtick {
                    out.push('_');
                }
                backtick = !backtick;
            }
            _ if depth > 0 || backtick => {}
            _ => out.push(c),
        }
    }
    // One left open (`echo 'it`s starting'`, a quoted backtick) substitutes
    // nothing: the text is read as it is.
    if depth > 0 || backtick { text.to_owned() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (database, postgres) for each service of a stack, by name.
    fn classify(yaml: &str) -> Vec<(String, bool, bool)> {
        let src = Source::new("t.yml", yaml.to_owned());
        let doc = crate::yaml::Doc::parse(&src).expect("valid YAML");
        let cx = StackCx::new(&src, &doc, doc.root.expect("a root"), None, None);
        cx.services().iter().map(|s| (s.name.to_owned(), s.database, s.postgres)).collect()
    }

    #[test]
    fn servers_and_jobs() {
        let got = classify(
            r#"
services:
  server: {image: "postgres:16"}
  args: {image: "postgres:16", command: "postgres -c max_connections=200"}
  wrapped: {image: "postgres:16", command: ["docker-entrypoint.sh", "postgres"]}
  custom: {image: "postgres:16", entrypoint: ["/replica-entrypoint.sh"]}
  replica-init: {image: "postgres:16", command: "sh -c 'pg_basebackup -h primary -U postgres -D /data && exec postgres'"}
  not-restarted: {image: "postgres:16", deploy: {restart_policy: {condition: none}}}
  dump: {image: "postgres:16", command: "pg_dump -h db -U postgres app"}
  loop: {image: "postgres:16", entrypoint: ["sh", "-c"], command: ["while true; do pg_dump -U postgres app; sleep 3600; done"]}
  job: {image: "postgres:16", deploy: {mode: replicated-job}}
  one-shot: {image: "postgres:16", command: ["/scripts/restore.sh"], deploy: {restart_policy: {condition: none}}}
  keeper: {image: "sorintlab/stolon:v0.17.0-pg15", command: "gosu stolon stolon-keeper --uid k0"}
  sentinel: {image: "sorintlab/stolon:v0.17.0-pg15", command: "gosu stolon stolon-sentinel"}
  exporter: {image: "prometheuscommunity/postgres-exporter:v0.15.0"}
  mongo-ui: {image: "mongo-express:1.0"}
  default: {image: "${PG_IMAGE:-timescale/timescaledb-ha:pg16}"}
  unknown: {image: "${PG_IMAGE}"}
  mysql: {image: "mysql:8.4"}
"#,
        );
        let want = [
            ("server", true, true),
            ("args", true, true),
            ("wrapped", true, true),
            ("custom", true, true),
            ("replica-init", true, true),
            ("not-restarted", true, true),
            ("dump", false, false),
            ("loop", false, false),
            ("job", false, false),
            ("one-shot", false, false),
            ("keeper", true, true),
            ("sentinel", false, false),
            ("exporter", false, false),
            ("mongo-ui", false, false),
            ("default", true, true),
            ("unknown", false, false),
            ("mysql", true, false),
        ];
        assert_eq!(got, want.map(|(n, d, p)| (n.to_owned(), d, p)));
    }

    /// Seen in public stacks: PostgREST's image is not PostgreSQL, and the
    /// Patroni and Spilo demo stacks run their etcd and HAProxy from the
    /// database image with a command of their own.
    #[test]
    fn other_programs_and_look_alike_names() {
        let got = classify(
            r#"
services:
  api: {image: "postgrest/postgrest:v12.2.3"}
  rest: {image: "postgrest"}
  etcd: {image: "${TEST_IMAGE:-patroni}", command: "etcd --name etcd1 --initial-advertise-peer-urls http://etcd1:2380"}
  proxy: {image: "${TEST_IMAGE:-patroni}", command: haproxy}
  dcs: {image: "spilo:3", command: "sh -c 'export A=$$(dpkg --print-architecture) && exec etcd -name etcd1'"}
  dcs-ip: {image: "spilo:3", command: "sh -c 'exec etcd -name etcd1 -advertise-client-urls http://$$(hostname --ip-address):2379'"}
  dcs-nested: {image: "spilo:3", command: "sh -c 'exec etcd --name $(echo $(hostname) | tr a-z A-Z) --data-dir `mktemp -d`'"}
  dcs-quoted: {image: "patroni:3", entrypoint: ["sh", "-c"], command: ["echo 'it`s starting' ; exec etcd --name etcd1"]}
  member: {image: "${TEST_IMAGE:-patroni}"}
  both: {image: "postgres:16", command: "sh -c 'pgbouncer -d /etc/pgbouncer.ini && exec postgres'"}
  versioned: {image: "example/postgres16:1"}
  repmgr: {image: "bitnami/postgresql-repmgr:17"}
  pool: {image: "bitnami/pgpool:4.5.2"}
"#,
        );
        let want = [
            ("api", false, false),
            ("rest", false, false),
            ("etcd", false, false),
            ("proxy", false, false),
            ("dcs", false, false),
            ("dcs-ip", false, false),
            ("dcs-nested", false, false),
            ("dcs-quoted", false, false),
            ("member", true, true),
            ("both", true, true),
            ("versioned", true, true),
            ("repmgr", true, true),
            ("pool", false, false),
        ];
        assert_eq!(got, want.map(|(n, d, p)| (n.to_owned(), d, p)));
    }

    /// Another server started on the way (config rendered by confd, a
    /// sidecar in the background, a version check) does not make a
    /// database that ends up running its own start script something else:
    /// only the program the command ends in is the service.
    #[test]
    fn another_server_on_the_way_does_not_hide_a_database() {
        let got = classify(
            r#"
services:
  confd: {image: "postgres:16", command: "sh -c 'confd -onetime -backend env && exec /usr/local/bin/start-postgres.sh'"}
  sidecar: {image: "postgres:16", command: "sh -c 'vip-manager --config /etc/vip.yml & exec /start.sh'"}
  checked: {image: "postgres:16", command: ["bash", "-c", "haproxy -v > /dev/null; exec /start.sh"]}
  proxy: {image: "${TEST_IMAGE:-patroni}", command: haproxy}
"#,
        );
        let want = [("confd", true, true), ("sidecar", true, true), ("checked", true, true), ("proxy", false, false)];
        assert_eq!(got, want.map(|(n, d, p)| (n.to_owned(), d, p)));
    }
}
