//! Backups in a stack, shared by the backup rules (HC414-HC416, HC518): the
//! WAL archiving a PostgreSQL service shows, and the pgBackRest or WAL-G
//! configuration each service shows: its environment, its command's
//! options, and a pgbackrest.conf it mounts from beside the stack (as
//! `hacompile build` emits it). A configuration baked into an image is not
//! seen: the rules judge only what the stack shows.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use hacompile_boundary::read::{self, limits};

use super::mounts::binds;
use crate::context::StackCx;
use crate::yaml::NodeId;

/// pgBackRest's default configuration file and include directory.
const DEFAULT_CONFIG: &str = "/etc/pgbackrest/pgbackrest.conf";
const CONFIG_DIR: &str = "/etc/pgbackrest/conf.d/";
/// pgBackRest's default posix repository path.
pub const DEFAULT_REPO_PATH: &str = "/var/lib/pgbackrest";

/// One pgBackRest option as the stack shows it.
#[derive(Debug, Clone)]
pub struct Setting {
    pub value: String,
    /// Where it is written in the stack: the environment entry, the command
    /// word, or the `file:` that names the configuration holding it.
    pub span: Range<usize>,
}

/// The pgBackRest configuration one service shows.
#[derive(Debug)]
pub struct PgBackRest {
    /// Index into [`StackCx::services`].
    pub service: usize,
    /// Options by name, lowercase and indexed (`repo1-retention-full`).
    pub options: BTreeMap<String, Setting>,
    /// Where to report an option that is missing: the mounted configuration's
    /// `file:`, else the first `PGBACKREST_*` entry, else the service.
    pub anchor: Range<usize>,
    /// What the anchor is, for messages (``the configuration `./pgbackrest.conf` ``).
    pub anchor_what: String,
    /// A configuration the service mounts could not be read (not beside the
    /// stack, external): an option missing here may be set there.
    pub unseen: bool,
}

impl PgBackRest {
    /// The repositories the options name (`repo1`, `repo2`); `1` when none.
    pub fn repos(&self) -> BTreeSet<u32> {
        let mut out: BTreeSet<u32> =
            self.options.keys().filter_map(|k| k.strip_prefix("repo")?.split_once('-')?.0.parse().ok()).collect();
        if out.is_empty() {
            out.insert(1);
        }
        out
    }

    pub fn get(&self, repo: u32, option: &str) -> Option<&Setting> {
        self.options.get(&format!("repo{repo}-{option}"))
    }
}

/// `PGBACKREST_REPO1_RETENTION_FULL` → `repo1-retention-full`.
fn env_option(key: &str) -> Option<String> {
    let rest = key.strip_prefix("PGBACKREST_")?;
    Some(normalize(&rest.to_ascii_lowercase().replace('_', "-")))
}

/// Unindexed legacy names (`repo-path`, `retention-full`) are repository 1's.
fn normalize(option: &str) -> String {
    let option = option.trim().to_ascii_lowercase();
    if let Some(rest) = option.strip_prefix("repo-") {
        return format!("repo1-{rest}");
    }
    if option.starts_with("retention-") {
        return format!("repo1-{option}");
    }
    option
}

/// `key=value` lines of a pgbackrest.conf, every section.
fn conf_options(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '[']))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (normalize(k), v.trim().to_owned()))
        .collect()
}

/// Scalars of `entrypoint` and `command`, with their nodes.
pub fn command_words<'a>(cx: &StackCx<'a>, node: NodeId) -> Vec<(&'a str, NodeId)> {
    let mut out = Vec::new();
    for field in ["entrypoint", "command"] {
        let Some(n) = cx.at(node, &[field]) else { continue };
        match cx.doc.scalar(n) {
            Some(s) => out.push((s, n)),
            None => out.extend(cx.doc.seq(n).unwrap_or(&[]).iter().filter_map(|i| Some((cx.doc.scalar(*i)?, *i)))),
        }
    }
    out
}

/// A file the service mounts from beside the stack: its target, the
/// `file:`/bind source as written, where that is written, and its text
/// (`None` when it cannot be read: not there, external, too large).
pub struct MountedFile {
    pub target: String,
    pub source: String,
    pub span: Range<usize>,
    pub text: Option<String>,
}

fn read_beside(cx: &StackCx<'_>, file: &str) -> Option<String> {
    // Only files beside the stack: a rule does not read the host's files.
    if file.is_empty() || file.starts_with(['/', '~', '$']) || file.split('/').any(|c| c == "..") {
        return None;
    }
    let dir = cx.dir.as_ref()?;
    read::read_text(&dir.join(file), limits::CONFIG).ok()
}

