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
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hacompile_boundary::mask::Masker;

use hacompile_image::LockFile;

pub use config::{Config, ConfigError};
pub use finding::{Family, Finding, Hit, Severity};
pub use rules::{RULES, Rule};
pub use source::Source;

/// Stack files larger than this are refused (an 8,000-service stack is ~3 MiB).
pub const MAX_STACK_BYTES: u64 = 16 * 1024 * 1024;
pub const MAX_HAPROXY_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Stack,
    Spec,
    Haproxy,
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
        match self.masker.text(s) {
            std::borrow::Cow::Borrowed(b) => hacompile_boundary::text::block(b),
            std::borrow::Cow::Owned(o) => std::borrow::Cow::Owned(hacompile_boundary::text::block(&o).into_owned()),
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
    if base.ends_with(".yml") || base.ends_with(".yaml") {
        return Some(FileKind::Stack);
    }
    // stdin or an unknown name: by content.
    if spec::looks_like_spec(text) {
        Some(FileKind::Spec)
    } else if text.lines().any(|l| l.starts_with("listen ") || l.starts_with("backend ")) {
        Some(FileKind::Haproxy)
    } else {
        Some(FileKind::Stack)
    }
}

/// Is this a file name the directory walk picks up?
pub fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()) else { return false };
    let yaml = name.ends_with(".yml") || name.ends_with(".yaml");
    (yaml && (name.contains("stack") || name.starts_with("compose") || name.starts_with("docker-compose")))
        || (name.ends_with(".toml") && name != "cargo.toml" && name != ".hacompile.toml" && name != "pyproject.toml")
        || (name.ends_with(".cfg") && name.contains("haproxy"))
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
    }
}

/// Lints one file's bytes. `path` (when on disk) locates the stack's
/// directory for `file:` references.
pub fn lint_file(
    name: &str,
    path: Option<&Path>,
    bytes: Vec<u8>,
    kind: FileKind,
    config: &Config,
    options: &Options,
) -> FileResult {
    let limit = match kind {
        FileKind::Stack => MAX_STACK_BYTES,
        FileKind::Spec => hacompile_spec::MAX_SPEC_BYTES,
        FileKind::Haproxy => MAX_HAPROXY_BYTES,
    };
    if bytes.len() as u64 > limit {
        return input_error(
            name,
            kind,
            None,
            0..0,
            format!("the file is larger than {} MiB", limit / (1024 * 1024)),
            "lint smaller files; a stack file this large is not a hand-written one",
        );
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
    let mut hits: Vec<(&'static rules::Rule, Hit)> = Vec::new();
    let mut haproxy_refs = Vec::new();
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
            let cx = context::StackCx::new(&src, &doc, root, options.lock.as_ref(), dir.clone());
            cx.services();
            let active: Vec<(&'static rules::Rule, rules::StackCheck)> = RULES
                .iter()
                .filter(|rule| config.severity(rule).is_some())
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
                for (rule, check) in part {
                    let mut out = Vec::new();
                    check(&cx, &mut out);
                    found.extend(out.into_iter().map(|h| (*rule, h)));
                }
                found
            };
            let (a, b) = std::thread::scope(|scope| {
                let other = scope.spawn(|| run(&second));
                let mine = run(&first);
                (mine, other.join().expect("a rule panicked"))
            });
            hits.extend(a);
            hits.extend(b);
            haproxy_refs = haproxy_configs(&cx);
        }
        FileKind::Haproxy => {
            for rule in RULES {
                if let rules::Check::Haproxy(f) = rule.check
                    && config.severity(rule).is_some()
                {
                    let mut out = Vec::new();
                    f(&src, &mut out);
                    hits.extend(out.into_iter().map(|h| (rule, h)));
                }
            }
        }
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
                    // The lock beside the spec, unless one was given.
                    let beside = match (&options.lock, path) {
                        (None, Some(p)) => std::fs::read_to_string(p.with_file_name(hacompile_image::LOCK_FILE_NAME))
                            .ok()
                            .and_then(|t| LockFile::parse(&t).ok()),
                        _ => None,
                    };
                    let lock = options.lock.as_ref().or(beside.as_ref());
                    let cx = spec::SpecCx { src: &spec_src, spec: &valid, lock };
                    for rule in RULES {
                        if let rules::Check::Spec(f) | rules::Check::StackAndSpec(_, f) = rule.check
                            && config.severity(rule).is_some()
                        {
                            let mut out = Vec::new();
                            f(&cx, &mut out);
                            hits.extend(out.into_iter().map(|h| (rule, h)));
                        }
                    }
                }
            }
        }
    }
    let mut findings = finish(&src, hits, config, options);
    findings.sort_by(|a, b| (a.span.start, a.code).cmp(&(b.span.start, b.code)));
    let fail_on = options.fail_on.unwrap_or(config.fail_on);
    let mut secrets: Vec<std::ops::Range<usize>> =
        findings.iter().filter(|f| f.code.starts_with("HC1")).map(|f| f.span.clone()).collect();
    if kind == FileKind::Spec {
        secrets.extend(hacompile_spec::credential_values(&src.text));
    }
    let masker = Arc::new(Masker::new(&src.text, secrets, []));
    FileResult {
        name: name.to_owned(),
        kind,
        source: Some(src),
        findings,
        input_error: false,
        fail_on,
        haproxy_refs,
        masker,
    }
}

