//! The linter: rules over stack/compose files, cluster specs and haproxy.cfg.
//!
//! [`lint_file`] lints one file's bytes; [`run`] walks paths, finds each
//! file's `.hacompile.toml`, follows stack files to the haproxy.cfg they
//! name, and returns every result. Nothing here prints: [`output`] renders
//! reports as text the binary writes.

pub mod config;
pub mod context;
pub mod finding;
pub mod output;
pub mod rules;
pub mod secrets;
pub mod source;
pub mod spec;
pub mod suppress;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hacompile_boundary::mask::Masker;

use hacompile_boundary::read::{self, ReadError, limits};
use hacompile_image::LockFile;

pub use config::{Config, ConfigError, Target, TargetSetting};
pub use finding::{Family, Finding, Hit, Severity};
pub use rules::{RULES, Rule};
pub use source::Source;

/// Stack files larger than this are refused (an 8,000-service stack is ~3 MiB).
pub const MAX_STACK_BYTES: u64 = limits::STACK;

/// At most this many findings of one rule are reported per file; one more
/// finding of the rule says how many were left out. A file with a million
/// duplicate keys has one problem, not a report of hundreds of megabytes.
pub const MAX_FINDINGS_PER_RULE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Stack,
    Spec,
    Haproxy,
    /// A Patroni configuration (YAML with top-level `bootstrap:` beside
    /// `scope:`, `restapi:`, `postgresql:` or a DCS section), told by content.
    Patroni,
    /// An `env_file` a stack names (or one named on the command line):
    /// `KEY=VALUE` lines, checked for literal credentials.
    Env,
    /// A side file lint reads but does not lint (`hacompile.lock`,
    /// `.hacompile.toml`): reported only when it cannot be used.
    Lock,
    Config,
}

/// The result of linting one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub name: String,
    pub kind: FileKind,
    /// The text, when it could be read (for rendering snippets).
    pub source: Option<Source>,
    pub findings: Vec<Finding>,
    /// The file could not be read or parsed (exit code 2).
    pub input_error: bool,
    pub fail_on: Severity,
    /// haproxy.cfg files a stack names in `configs: ... file:`.
    pub haproxy_refs: Vec<PathBuf>,
    /// Env files a stack's services name in `env_file` that are there.
    pub env_refs: Vec<PathBuf>,
    /// What every output must hide of this file: the values the secret
    /// rules found (and, in a spec, every credential value), searched for
    /// in every printed line and message; a line scan where nothing parsed.
    pub masker: Arc<Masker>,
}

impl FileResult {
    /// Unsuppressed findings at or above the failure threshold.
    pub fn failing(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.suppressed.is_none() && f.severity >= self.fail_on)
    }

    /// A text about this file as every output format may print it: masked
    /// by the file's masker, then sanitized (messages echo input).
    pub fn shown<'a>(&self, s: &'a str) -> std::borrow::Cow<'a, str> {
        // One line: a finding's message quotes input (a service name can
        // hold a line break), and a line break would forge report lines.
        match self.masker.text(s) {
            std::borrow::Cow::Borrowed(b) => hacompile_boundary::text::line(b),
            std::borrow::Cow::Owned(o) => std::borrow::Cow::Owned(hacompile_boundary::text::line(&o).into_owned()),
        }
    }

    /// The file's name as printed: one line, sanitized.
    pub fn shown_name(&self) -> std::borrow::Cow<'_, str> {
        hacompile_boundary::text::line(&self.name)
    }
}

/// Options of a run that are not per-directory configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub lock: Option<LockFile>,
    /// A config given with `--config`, used for every file.
    pub config: Option<Config>,
    /// `--no-inline-suppressions`.
    pub forbid_inline: bool,
    /// `--fail-on`, overriding the config.
    pub fail_on: Option<Severity>,
    /// `--target`, over the config (`auto`: detected per file whatever the config says).
    pub target: Option<TargetSetting>,
}

/// Tells a file's kind from its name, and for TOML/unknown names its content.
pub fn classify(name: &str, text: &str) -> Option<FileKind> {
    let base = Path::new(name).file_name().map_or(name.to_owned(), |n| n.to_string_lossy().to_ascii_lowercase());
    if base.ends_with(".cfg") && base.contains("haproxy") {
        return Some(FileKind::Haproxy);
    }
    if base.ends_with(".toml") {
        return spec::looks_like_spec(text).then_some(FileKind::Spec);
    }
    if is_env_name(&base) {
        return Some(FileKind::Env);
    }
    if base.ends_with(".yml") || base.ends_with(".yaml") {
        if !has_top_level_services(text) && looks_like_patroni(text) {
            return Some(FileKind::Patroni);
        }
        return Some(FileKind::Stack);
    }
    // stdin or an unknown name: by content.
    if spec::looks_like_spec(text) {
        Some(FileKind::Spec)
    } else if !has_top_level_services(text) && looks_like_patroni(text) {
        Some(FileKind::Patroni)
    } else if text.lines().any(|l| l.starts_with("listen ") || l.starts_with("backend ")) {
        Some(FileKind::Haproxy)
    } else {
        Some(FileKind::Stack)
    }
}

/// `.env`, `app.env`, `.env.production`: an env file by its (lowercase) name.
fn is_env_name(base: &str) -> bool {
    base == ".env" || base.ends_with(".env") || base.starts_with(".env.")
}

/// Is this a file name the directory walk picks up?
pub fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()) else { return false };
    let yaml = name.ends_with(".yml") || name.ends_with(".yaml");
    (yaml && (name.contains("stack") || name.starts_with("compose") || name.starts_with("docker-compose")))
        || (name.ends_with(".toml") && name != "cargo.toml" && name != ".hacompile.toml" && name != "pyproject.toml")
        || (name.ends_with(".cfg") && name.contains("haproxy"))
}

/// Is this a YAML file by its name (the walk reads the head of one whose
/// name does not say it is a stack, to see whether it is one)?
pub fn is_yaml(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.ends_with(".yml") || name.ends_with(".yaml")
}

/// The top-level keys of a YAML head, by a line scan (a block mapping's
/// keys start in column 0).
fn top_level_keys(head: &str) -> impl Iterator<Item = &str> {
    let head = head.strip_prefix('\u{feff}').unwrap_or(head);
    head.split('\n').filter_map(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t', '#', '-']) {
            return None;
        }
        let (key, _) = line.split_once(':')?;
        Some(key.trim().trim_matches(['"', '\'']))
    })
}

