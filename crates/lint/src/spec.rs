//! Linting a cluster spec: its own diagnostics become findings, then the
//! rules that apply to specs run on the validated model.

use std::ops::Range;

use hacompile_image::LockFile;
use hacompile_spec::{SourceFile, ValidSpec};
use toml::de::{DeTable, DeValue};

pub struct SpecCx<'a> {
    pub src: &'a SourceFile,
    pub spec: &'a ValidSpec,
    pub lock: Option<&'a LockFile>,
}

impl SpecCx<'_> {
    /// The span of the value at a key path, when the file writes it.
    pub fn key_span(&self, path: &[&str]) -> Option<Range<usize>> {
        let table = DeTable::parse(self.src.text()).ok()?;
        let mut current = table.get_ref();
        for (i, key) in path.iter().enumerate() {
            let (_, value) = current.iter().find(|(k, _)| k.get_ref().as_ref() == *key)?;
            if i + 1 == path.len() {
                return Some(value.span());
            }
            match value.get_ref() {
                DeValue::Table(t) => current = t,
                _ => return None,
            }
        }
        None
    }
}

/// Is this TOML text a cluster spec (rather than Cargo.toml, a config, ...)?
pub fn looks_like_spec(text: &str) -> bool {
    let has = |header: &str| text.lines().any(|l| l.trim_start().starts_with(header));
    has("[postgres") && (has("stack") || has("[haproxy"))
}