/// Swarm configs and bind-mounted files of a service.
pub fn mounted_files(cx: &StackCx<'_>, node: NodeId) -> Vec<MountedFile> {
    let mut out = Vec::new();
    for item in cx.at(node, &["configs"]).and_then(|c| cx.doc.seq(c)).unwrap_or(&[]) {
        let (source, target) = match cx.doc.scalar(*item) {
            Some(s) => (s, format!("/{s}")),
            None => {
                let Some(source) = cx.str_at(*item, &["source"]) else { continue };
                (source, cx.str_at(*item, &["target"]).map_or_else(|| format!("/{source}"), str::to_owned))
            }
        };
        let top = cx.at(cx.root, &["configs", source]);
        let file = top.and_then(|t| cx.at(t, &["file"]));
        let written = file.and_then(|f| cx.doc.scalar(f));
        out.push(MountedFile {
            target,
            source: written.unwrap_or(source).to_owned(),
            span: cx.span(file.or(top).unwrap_or(*item)),
            text: written.and_then(|f| read_beside(cx, f)),
        });
    }
    for bind in binds(cx, node) {
        let Some(source) = bind.source else { continue };
        out.push(MountedFile { text: read_beside(cx, &source), target: bind.target, source, span: cx.span(bind.node) });
    }
    out
}

/// The pgBackRest configuration of each service that shows one: a
/// `PGBACKREST_*` option in its environment, or a pgbackrest.conf it mounts.
/// A service that only runs `pgbackrest` (its configuration in the image)
/// shows none.
pub fn pgbackrest(cx: &StackCx<'_>) -> Vec<PgBackRest> {
    let mut out = Vec::new();
    for (i, (svc, env)) in cx.services().iter().zip(cx.environments()).enumerate() {
        let mut options = BTreeMap::new();
        let mut anchor: Option<(Range<usize>, String)> = None;
        let mut config = DEFAULT_CONFIG.to_owned();
        for e in env {
            let (Some(option), Some(value)) = (env_option(e.key), e.value) else { continue };
            if option == "config" {
                config = value.to_owned();
            }
            if anchor.is_none() {
                anchor = Some((e.key_span.clone(), format!("the environment of `{}`", svc.name)));
            }
            options.insert(option, Setting { value: value.to_owned(), span: e.value_span.clone() });
        }
        let words = command_words(cx, svc.node);
        if words.iter().any(|(w, _)| w.contains("pgbackrest")) {
            for (text, node) in &words {
                let parts: Vec<&str> = text.split_whitespace().collect();
                for (j, part) in parts.iter().enumerate() {
                    let Some(flag) = part.strip_prefix("--") else { continue };
                    let (name, value) = match flag.split_once('=') {
                        Some((n, v)) => (n, v),
                        None => match parts.get(j + 1) {
                            Some(v) if !v.starts_with('-') => (flag, *v),
                            _ => (flag, "y"),
                        },
                    };
                    let name = normalize(name);
                    if name == "config" {
                        config = value.to_owned();
                    }
                    options.insert(name, Setting { value: value.to_owned(), span: cx.span(*node) });
                }
            }
        }
        let mut unseen = false;
        let mut mounted_conf = false;
        for file in mounted_files(cx, svc.node) {
            let conf = file.target == config
                || (file.target.starts_with(CONFIG_DIR) && file.target.ends_with(".conf"))
                || (file.target.contains("pgbackrest") && file.target.ends_with(".conf"));
            if !conf {
                continue;
            }
            mounted_conf = true;
            let Some(text) = &file.text else {
                unseen = true;
                continue;
            };
            anchor = Some((file.span.clone(), format!("the configuration `{}`", file.source)));
            for (k, v) in conf_options(text) {
                // The environment and the command line win over the file, as in pgBackRest.
                options.entry(k).or_insert(Setting { value: v, span: file.span.clone() });
            }
        }
        let shown = options.keys().any(|k| k != "config" && k != "stanza" && k != "log-level-console");
        if !shown && !mounted_conf {
            continue;
        }
        let (anchor, anchor_what) =
            anchor.unwrap_or_else(|| (cx.span(svc.key), format!("the configuration of `{}`", svc.name)));
        out.push(PgBackRest { service: i, options, anchor, anchor_what, unseen });
    }
    out
}

/// Environment entries that make a service archive with WAL-G (or WAL-E,
/// or Spilo's own variables for them): where the archive goes.
pub fn walg_storage(key: &str) -> bool {
    let prefix = |p: &str| key.starts_with(p) && key.ends_with("_PREFIX");
    prefix("WALG_") || prefix("WALE_") || matches!(key, "WAL_S3_BUCKET" | "WAL_GS_BUCKET" | "WALG_AZ_PREFIX")
}

/// The value after `name` and `=` or `:` in a text (`archive_mode = on`,
/// `-c archive_mode=on`, `archive_mode: 'on'`), unquoted; every occurrence.
pub fn settings_in<'t>(text: &'t str, name: &str) -> Vec<&'t str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(name) {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after = &rest[at + name.len()..];
        rest = after;
        if !before_ok {
            continue;
        }
        let after = after.trim_start_matches([' ', '\t', '"', '\'']);
        let Some(value) = after.strip_prefix(['=', ':']) else { continue };
        let value = value.trim_start_matches([' ', '\t']);
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split(['\n', ',', '}', ';']).next().unwrap_or("").trim(),
        };
        out.push(value);
    }
    out
}

/// An `archive_mode` value that turns archiving on (`always` too).
pub fn archive_mode_on(value: &str) -> bool {
    let v = value.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    matches!(v.as_str(), "on" | "always" | "true" | "yes" | "1")
}