/// Does this head of a YAML file look like a Patroni configuration: a
/// top-level `bootstrap:` and one of `scope:`, `restapi:`, `postgresql:` or
/// a DCS section; or a member's file without `bootstrap:` (a node's own
/// file, or one of a configuration directory): `scope:` with `restapi:` or
/// `postgresql:`?
pub fn looks_like_patroni(head: &str) -> bool {
    let (mut bootstrap, mut other, mut scope, mut member) = (false, false, false, false);
    for key in top_level_keys(head) {
        bootstrap |= key == "bootstrap";
        scope |= key == "scope";
        member |= matches!(key, "restapi" | "postgresql");
        other |= matches!(
            key,
            "scope" | "restapi" | "postgresql" | "etcd" | "etcd3" | "consul" | "zookeeper" | "kubernetes" | "raft"
        );
    }
    (bootstrap && other) || (scope && member)
}

/// Does this head of a YAML file have a top-level `services:` mapping, as
/// every stack and compose file has? A line scan, so a head cut anywhere
/// (the first [`limits::SNIFF`] bytes) is still judged.
pub fn has_top_level_services(head: &str) -> bool {
    let head = head.strip_prefix('\u{feff}').unwrap_or(head);
    head.split('\n').any(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let rest = ["services", "\"services\"", "'services'"].iter().find_map(|k| line.strip_prefix(k));
        let Some(rest) = rest.and_then(|r| r.trim_start_matches([' ', '\t']).strip_prefix(':')) else { return false };
        let rest = rest.trim_start_matches([' ', '\t']);
        // A block mapping below, a flow mapping, or one with an anchor or tag.
        rest.is_empty() || rest.starts_with(['#', '{', '&', '!'])
    })
}

/// The decoded values of the scalars at the secrets found (`masked`: every
/// secret rule's hits), where they differ from the text written:
/// `"Zq9x\x53ECRETq"` is searched for as `Zq9xSECRETq` too.
fn decoded_secrets(text: &str, doc: &yaml::Doc<'_>, masked: &[std::ops::Range<usize>]) -> Vec<String> {
    let mut spans = masked.to_vec();
    if spans.is_empty() {
        return Vec::new();
    }
    spans.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    for node in &doc.nodes {
        let yaml::Kind::Scalar { value, .. } = &node.kind else { continue };
        // A finding inside this scalar (the whole value, or a password in a URL).
        let first = spans.partition_point(|r| r.start < node.span.start);
        let hit = spans.get(first).is_some_and(|r| r.start < node.span.end);
        // Escapes (`\x53`, `''`) or folded lines: the value is not the text.
        let written = text.get(node.span.clone()).unwrap_or("");
        let escaped = written.contains(['\\', '\n']) || written.contains("''");
        if hit && escaped && !out.iter().any(|v| v == value.as_ref()) {
            out.push(value.to_string());
        }
    }
    out
}

/// A top-level key of a file without `services:` that is a service of the
/// legacy (version 1) compose format: a mapping with `image` or `build`.
/// Its key node and its name.
fn legacy_service<'d>(doc: &'d yaml::Doc<'_>, root: yaml::NodeId) -> Option<(yaml::NodeId, &'d str)> {
    // The compose specification's own top-level keys hold no services (a
    // volume may be named `build`).
    const TOP_LEVEL: &[&str] = &["version", "name", "include", "volumes", "networks", "configs", "secrets", "models"];
    doc.entries(root).into_iter().find_map(|(k, v)| {
        let name = doc.scalar(k)?;
        let service = !name.starts_with("x-")
            && !TOP_LEVEL.contains(&name)
            && doc.is_map(v)
            && (doc.get(v, "image").is_some() || doc.get(v, "build").is_some());
        service.then_some((k, name))
    })
}

fn input_error(
    name: &str,
    kind: FileKind,
    source: Option<Source>,
    span: std::ops::Range<usize>,
    message: String,
    help: &str,
) -> FileResult {
    let rule = rules::find(rules::UNREADABLE).expect("HC001 is registered");
    let (line, column) = source.as_ref().map_or((1, 1), |s| s.line_col(span.start));
    let (end_line, end_column) = source.as_ref().map_or((1, 1), |s| s.line_col(span.end));
    FileResult {
        name: name.to_owned(),
        kind,
        findings: vec![Finding {
            code: rule.code,
            rule: rule.name,
            severity: rule.severity,
            file: name.to_owned(),
            span,
            line,
            column,
            end_line,
            end_column,
            message,
            help: help.to_owned(),
            suppressed: None,
        }],
        masker: Arc::new(source.as_ref().map_or_else(Masker::default, |s| Masker::scanning(&s.text, Vec::new()))),
        source,
        input_error: true,
        fail_on: Severity::Error,
        haproxy_refs: Vec::new(),
        env_refs: Vec::new(),
    }
}

/// The most bytes read of a file of this kind.
fn limit_of(kind: FileKind) -> u64 {
    match kind {
        FileKind::Stack => limits::STACK,
        FileKind::Spec => limits::SPEC,
        FileKind::Haproxy => limits::HAPROXY,
        FileKind::Patroni => limits::STACK,
        FileKind::Env => limits::ENV_FILE,
        FileKind::Lock => limits::LOCK,
        FileKind::Config => limits::CONFIG,
    }
}

/// The most bytes read of a file before its content is seen: an
/// haproxy.cfg's limit for its name, else a stack's (the largest; a spec's
/// own limit is checked once its content says it is one, so a large TOML
/// file that is not a spec is still skipped, not refused).
fn read_limit(path: &Path) -> u64 {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(".cfg") && name.contains("haproxy") { limits::HAPROXY } else { limits::STACK }
}

/// An input error for a file the bounded reader refused.
fn unreadable(name: &str, kind: FileKind, e: &ReadError) -> FileResult {
    let help = match e {
        ReadError::NotRegular(_) => "lint regular files (a FIFO or a device would block or never end)",
        ReadError::TooLarge { .. } => "lint smaller files; a file this large is not a hand-written one",
        ReadError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => "check its permissions",
        ReadError::Io(_) => "check the path",
        ReadError::Outside { .. } => "lint the file the link points to by its own path, if it is yours",
    };
    let message =
        if e.is_not_found() { "the file does not exist".to_owned() } else { format!("cannot read the file: {e}") };
    input_error(name, kind, None, 0..0, message, help)
}