/// Hits -> findings: dedupe, severity from config, suppressions applied.
fn finish(src: &Source, hits: Vec<(&'static rules::Rule, Hit)>, config: &Config, options: &Options) -> Vec<Finding> {
    let make = |rule: &'static rules::Rule, severity: Severity, hit: Hit| {
        let (line, column) = src.line_col(hit.span.start);
        let (end_line, end_column) = src.line_col(hit.span.end);
        Finding {
            code: rule.code,
            rule: rule.name,
            severity,
            file: src.name.clone(),
            span: hit.span,
            line,
            column,
            end_line,
            end_column,
            message: hit.message,
            help: hit.help.unwrap_or_else(|| rule.summary.to_owned()),
            suppressed: None,
        }
    };
    // One finding per rule and place: a value merged into several services
    // through an anchor is reported once, where it is written.
    let mut seen = std::collections::HashSet::new();
    let mut findings: Vec<Finding> = hits
        .into_iter()
        .filter(|(rule, hit)| seen.insert((rule.code, hit.span.start, hit.span.end)))
        .filter_map(|(rule, hit)| config.severity(rule).map(|sev| make(rule, sev, hit)))
        .collect();

    let parsed = suppress::parse(src, |c| rules::find(c).is_some());
    let inline_allowed = config.allow_inline_suppressions && !options.forbid_inline;
    let engine = |code: &str| rules::find(code).expect("registered");
    if inline_allowed {
        for p in parsed.problems {
            let rule = engine(rules::SUPPRESSION_WITHOUT_REASON);
            if let Some(sev) = config.severity(rule) {
                findings.push(make(
                    rule,
                    sev,
                    Hit::new(p.span, p.message).help("write `# hacompile-ignore CODE: why this is acceptable`"),
                ));
            }
        }
        for f in &mut findings {
            if let Some(s) = parsed
                .suppressions
                .iter()
                .find(|s| s.lines.0 <= f.line && f.line <= s.lines.1 && s.codes.iter().any(|c| c == f.code))
            {
                f.suppressed = Some(s.reason.clone());
            }
        }
    } else {
        let rule = engine(rules::INLINE_SUPPRESSION_FORBIDDEN);
        if let Some(sev) = config.severity(rule) {
            let spans = parsed
                .suppressions
                .iter()
                .map(|s| s.span.clone())
                .chain(parsed.problems.iter().map(|p| p.span.clone()));
            for span in spans {
                findings.push(make(
                    rule,
                    sev,
                    Hit::new(span, "inline suppressions are not allowed here")
                        .help("fix the finding, or turn the rule off for this path in .hacompile.toml"),
                ));
            }
        }
    }
    findings
}

/// haproxy.cfg files a stack names under top-level `configs`.
fn haproxy_configs(cx: &context::StackCx<'_>) -> Vec<PathBuf> {
    let (Some(dir), Some(configs)) = (&cx.dir, cx.at(cx.root, &["configs"])) else { return Vec::new() };
    cx.doc
        .entries(configs)
        .into_iter()
        .filter_map(|(_, v)| cx.str_at(v, &["file"]))
        .filter(|f| f.to_ascii_lowercase().contains("haproxy") && f.ends_with(".cfg"))
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect()
}

/// One input of a run: a path (file or directory) or stdin's bytes.
pub enum Input {
    Path(PathBuf),
    Stdin(Vec<u8>),
}

/// A whole run's results, in a stable order.
pub struct Report {
    pub files: Vec<FileResult>,
    pub config_errors: Vec<ConfigError>,
}

