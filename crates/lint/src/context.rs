//! What a stack rule sees: the document, its services, and helpers for the
//! questions many rules ask (is this a database? which named volumes?).

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

/// Images that hold a database's state.
const DATABASE_IMAGES: &[&str] = &[
    "postgres",
    "postgresql",
    "postgis",
    "timescaledb",
    "mysql",
    "mariadb",
    "mongo",
    "mongodb",
    "cockroach",
    "patroni",
    "spilo",
    "pgpool",
];

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
                    let base = self.image_base(&svc);
                    svc.database = base.is_some_and(|b| {
                        DATABASE_IMAGES
                            .iter()
                            .any(|d| b.strip_prefix(d).is_some_and(|rest| rest.is_empty() || rest.starts_with('-')))
                    });
                    svc.postgres = base.is_some_and(|b| {
                        b.contains("postgres") || b == "postgis" || b == "timescaledb" || b == "spilo"
                    });
                    Some(svc)
                })
                .collect()
        })
    }

    /// The value at a path of keys below `node` (merge-aware at each step).
    pub fn at(&self, node: NodeId, path: &[&str]) -> Option<NodeId> {
        path.iter().try_fold(node, |n, key| self.doc.get(n, key))
    }

    pub fn str_at(&self, node: NodeId, path: &[&str]) -> Option<&'a str> {
        self.at(node, path).and_then(|n| self.doc.scalar(n))
    }

    pub fn span(&self, node: NodeId) -> std::ops::Range<usize> {
        self.doc.span(node)
    }

    pub fn image(&self, svc: &Svc<'_>) -> Option<&'a str> {
        self.str_at(svc.node, &["image"])
    }

    /// The repository's last path component, without tag or digest
    /// (repository names are lowercase, so no case folding is needed).
    pub fn image_base(&self, svc: &Svc<'_>) -> Option<&'a str> {
        let image = self.image(svc)?;
        let no_digest = image.split('@').next().unwrap_or(image);
        let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
        Some(last.split(':').next().unwrap_or(last))
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