/// Lints one file's bytes. `path` (when on disk) locates the stack's
/// directory for `file:` references; `lock` is the lock to compare digests
/// with (given, or the one beside a spec).
pub fn lint_file(
    name: &str,
    path: Option<&Path>,
    bytes: Vec<u8>,
    kind: FileKind,
    config: &Config,
    options: &Options,
    lock: Option<&LockFile>,
) -> FileResult {
    let limit = limit_of(kind);
    if bytes.len() as u64 > limit {
        return unreadable(name, kind, &ReadError::TooLarge { limit });
    }
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return input_error(
            name,
            kind,
            None,
            0..0,
            "the file is binary (it contains NUL bytes)".into(),
            "lint text files only",
        );
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let shown = Source::new(name, String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned());
            let (line, col) = shown.line_col(valid);
            return input_error(
                name,
                kind,
                Some(shown),
                valid..valid,
                format!("the file is not UTF-8: invalid byte at line {line}, column {col}"),
                "save the file as UTF-8",
            );
        }
    };
    let src = Source::new(name, text);
    let parsed = suppress::parse(&src, |c| rules::find(c).is_some());
    let reporting = Reporting {
        src: &src,
        config,
        suppressions: &parsed.suppressions,
        inline_allowed: config.allow_inline_suppressions && !options.forbid_inline,
    };
    let mut findings: Vec<Finding> = Vec::new();
    // Hits of several rules at once (spec diagnostics).
    let mut hits: Vec<(&'static rules::Rule, Hit)> = Vec::new();
    let mut haproxy_refs = Vec::new();
    let mut env_refs = Vec::new();
    // What the secret rules a configuration turned off would have found:
    // masked all the same (turning HC101 off must not print passwords).
    let mut masked_only: Vec<std::ops::Range<usize>> = Vec::new();
    // A secret written with escapes (`"Zq9x\x53ECRETq"`): its decoded value,
    // searched for too (it may be written plainly elsewhere).
    let mut decoded: Vec<String> = Vec::new();
    let off_secret_rule = |rule: &rules::Rule| rule.family == Family::Secrets && config.severity(rule).is_none();
    let dir = path.and_then(Path::parent).map(Path::to_path_buf);
    match kind {
        FileKind::Stack => {
            let doc = match yaml::Doc::parse(&src) {
                Ok(d) => d,
                Err(e) => return input_error(name, kind, Some(src), e.span, e.message, "fix the YAML at this place"),
            };
            let Some(root) = doc.root.filter(|r| doc.is_map(*r)) else {
                return input_error(
                    name,
                    kind,
                    Some(src),
                    0..0,
                    "the file is not a YAML mapping (a stack file has `services:`)".into(),
                    "is this a stack or compose file?",
                );
            };
            if doc.get(root, "services").is_none()
                && let Some((key, service)) = legacy_service(&doc, root)
            {
                let (span, service) = (doc.span(key), service.to_owned());
                // No rule read it, so no rule found its secrets: every value
                // is masked in the excerpt.
                let values = doc
                    .nodes
                    .iter()
                    .flat_map(|n| match &n.kind {
                        yaml::Kind::Map(pairs, _) => pairs.iter().map(|(_, v)| *v).collect(),
                        yaml::Kind::Seq(items) => items.clone(),
                        _ => Vec::new(),
                    })
                    .filter(|v| matches!(doc.node(*v).kind, yaml::Kind::Scalar { .. }))
                    .map(|v| doc.span(v))
                    .collect::<Vec<_>>();
                let mut refused = input_error(
                    name,
                    kind,
                    Some(src),
                    span,
                    format!(
                        "legacy compose format (version 1): service `{service}` is at the top level, not under `services:`; neither `docker stack deploy` nor Compose v2 reads this file, and nothing in it was checked"
                    ),
                    "move the services under a top-level `services:` (and `links`/`volumes_from` to networks and named volumes)",
                );
                if let Some(src) = &refused.source {
                    refused.masker = Arc::new(Masker::scanning(&src.text, values));
                }
                return refused;
            }
            let cx = context::StackCx::new(&src, &doc, root, lock, dir.clone());
            let forced = match options.target {
                Some(given) => given.forced(),
                None => config.target_for(path),
            };
            let target = forced.unwrap_or_else(|| {
                Target::detect(name, cx.services().iter().any(|s| doc.key_of(s.node, "deploy").is_some()))
            });
            let active: Vec<(&'static rules::Rule, rules::StackCheck)> = RULES
                .iter()
                .filter(|rule| config.severity(rule).is_some() && rule.applies_to(target))
                .filter_map(|rule| match rule.check {
                    rules::Check::Stack(f) | rules::Check::StackAndSpec(f, _) => Some((rule, f)),
                    _ => None,
                })
                .collect();
            // Rules are independent readers of one document: split them over
            // two threads (the machines this runs on have at least two cores).
            // Interleaved, so the heavier secret and image rules are shared.
            let (first, second): (Vec<_>, Vec<_>) = active.iter().enumerate().partition(|(i, _)| i % 2 == 0);
            let first: Vec<_> = first.into_iter().map(|(_, r)| *r).collect();
            let second: Vec<_> = second.into_iter().map(|(_, r)| *r).collect();
            let run = |part: &[(&'static rules::Rule, rules::StackCheck)]| {
                let mut found = Vec::new();
                // Every secret found is masked, the ones past the cap on
                // reported findings too.
                let mut spans = Vec::new();
                for (rule, check) in part {
                    let mut out = Vec::new();
                    check(&cx, &mut out);
                    if rule.family == Family::Secrets {
                        spans.extend(out.iter().map(|h| h.span.clone()));
                    }
                    // Duplicate keys past the parser's record are counted, not reported.
                    let more: &[usize] = if rule.code == rules::DUPLICATE_KEY { &doc.more_duplicates } else { &[] };
                    found.extend(reporting.findings(rule, out, more));
                }
                (found, spans)
            };
            let ((a, spans_a), (b, spans_b)) = std::thread::scope(|scope| {
                let other = scope.spawn(|| run(&second));
                let mine = run(&first);
                (mine, other.join().expect("a rule panicked"))
            });
            findings.extend(a);
            findings.extend(b);
            masked_only.extend(spans_a);
            masked_only.extend(spans_b);
            for rule in RULES.iter().filter(|r| off_secret_rule(r)) {
                if let rules::Check::Stack(f) | rules::Check::StackAndSpec(f, _) = rule.check {
                    let mut out = Vec::new();
                    f(&cx, &mut out);
                    masked_only.extend(out.into_iter().map(|h| h.span));
                }
            }
            decoded = decoded_secrets(&src.text, &doc, &masked_only);
            haproxy_refs = haproxy_configs(&cx);
            env_refs = env_files(&cx);
        }
        FileKind::Env => {
            for (code, hit) in env_secrets(&src.text) {
                let rule = rules::find(code).expect("the env file's secret rules are registered");
                if config.severity(rule).is_some() {
                    hits.push((rule, hit));
                } else {
                    masked_only.push(hit.span);
                }
            }
        }
        FileKind::Haproxy => {
            for rule in RULES {
                let on = config.severity(rule).is_some();
                if let rules::Check::Haproxy(f) = rule.check
                    && (on || off_secret_rule(rule))
                {
                    let mut out = Vec::new();
                    f(&src, &mut out);
                    if rule.family == Family::Secrets {
                        masked_only.extend(out.iter().map(|h| h.span.clone()));
                    }
                    if on {
                        findings.extend(reporting.findings(rule, out, &[]));
                    }
                }
            }
        }
        FileKind::Patroni => {
            let doc = match yaml::Doc::parse(&src) {
                Ok(d) => d,
                Err(e) => return input_error(name, kind, Some(src), e.span, e.message, "fix the YAML at this place"),
            };
            if let Some(root) = doc.root.filter(|r| doc.is_map(*r)) {
                for rule in RULES {
                    let on = config.severity(rule).is_some();
                    if let rules::Check::Patroni(f) = rule.check
                        && (on || off_secret_rule(rule))
                    {
                        let mut out = Vec::new();
                        f(&doc, root, &mut out);
                        if rule.family == Family::Secrets {
                            masked_only.extend(out.iter().map(|h| h.span.clone()));
                        }
                        if on {
                            findings.extend(reporting.findings(rule, out, &[]));
                        }
                    }
                }
            }
            decoded = decoded_secrets(&src.text, &doc, &masked_only);
        }
        // Side files are only read, never linted.
        FileKind::Lock | FileKind::Config => {}
        FileKind::Spec => {
            let spec_src = hacompile_spec::SourceFile::new(name, src.text.clone());
            match hacompile_spec::load(&spec_src) {
                Err(errors) => {
                    for d in errors.diagnostics {
                        let code = match d.code {
                            "spec::literal-credential" => rules::PLAINTEXT_SECRET,
                            "spec::syntax" | "spec::not-utf8" | "spec::too-large" | "spec::io" => {
                                let at = src.offset(d.line(), d.column() - 1);
                                return input_error(
                                    name,
                                    kind,
                                    Some(src),
                                    at..at,
                                    d.message.clone(),
                                    d.help.as_deref().unwrap_or(""),
                                );
                            }
                            _ => rules::INVALID_SPEC,
                        };
                        let rule = rules::find(code).expect("registered");
                        let at = d.span.start;
                        let end = d.span.end.max(at);
                        hits.push((rule, Hit { span: at..end, message: d.message.clone(), help: d.help.clone() }));
                    }
                }
                Ok(valid) => {
                    let cx = spec::SpecCx { src: &spec_src, spec: &valid, lock };
                    for rule in RULES {
                        if let rules::Check::Spec(f) | rules::Check::StackAndSpec(_, f) = rule.check
                            && config.severity(rule).is_some()
                        {
                            let mut out = Vec::new();
                            f(&cx, &mut out);
                            findings.extend(reporting.findings(rule, out, &[]));
                        }
                    }
                }
            }
        }
    }
    // Suppression comments that are themselves problems.
    if reporting.inline_allowed {
        let rule = rules::find(rules::SUPPRESSION_WITHOUT_REASON).expect("registered");
        hits.extend(parsed.problems.iter().map(|p| {
            let hit = Hit::new(p.span.clone(), p.message.clone());
            (rule, hit.help("write `# hacompile-ignore CODE: why this is acceptable`"))
        }));
    } else {
        let rule = rules::find(rules::INLINE_SUPPRESSION_FORBIDDEN).expect("registered");
        let spans =
            parsed.suppressions.iter().map(|s| s.span.clone()).chain(parsed.problems.iter().map(|p| p.span.clone()));
        hits.extend(spans.map(|span| {
            let hit = Hit::new(span, "inline suppressions are not allowed here");
            (rule, hit.help("fix the finding, or turn the rule off for this path in .hacompile.toml"))
        }));
    }
    // Grouped by rule (a stable sort keeps each rule's order).
    masked_only.extend(hits.iter().filter(|(r, _)| r.family == Family::Secrets).map(|(_, h)| h.span.clone()));
    hits.sort_by_key(|(rule, _)| rule.code);
    let mut hits = hits.into_iter().peekable();
    while let Some((rule, first)) = hits.next() {
        let mut group = vec![first];
        while let Some((_, hit)) = hits.next_if(|(r, _)| r.code == rule.code) {
            group.push(hit);
        }
        findings.extend(reporting.findings(rule, group, &[]));
    }
    findings.sort_by(|a, b| (a.span.start, a.code).cmp(&(b.span.start, b.code)));
    let fail_on = options.fail_on.unwrap_or(config.fail_on);
    let mut secrets: Vec<std::ops::Range<usize>> =
        findings.iter().filter(|f| f.code.starts_with("HC1")).map(|f| f.span.clone()).collect();
    if kind == FileKind::Spec {
        let values = hacompile_spec::credential_values(&src.text);
        decoded.extend(hacompile_spec::credential_decoded(&src.text, &values));
        secrets.extend(values);
    }
    secrets.extend(masked_only);
    // Every line is scanned too, and what the scan finds is searched for on
    // every printed line: a credential no rule reads (a service-level `x-`
    // key, an env file's odd line) may be repeated where no scan would
    // recognise it.
    let masker = Arc::new(Masker::scanning_with(&src.text, secrets, decoded));
    FileResult {
        name: name.to_owned(),
        kind,
        source: Some(src),
        findings,
        input_error: false,
        fail_on,
        haproxy_refs,
        env_refs,
        masker,
    }
}

/// Turns one rule's hits into findings as soon as the rule returns:
/// duplicates dropped, severity from config, suppressions applied, and at
/// most [`MAX_FINDINGS_PER_RULE`] kept (the rest counted in one more). A
/// rule that reports a million places then costs memory for its own output
/// only, never for copies of it.
struct Reporting<'r> {
    src: &'r Source,
    config: &'r Config,
    suppressions: &'r [suppress::Suppression],
    inline_allowed: bool,
}

impl Reporting<'_> {
    /// `more` are the byte offsets of further findings of the rule, after
    /// all of `hits`, that were counted instead of made (duplicate keys).
    fn findings(&self, rule: &'static rules::Rule, mut hits: Vec<Hit>, more: &[usize]) -> Vec<Finding> {
        let Some(severity) = self.config.severity(rule) else { return Vec::new() };
        // One finding per place: a value merged into several services
        // through an anchor is reported once, where it is written. The sort
        // is stable, so the first hit at a place is the one kept.
        hits.sort_by_key(|h| (h.span.start, h.span.end));
        hits.dedup_by(|b, a| a.span == b.span);
        let suppressible =
            self.inline_allowed && self.suppressions.iter().any(|s| s.codes.iter().any(|c| c == rule.code));
        let covering = if suppressible {
            let lines: Vec<usize> =
                hits.iter().map(|h| h.span.start).chain(more.iter().copied()).map(|o| self.src.line_of(o)).collect();
            suppressed_by(self.suppressions, rule.code, &lines)
        } else {
            Vec::new()
        };
        let reason = |i: usize| covering.get(i).copied().flatten().map(|s| self.suppressions[s].reason.clone());
        let make = |hit: Hit, suppressed: Option<String>| {
            let (line, column) = self.src.line_col(hit.span.start);
            let (end_line, end_column) = self.src.line_col(hit.span.end);
            Finding {
                code: rule.code,
                rule: rule.name,
                severity,
                file: self.src.name.clone(),
                span: hit.span,
                line,
                column,
                end_line,
                end_column,
                message: hit.message,
                help: hit.help.unwrap_or_else(|| rule.summary.to_owned()),
                suppressed,
            }
        };
        let total = hits.len() + more.len();
        let all_left_out_suppressed =
            (MAX_FINDINGS_PER_RULE..total).all(|i| covering.get(i).copied().flatten().is_some());
        let mut hits = hits.into_iter();
        let mut findings: Vec<Finding> =
            hits.by_ref().take(MAX_FINDINGS_PER_RULE).enumerate().map(|(i, hit)| make(hit, reason(i))).collect();
        if total > MAX_FINDINGS_PER_RULE {
            let left_out = total - MAX_FINDINGS_PER_RULE;
            let at = hits.next().map_or_else(|| more[0]..more[0], |h| h.span);
            let note = Hit::new(
                at,
                format!(
                    "{left_out} more findings of {} left out (at most {MAX_FINDINGS_PER_RULE} of one rule are reported per file; this is the first of them)",
                    rule.code
                ),
            )
            .help("fix the findings shown and lint again");
            let suppressed = all_left_out_suppressed.then(|| "every finding left out is suppressed inline".to_owned());
            findings.push(make(note, suppressed));
        }
        findings
    }
}