impl Report {
    /// 0 clean, 1 findings at or above the threshold, 2 unreadable input.
    pub fn exit_code(&self) -> u8 {
        if !self.config_errors.is_empty() || self.files.iter().any(|f| f.input_error) {
            2
        } else if self.files.iter().any(|f| f.failing().next().is_some()) {
            1
        } else {
            0
        }
    }
}

fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ignore::WalkBuilder::new(dir)
        .hidden(true)
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(ignore::DirEntry::into_path)
        .filter(|p| is_candidate(p))
        .collect();
    out.sort();
    out
}

/// Lints every input: directories are walked for stack, compose, spec and
/// haproxy files; haproxy.cfg files that stacks name are linted too.
pub fn run(inputs: Vec<Input>, options: &Options) -> Report {
    let mut configs: BTreeMap<PathBuf, Option<Config>> = BTreeMap::new();
    let mut config_errors = Vec::new();
    let mut config_for = |dir: &Path, errors: &mut Vec<ConfigError>| -> Config {
        if let Some(c) = &options.config {
            return c.clone();
        }
        let Some(path) = Config::discover(dir) else { return Config::default() };
        configs
            .entry(path.clone())
            .or_insert_with(|| {
                let parsed = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError {
                        path: path.clone(),
                        text: String::new(),
                        message: format!("cannot read it: {e}"),
                        span: 0..0,
                        help: "check its permissions".into(),
                    })
                    .and_then(|text| Config::parse(&path, &text));
                parsed.map_err(|e| errors.push(e)).ok()
            })
            .clone()
            .unwrap_or_default()
    };
    let mut files: Vec<(PathBuf, bool)> = Vec::new();
    let mut results = Vec::new();
    for input in inputs {
        match input {
            Input::Stdin(bytes) => {
                let config = config_for(Path::new("."), &mut config_errors);
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]).into_owned();
                let kind = classify("-", &text).unwrap_or(FileKind::Stack);
                results.push(lint_file("-", None, bytes, kind, &config, options));
            }
            Input::Path(p) if p.is_dir() => files.extend(walk(&p).into_iter().map(|f| (f, false))),
            Input::Path(p) => files.push((p, true)),
        }
    }
    let mut done: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue = files;
    let mut i = 0;
    while i < queue.len() {
        let (path, explicit) = queue[i].clone();
        i += 1;
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        if !done.insert(key) {
            continue;
        }
        let name = path.display().to_string();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let config = config_for(dir, &mut config_errors);
        if config.is_excluded(&path) {
            continue;
        }
        // Refuse an oversized file from its metadata, before reading any of it.
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.len() > MAX_STACK_BYTES
        {
            results.push(input_error(
                &name,
                FileKind::Stack,
                None,
                0..0,
                format!("the file is larger than {} MiB", MAX_STACK_BYTES / (1024 * 1024)),
                "lint smaller files; a stack file this large is not a hand-written one",
            ));
            continue;
        }
        let bytes = match read_limited(&path, MAX_STACK_BYTES) {
            Ok(b) => b,
            Err(e) => {
                results.push(input_error(
                    &name,
                    FileKind::Stack,
                    None,
                    0..0,
                    format!("cannot read the file: {e}"),
                    "check the path",
                ));
                continue;
            }
        };
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]).into_owned();
        let Some(kind) = classify(&name, &head) else {
            if explicit {
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
        let result = lint_file(&name, Some(&path), bytes, kind, &config, options);
        queue.extend(result.haproxy_refs.iter().map(|p| (p.clone(), false)));
        results.push(result);
    }
    Report { files: results, config_errors }
}

/// An `image:` value of a stack file: its text and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSite {
    pub service: String,
    pub text: String,
    /// The bytes of the value itself (inside quotes, when quoted).
    pub span: std::ops::Range<usize>,
}

/// The literal `image:` values of a stack/compose file (not `${VAR}` ones),
/// with exact spans, for tools that rewrite them in place (`hacompile pin`).
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
        // The node's span may include an anchor (`&img "..."`) and, for
        // quoted scalars, more than the value: find the value's own bytes.
        // A value written with escapes has no such bytes and is skipped.
        let node_span = doc.span(node);
        let raw = &src.text[node_span.clone()];
        let Some(at) = raw.find(text) else { continue };
        let span = node_span.start + at..node_span.start + at + text.len();
        out.push(ImageSite { service: svc.name.to_owned(), text: text.to_owned(), span });
    }
    Ok(out)
}
