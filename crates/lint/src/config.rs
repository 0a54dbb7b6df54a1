//! `.hacompile.toml`: which rules run, at which severity, what fails the
//! run, which paths are skipped, whether inline suppressions are honoured.
//! Found upward from each linted file; unknown keys are errors with a place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::finding::Severity;
use crate::rules;

pub const CONFIG_FILE: &str = ".hacompile.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSetting {
    Off,
    Info,
    Warning,
    Error,
}

/// What a file is deployed with: rules that only hold under `docker stack
/// deploy` are not run on a file `docker compose` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Swarm,
    Compose,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Swarm => "swarm",
            Target::Compose => "compose",
        }
    }

    /// A stack/compose file's target from its name and content: a file
    /// with `deploy:` or named `*stack*` is a swarm stack; one named
    /// `docker-compose*` or `compose*` without `deploy:` is a compose file;
    /// any other (stdin, `postgres.yml`) is a swarm stack, what hacompile lints for.
    pub fn detect(name: &str, has_deploy: bool) -> Target {
        let base =
            Path::new(name).file_name().map_or(name.to_ascii_lowercase(), |n| n.to_string_lossy().to_ascii_lowercase());
        if has_deploy || base.contains("stack") {
            Target::Swarm
        } else if base.starts_with("docker-compose") || base.starts_with("compose") {
            Target::Compose
        } else {
            Target::Swarm
        }
    }
}

/// `target = "swarm" | "compose" | "auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetSetting {
    Swarm,
    Compose,
    Auto,
}

impl TargetSetting {
    /// The target it forces, or `None` for detection.
    pub fn forced(self) -> Option<Target> {
        match self {
            TargetSetting::Swarm => Some(Target::Swarm),
            TargetSetting::Compose => Some(Target::Compose),
            TargetSetting::Auto => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPathTarget {
    glob: String,
    target: TargetSetting,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    target: Option<TargetSetting>,
    #[serde(default)]
    path_target: Vec<RawPathTarget>,
    #[serde(default)]
    fail_on: Option<Severity>,
    #[serde(default)]
    allow_inline_suppressions: Option<bool>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    rules: BTreeMap<String, toml::Spanned<RuleSetting>>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Findings at or above this severity make the run exit 1.
    pub fail_on: Severity,
    pub allow_inline_suppressions: bool,
    pub exclude: GlobSet,
    /// The directory the config was found in (exclude globs are relative to it).
    pub root: Option<PathBuf>,
    pub rules: BTreeMap<&'static str, RuleSetting>,
    pub path: Option<PathBuf>,
    /// `target`: every file's target (`auto`: detected per file).
    pub target: TargetSetting,
    /// `[[path_target]]`: a target for the files a glob (relative to the
    /// config's directory) matches; the first match wins over `target`.
    pub path_targets: Vec<(globset::GlobMatcher, TargetSetting)>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            fail_on: Severity::Warning,
            allow_inline_suppressions: true,
            exclude: GlobSet::empty(),
            root: None,
            rules: BTreeMap::new(),
            path: None,
            target: TargetSetting::Auto,
            path_targets: Vec::new(),
        }
    }
}

/// A config file that could not be used, with the place of the problem.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub path: PathBuf,
    pub text: String,
    pub message: String,
    pub span: std::ops::Range<usize>,
    pub help: String,
}