/// For each line, the first suppression in the order written that covers
/// it for `code`. One sweep over lines (in order) and suppressions, so a
/// file with many of both is not quadratic.
fn suppressed_by(suppressions: &[suppress::Suppression], code: &str, lines: &[usize]) -> Vec<Option<usize>> {
    let mut starts: Vec<usize> =
        (0..suppressions.len()).filter(|&i| suppressions[i].codes.iter().any(|c| c == code)).collect();
    starts.sort_by_key(|&i| suppressions[i].lines.0);
    let mut starts = starts.into_iter().peekable();
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| lines[i]);
    // Started suppressions by the order they are written; one that ended
    // before the current line has ended for every later line too.
    let mut active = BTreeSet::new();
    let mut out = vec![None; lines.len()];
    for i in order {
        let line = lines[i];
        while let Some(s) = starts.next_if(|&s| suppressions[s].lines.0 <= line) {
            active.insert(s);
        }
        while let Some(&first) = active.first() {
            if suppressions[first].lines.1 >= line {
                out[i] = Some(first);
                break;
            }
            active.remove(&first);
        }
    }
    out
}

/// haproxy.cfg files and Patroni configurations a stack names under
/// top-level `configs`. One that is not there is skipped (it may be
/// generated later); anything else that is there is read, so a link to a
/// device or a FIFO is refused, not skipped. A YAML config is followed when
/// its head (read bounded) looks like a Patroni configuration.
fn haproxy_configs(cx: &context::StackCx<'_>) -> Vec<PathBuf> {
    let (Some(dir), Some(configs)) = (&cx.dir, cx.at(cx.root, &["configs"])) else { return Vec::new() };
    cx.doc
        .entries(configs)
        .into_iter()
        .filter_map(|(_, v)| cx.str_at(v, &["file"]))
        .filter_map(|f| {
            let lower = f.to_ascii_lowercase();
            let path = dir.join(f);
            path.symlink_metadata().ok()?;
            // The host's files are not the stack's: only files in its tree.
            if !read::within_tree_of(dir, &path) {
                return None;
            }
            if lower.contains("haproxy") && f.ends_with(".cfg") {
                return Some(path);
            }
            let yaml = lower.ends_with(".yml") || lower.ends_with(".yaml");
            let head = if yaml { read::read_head(&path, limits::SNIFF).ok()? } else { return None };
            looks_like_patroni(&String::from_utf8_lossy(&head)).then_some(path)
        })
        .collect()
}

/// Env files the services name in `env_file` (a path, a list of paths, or
/// the long form's `path:`), in the stack's tree. One that is not there is no
/// finding: env files are often written at deploy time and kept out of the
/// repository, and `docker stack deploy` itself refuses a missing one.
/// Paths with `${...}` are not followed.
fn env_files(cx: &context::StackCx<'_>) -> Vec<PathBuf> {
    let Some(dir) = &cx.dir else { return Vec::new() };
    let mut out = Vec::new();
    // Each file once, in the order first named; a set, so a stack of many
    // services naming many files is not quadratic.
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    for svc in cx.services() {
        let Some(value) = cx.at(svc.node, &["env_file"]) else { continue };
        let items: Vec<_> = cx.doc.seq(value).map_or_else(|| vec![value], <[_]>::to_vec);
        for item in items {
            let Some(file) = cx.doc.scalar(item).or_else(|| cx.str_at(item, &["path"])) else { continue };
            if file.is_empty() || file.contains('$') {
                continue;
            }
            // `./env/app.env` beside `docker-stack.yml` is `env/app.env`, as the walk would name it.
            let path: PathBuf =
                dir.join(file).components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
            // Only files in the stack's tree: an absolute or `../..` path
            // names a file of the machine that deploys, not one to read here.
            if !seen.contains(&path) && path.symlink_metadata().is_ok() && read::within_tree_of(dir, &path) {
                seen.insert(path.clone());
                out.push(path);
            }
        }
    }
    out
}