impl Config {
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |message: String, span: std::ops::Range<usize>, help: &str| ConfigError {
            path: path.to_path_buf(),
            text: text.to_owned(),
            message,
            span,
            help: help.to_owned(),
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            err(
                e.message().trim_end().to_owned(),
                e.span().unwrap_or(0..0),
                "keys: fail_on, allow_inline_suppressions, exclude, target (swarm, compose or auto), [[path_target]] (glob, target), [rules]",
            )
        })?;
        let mut rules = BTreeMap::new();
        for (code, setting) in raw.rules {
            let Some(rule) = rules::find(&code) else {
                let span = text.find(&code).map_or(0..0, |i| i..i + code.len());
                return Err(err(format!("`{code}` is not a rule"), span, "`hacompile explain --list` lists the rules"));
            };
            rules.insert(rule.code, *setting.get_ref());
        }
        let mut globs = GlobSetBuilder::new();
        for pattern in &raw.exclude {
            let glob = Glob::new(pattern).map_err(|e| {
                let span = text.find(pattern.as_str()).map_or(0..0, |i| i..i + pattern.len());
                err(format!("`{pattern}` is not a valid glob: {e}"), span, "e.g. `legacy/**` or `**/test-*.yml`")
            })?;
            globs.add(glob);
        }
        let mut path_targets = Vec::new();
        for pt in &raw.path_target {
            let glob = Glob::new(&pt.glob).map_err(|e| {
                let span = text.find(pt.glob.as_str()).map_or(0..0, |i| i..i + pt.glob.len());
                err(format!("`{}` is not a valid glob: {e}", pt.glob), span, "e.g. `dev/**` or `**/compose*.yml`")
            })?;
            path_targets.push((glob.compile_matcher(), pt.target));
        }
        Ok(Config {
            target: raw.target.unwrap_or(TargetSetting::Auto),
            path_targets,
            fail_on: raw.fail_on.unwrap_or(Severity::Warning),
            allow_inline_suppressions: raw.allow_inline_suppressions.unwrap_or(true),
            exclude: globs.build().map_err(|e| err(e.to_string(), 0..0, "check the exclude globs"))?,
            root: path.parent().map(Path::to_path_buf),
            rules,
            path: Some(path.to_path_buf()),
        })
    }

    /// The nearest `.hacompile.toml` at or above `dir`, within its tree: up
    /// to its git work tree's root, else the working directory (when `dir`
    /// is below it), never above. One in `/tmp` or a shared CI workspace
    /// above the checkout could otherwise turn the gate off
    /// (`exclude = ["**"]`). Anything of that name counts (a FIFO, a link to
    /// a device or to nothing), so that reading it refuses it instead of the
    /// walk silently using defaults.
    pub fn discover(dir: &Path) -> Option<PathBuf> {
        let dir = dir.canonicalize().ok()?;
        let root = hacompile_boundary::read::tree_of(&dir);
        dir.ancestors()
            .take_while(|d| d.starts_with(&root))
            .map(|d| d.join(CONFIG_FILE))
            .find(|p| p.symlink_metadata().is_ok())
    }

    pub fn is_excluded(&self, path: &Path) -> bool {
        let Some(root) = &self.root else { return false };
        let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let root = root.canonicalize().unwrap_or_else(|_| root.clone());
        abs.strip_prefix(&root).is_ok_and(|rel| self.exclude.is_match(rel))
    }

    /// The target this config forces on `path`, if any: the first
    /// `[[path_target]]` whose glob matches it, else `target`.
    pub fn target_for(&self, path: Option<&Path>) -> Option<Target> {
        let rel = path.zip(self.root.as_ref()).and_then(|(path, root)| {
            let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            let root = root.canonicalize().unwrap_or_else(|_| root.clone());
            abs.strip_prefix(&root).ok().map(Path::to_path_buf)
        });
        let by_path = rel.and_then(|rel| self.path_targets.iter().find(|(g, _)| g.is_match(&rel)).map(|(_, t)| *t));
        by_path.unwrap_or(self.target).forced()
    }

    /// The severity a rule reports at, or `None` when it is off.
    pub fn severity(&self, rule: &rules::Rule) -> Option<Severity> {
        match self.rules.get(rule.code) {
            Some(RuleSetting::Off) => None,
            Some(RuleSetting::Info) => Some(Severity::Info),
            Some(RuleSetting::Warning) => Some(Severity::Warning),
            Some(RuleSetting::Error) => Some(Severity::Error),
            None => Some(rule.severity),
        }
    }
}