/// Secrets in an env file's `KEY=VALUE` lines (an `export ` prefix
/// allowed, `#` lines and blank lines skipped, a value in matching quotes
/// read without them): a literal value of a credential-shaped key (HC101),
/// else a URL with a password (HC102), else a provider token (HC105); at
/// the value's place in the env file.
fn env_secrets(text: &str) -> Vec<(&'static str, Hit)> {
    let mut hits = Vec::new();
    let mut at = 0;
    for raw in text.split_inclusive('\n') {
        let line_start = at;
        at += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let body = body.strip_prefix("export ").map_or(body, str::trim_start);
        let Some((key, value)) = body.split_once('=') else { continue };
        let key = key.trim();
        let value_start = line_start + (line.len() - value.len());
        let trimmed = value.trim();
        let lead = value.len() - value.trim_start().len();
        // A quoted value is the text inside its quotes.
        let (inner, offset) = match trimmed.as_bytes() {
            [q @ (b'"' | b'\''), .., last] if q == last && trimmed.len() >= 2 => (&trimmed[1..trimmed.len() - 1], 1),
            _ => (trimmed, 0),
        };
        let start = value_start + lead + offset;
        // An env file is read as it is: docker interpolates nothing in it.
        if secrets::is_credential_key(key) && secrets::is_literal_secret(inner) {
            hits.push((
                rules::PLAINTEXT_SECRET,
                Hit::new(start..start + inner.len(), format!("`{key}` in the env file has a literal value")).help(
                    "store it in a Docker secret (`docker secret create`), mount it with `secrets:`, and set `KEY_FILE=/run/secrets/<name>` if the image reads `_FILE` variables",
                ),
            ));
        } else if let Some(pw) = secrets::url_password(inner)
            && let Some(at) = inner.find("://").and_then(|s| inner[s..].find(pw.as_str()).map(|i| s + i))
        {
            hits.push((
                "HC102",
                Hit::new(
                    start + at..start + at + pw.len(),
                    format!("the URL in `{key}` in the env file carries a literal password"),
                )
                .help("keep the password in a Docker secret and pass it separately (a `_FILE` variable or a passfile)"),
            ));
        } else if let Some(pw) = secrets::conninfo_password(inner)
            && let Some(at) = inner.find(pw.as_str())
        {
            hits.push((
                "HC102",
                Hit::new(
                    start + at..start + at + pw.len(),
                    format!("the connection string in `{key}` in the env file carries a literal password"),
                )
                .help("keep the password in a Docker secret and pass it separately (a `_FILE` variable or a passfile)"),
            ));
        } else if let Some((kind, at)) = secrets::provider_token(inner) {
            hits.push((
                "HC105",
                Hit::new(start + at.start..start + at.end, format!("`{key}` in the env file holds {kind}"))
                    .help("revoke it, then store the new one in a Docker secret"),
            ));
        }
    }
    hits
}

/// One input of a run: a path (file or directory) or stdin's bytes, read
/// by the caller with [`read::read_bounded`] (or why they could not be).
pub enum Input {
    Path(PathBuf),
    Stdin(Result<Vec<u8>, ReadError>),
}

/// A whole run's results, in a stable order. A side file that could not be
/// used (`.hacompile.toml`, the lock beside a spec) is a result of its own,
/// so every output format reports it.
pub struct Report {
    pub files: Vec<FileResult>,
    /// Files the walk found and did not lint, with why.
    pub skipped: Vec<Skipped>,
}

/// A file the directory walk found but did not lint.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub file: String,
    /// `YAML` or `TOML`, or `named` (a file named on the command line).
    pub kind: &'static str,
    pub reason: &'static str,
}

pub const NOT_A_STACK: &str = "not a stack or compose file (no top-level `services:`)";
pub const EXCLUDED: &str = "excluded by `exclude` in .hacompile.toml";
pub const NOT_A_SPEC: &str = "not a cluster spec (no `[postgres]` table)";
pub const UNREADABLE_NOT_REGULAR: &str = "not a regular file (a FIFO, a socket or a device), so not read to tell";
pub const UNREADABLE_DANGLING: &str = "a symbolic link to nothing";
pub const UNREADABLE_YAML: &str = "could not be read to tell what it is (permissions?)";

/// Skipped files counted by kind and reason, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCount {
    pub kind: &'static str,
    pub reason: &'static str,
    pub files: usize,
}

impl Report {
    /// The skipped files, counted by kind and reason.
    pub fn skipped_counts(&self) -> Vec<SkippedCount> {
        let mut counts: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry((s.kind, s.reason)).or_default() += 1;
        }
        counts.into_iter().map(|((kind, reason), files)| SkippedCount { kind, reason, files }).collect()
    }

    /// `2 YAML files skipped: not a stack or compose file (...)`, one part
    /// per reason joined by `; `, or nothing when nothing was skipped.
    pub fn skipped_note(&self) -> Option<String> {
        let parts: Vec<String> = self
            .skipped_counts()
            .iter()
            .map(|c| {
                format!("{} {} file{} skipped: {}", c.files, c.kind, if c.files == 1 { "" } else { "s" }, c.reason)
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// `3 files linted; 2 YAML files skipped: ...`.
    pub fn files_note(&self) -> String {
        let n = self.files.len();
        let linted = format!("{n} file{} linted", if n == 1 { "" } else { "s" });
        match self.skipped_note() {
            Some(s) => format!("{linted}; {s}"),
            None => linted,
        }
    }

    /// 0 clean, 1 findings at or above the threshold, 2 unreadable input.
    pub fn exit_code(&self) -> u8 {
        if self.files.iter().any(|f| f.input_error) {
            2
        } else if self.files.iter().any(|f| f.failing().next().is_some()) {
            1
        } else {
            0
        }
    }
}

/// An input error for a path the bounded reader refused; a link to nothing
/// is told apart from a path that is not there.
fn unreadable_path(path: &Path, name: &str, kind: FileKind, e: &ReadError) -> FileResult {
    if e.is_not_found() && path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return input_error(
            name,
            kind,
            None,
            0..0,
            "the file is a symbolic link to a path that does not exist".into(),
            "fix or remove the link",
        );
    }
    let mut result = unreadable(name, kind, e);
    if e.is_not_found() {
        result.findings[0].help = "name a file or directory to lint".into();
    }
    result
}

/// A discovered config's path (absolute) as the user would write it:
/// relative to the current directory when it is below it, as the paths of
/// linted files are (SARIF and GitHub map relative paths to the repository).
fn config_name(path: &Path) -> String {
    let cwd = std::env::current_dir().and_then(|d| d.canonicalize());
    cwd.ok()
        .and_then(|d| path.strip_prefix(d).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// A config file that could not be used, as a result of its own.
fn config_error(e: ConfigError) -> FileResult {
    let name = config_name(&e.path);
    let source = (!e.text.is_empty()).then(|| Source::new(name.clone(), e.text));
    input_error(&name, FileKind::Config, source, e.span, e.message, &e.help)
}

/// Where a walk error happened: the directory that could not be read, or
/// the link that loops.
fn walk_error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::Loop { child, .. } => Some(child),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => walk_error_path(err),
        ignore::Error::Partial(errs) => errs.iter().find_map(walk_error_path),
        _ => None,
    }
}

/// The candidate files below `dir`, and what could not be walked. A
/// directory the walk cannot read (no permission) or a link loop is an
/// input error: a file skipped silently is a gap in a CI gate. Links to
/// files are linted through the link (the read refuses links to devices);
/// links to directories are not followed, as in ripgrep, so a walk stays
/// inside the tree it was given.
fn walk(dir: &Path) -> (Vec<(PathBuf, Origin)>, Vec<FileResult>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for entry in ignore::WalkBuilder::new(dir).hidden(true).build() {
        match entry {
            Ok(e) => {
                if e.file_type().is_some_and(|t| t.is_dir()) {
                    continue;
                }
                if is_candidate(e.path()) {
                    files.push((e.into_path(), Origin::Named));
                } else if is_yaml(e.path()) {
                    files.push((e.into_path(), Origin::Sniffed));
                }
            }
            // Errors in ignore files (a bad glob in .gitignore) drop a
            // pattern, which only ever lints more; I/O errors and loops hide files.
            Err(e) if e.io_error().is_some() || matches!(e, ignore::Error::Loop { .. }) => {
                let at = walk_error_path(&e).map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
                let cause = match e.io_error() {
                    Some(io) => io.to_string(),
                    None => "a symbolic link that loops back to a directory above it".to_owned(),
                };
                errors.push(input_error(
                    &at.display().to_string(),
                    FileKind::Stack,
                    None,
                    0..0,
                    format!("cannot read this part of the tree: {cause}"),
                    "check its permissions, or exclude it in .hacompile.toml",
                ));
            }
            Err(_) => {}
        }
    }
    files.sort();
    (files, errors)
}

/// How a file came to be linted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    /// Named on the command line: linted whatever it is.
    Explicit,
    /// Found by the walk by its name.
    Named,
    /// A YAML file the walk found whose name does not say what it is:
    /// linted when its head has a top-level `services:`.
    Sniffed,
    /// An env file a linted stack names.
    EnvFile,
}

/// Lints every input: directories are walked for stack, compose, spec and
/// haproxy files; haproxy.cfg files that stacks name are linted too. Every
/// file (and side file) is read with the bounded reader.
pub fn run(inputs: Vec<Input>, options: &Options) -> Report {
    let mut configs: BTreeMap<PathBuf, Option<Config>> = BTreeMap::new();
    let mut locks: BTreeMap<PathBuf, Option<LockFile>> = BTreeMap::new();
    let mut results = Vec::new();
    let mut config_for = |dir: &Path, results: &mut Vec<FileResult>| -> Config {
        if let Some(c) = &options.config {
            return c.clone();
        }
        let Some(path) = Config::discover(dir) else { return Config::default() };
        if let Some(known) = configs.get(&path) {
            return known.clone().unwrap_or_default();
        }
        let name = config_name(&path);
        let parsed = match read::read_text(&path, limits::CONFIG) {
            Ok(text) => Config::parse(&path, &text).map_err(config_error),
            Err(e) => Err(unreadable_path(&path, &name, FileKind::Config, &e)),
        };
        let config = parsed.map_err(|e| results.push(e)).ok();
        configs.insert(path, config.clone());
        config.unwrap_or_default()
    };
    let mut files: Vec<(PathBuf, Origin)> = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        match input {
            Input::Stdin(Err(e)) => results.push(unreadable("-", FileKind::Stack, &e)),
            Input::Stdin(Ok(bytes)) => {
                let config = config_for(Path::new("."), &mut results);
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]).into_owned();
                let kind = classify("-", &text).unwrap_or(FileKind::Stack);
                results.push(lint_file("-", None, bytes, kind, &config, options, options.lock.as_ref()));
            }
            Input::Path(p) if p.is_dir() => {
                let (found, errors) = walk(&p);
                files.extend(found);
                results.extend(errors);
            }
            Input::Path(p) => files.push((p, Origin::Explicit)),
        }
    }
    let mut done: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue = files;
    let mut i = 0;
    while i < queue.len() {
        let (path, origin) = queue[i].clone();
        i += 1;
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        if !done.insert(key) {
            continue;
        }
        let name = path.display().to_string();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let config = config_for(dir, &mut results);
        if config.is_excluded(&path) {
            // Named on the command line: say so, not a silent pass.
            if origin == Origin::Explicit {
                skipped.push(Skipped { file: name, kind: "named", reason: EXCLUDED });
            }
            continue;
        }
        if origin == Origin::Sniffed {
            // Only the head is read: a large YAML file that is not a stack
            // (a data dump) is skipped, not refused as too large.
            match read::read_head(&path, limits::SNIFF) {
                Ok(head) if has_top_level_services(&String::from_utf8_lossy(&head)) => {}
                Ok(head) if looks_like_patroni(&String::from_utf8_lossy(&head)) => {}
                Ok(_) => {
                    skipped.push(Skipped { file: name, kind: "YAML", reason: NOT_A_STACK });
                    continue;
                }
                // Nothing names it a stack, and what it is cannot be told:
                // skipped, and the summary says so and why.
                Err(e) => {
                    let reason = match &e {
                        ReadError::NotRegular(_) => UNREADABLE_NOT_REGULAR,
                        e if e.is_not_found() => UNREADABLE_DANGLING,
                        _ => UNREADABLE_YAML,
                    };
                    skipped.push(Skipped { file: name, kind: "YAML", reason });
                    continue;
                }
            }
        }
        let limit = if origin == Origin::EnvFile { limits::ENV_FILE } else { read_limit(&path) };
        let bytes = match read::read_file(&path, limit) {
            Ok(b) => b,
            Err(e) => {
                results.push(unreadable_path(&path, &name, FileKind::Stack, &e));
                continue;
            }
        };
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]).into_owned();
        let kind = if origin == Origin::EnvFile { Some(FileKind::Env) } else { classify(&name, &head) };
        let Some(kind) = kind else {
            if origin != Origin::Explicit {
                skipped.push(Skipped { file: name, kind: "TOML", reason: NOT_A_SPEC });
            } else {
                results.push(input_error(
                    &name,
                    FileKind::Spec,
                    None,
                    0..0,
                    "this TOML file is not a cluster spec (no [postgres] table)".into(),
                    "lint stack/compose YAML, cluster specs or haproxy.cfg files",
                ));
            }
            continue;
        };
        // A spec is compared with the lock beside it, unless one was given.
        let lock = match (&options.lock, kind) {
            (Some(given), _) => Some(given),
            (None, FileKind::Spec) => {
                let lock_path = path.with_file_name(hacompile_image::LOCK_FILE_NAME);
                if !locks.contains_key(&lock_path) {
                    let read = read_lock(&lock_path);
                    let lock = read.map_err(|e| results.push(*e)).ok().flatten();
                    locks.insert(lock_path.clone(), lock);
                }
                locks.get(&lock_path).and_then(Option::as_ref)
            }
            (None, _) => None,
        };
        let result = lint_file(&name, Some(&path), bytes, kind, &config, options, lock);
        queue.extend(result.haproxy_refs.iter().map(|p| (p.clone(), Origin::Named)));
        queue.extend(result.env_refs.iter().map(|p| (p.clone(), Origin::EnvFile)));
        results.push(result);
    }
    Report { files: results, skipped }
}

/// The lock beside a spec: none when there is none; an input error of the
/// lock when it cannot be read or parsed.
fn read_lock(path: &Path) -> Result<Option<LockFile>, Box<FileResult>> {
    let name = path.display().to_string();
    let text = match read::read_text(path, limits::LOCK) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(Box::new(unreadable_path(path, &name, FileKind::Lock, &e))),
    };
    LockFile::parse(&text).map(Some).map_err(|e| {
        let span = match &e {
            hacompile_image::LockError::Syntax { span: Some(span), .. } => span.clone(),
            _ => 0..0,
        };
        let source = Source::new(name.clone(), text);
        Box::new(input_error(
            &name,
            FileKind::Lock,
            Some(source),
            span,
            e.to_string(),
            "regenerate it with `hacompile lock SPEC`, or restore it from version control",
        ))
    })
}

/// An `image:` value of a stack file: its text and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSite {
    pub service: String,
    pub text: String,
    /// The bytes to replace: the value itself (inside quotes, when quoted),
    /// or with `whole_scalar` the whole quoted scalar, quotes included.
    pub span: std::ops::Range<usize>,
    /// The value is not in the file verbatim (written with escapes such as
    /// `\u0065`, or over two lines), so a rewrite replaces the whole scalar
    /// with a plain double-quoted one.
    pub whole_scalar: bool,
}

/// The literal `image:` values of a stack/compose file (not `${VAR}` ones),
/// with exact spans, for tools that rewrite them in place (`hacompile pin`).
/// A value that can be located neither verbatim nor as a whole quoted
/// scalar is an error with its place: skipping it would pass `pin --check`.
pub fn stack_images(src: &Source) -> Result<Vec<ImageSite>, yaml::LoadError> {
    let doc = yaml::Doc::parse(src)?;
    let Some(root) = doc.root.filter(|r| doc.is_map(*r)) else { return Ok(Vec::new()) };
    let cx = context::StackCx::new(src, &doc, root, None, None);
    let mut out = Vec::new();
    for svc in cx.services() {
        let Some(node) = cx.at(svc.node, &["image"]) else { continue };
        let Some(text) = doc.scalar(node) else { continue };
        if text.contains('$') {
            continue;
        }
        // The node's span may include an anchor or tag (`&img "..."`) and
        // a trailing comment: look only at the scalar itself.
        let node_span = doc.span(node);
        let raw = &src.text[node_span.clone()];
        let at = |r: std::ops::Range<usize>| node_span.start + r.start..node_span.start + r.end;
        let site =
            |span, whole_scalar| ImageSite { service: svc.name.to_owned(), text: text.to_owned(), span, whole_scalar };
        let own = yaml::after_properties(raw);
        match yaml::quoted_scalar(raw) {
            Some(q) if raw.get(q.start + 1..q.end - 1) == Some(text) => {
                out.push(site(at(q.start + 1..q.end - 1), false))
            }
            // Written with escapes or over lines: the whole quoted scalar,
            // checked by parsing it alone, so a rewrite never replaces the wrong bytes.
            Some(q) if yaml::lone_scalar(&raw[q.clone()]).as_deref() == Some(text) => out.push(site(at(q), true)),
            None if raw[own..].starts_with(text) => out.push(site(at(own..own + text.len()), false)),
            _ => {
                return Err(yaml::LoadError {
                    message: format!(
                        "the image of service `{}` cannot be located in the file to rewrite it; write it on one line",
                        svc.name
                    ),
                    span: node_span,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod sniff_tests {
    use super::{has_top_level_services, looks_like_patroni};

    #[test]
    fn patroni_configurations_are_told_from_a_head() {
        assert!(looks_like_patroni("scope: ha\nbootstrap:\n  dcs: {ttl: 30}\n"));
        assert!(looks_like_patroni("\u{feff}etcd3:\r\n  hosts: [a:2379]\r\n\"bootstrap\":\r\n"));
        // A bootstrap key alone, or Patroni's words only below the top level, are not enough.
        assert!(!looks_like_patroni("bootstrap:\n  scope: x\n"));
        assert!(!looks_like_patroni("services:\n  scope: {}\n  bootstrap: {}\n"));
        assert!(!looks_like_patroni("# bootstrap:\nscope: x\n"));
        // A member's own file: no bootstrap (review finding: HC109 never ran on one).
        assert!(looks_like_patroni("scope: pg\nrestapi:\n  listen: 0.0.0.0:8008\n"));
        assert!(looks_like_patroni("scope: pg\npostgresql:\n  authentication: {}\n"));
        assert!(!looks_like_patroni("postgresql:\n  enabled: true\nrestapi: {}\n"), "no scope: a chart's values");
    }

    #[test]
    fn top_level_services_is_told_from_a_head() {
        for yes in [
            "services:\n  a: {}\n",
            "version: '3'\r\nservices:\r\n  a: {}\r\n",
            "\u{feff}services:\n",
            "\"services\": {a: {}}\n",
            "services: # the stack\n",
            "services: &s\n",
            "x: 1\nservices :\n",
        ] {
            assert!(has_top_level_services(yes), "{yes:?}");
        }
        for no in [
            "site_name: x\n",
            "image:\n  services: 2\n",
            "# services:\n",
            "services_extra:\n",
            "services: 3\n",
            "servicesx:\n",
        ] {
            assert!(!has_top_level_services(no), "{no:?}");
        }
    }
}

#[cfg(test)]
mod env_file_tests {
    use super::env_secrets;

    /// A libpq keyword/value connection string in an env file is a DSN with
    /// a password (HC102), as in a stack's `environment`.
    #[test]
    fn connection_strings_in_env_files() {
        let text = "PG_CONNSTRING=host=db port=5432 user=app password=hunter2 dbname=app\nCONN=\"host=db user=app passfile=/run/secrets/pgpass\"\n";
        let found: Vec<(&str, &str)> = env_secrets(text).iter().map(|(c, h)| (*c, &text[h.span.clone()])).collect();
        assert_eq!(found, [("HC102", "hunter2")]);
    }
}
