//! `hacompile.lock`: which digest each image reference of a spec is pinned to.
//!
//! TOML, sorted by reference, one `[[image]]` table per reference, so a diff of
//! the lock in review shows exactly which image moved. `build` reads it and
//! never touches the network.

use serde::{Deserialize, Serialize};

use crate::{Digest, ImageRef};

pub const LOCK_FILE_NAME: &str = "hacompile.lock";
const LOCK_VERSION: u32 = 1;
const HEADER: &str = "\
# hacompile.lock: the content digest each image of the spec is pinned to.
# Written by `hacompile lock`; `hacompile build` reads it offline.
# Review changes to it like code: a new digest is a new image in production.
";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the lock file is not valid: {message}")]
    Syntax { message: String, span: Option<std::ops::Range<usize>> },
    #[error("the lock file has version {0}; this hacompile reads version {LOCK_VERSION}")]
    Version(u32),
    #[error("the lock entry for `{reference}` is not valid: {message}")]
    Entry { reference: String, message: String },
    #[error("the lock file lists `{0}` twice")]
    Duplicate(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// The reference exactly as the spec writes it.
    pub reference: String,
    /// `registry/repository`.
    pub name: String,
    pub tag: String,
    pub digest: String,
    /// The media type of the manifest the digest names (an index by default).
    pub media_type: String,
    pub registry: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: u32,
    #[serde(default, rename = "image")]
    images: Vec<LockEntry>,
}

/// A validated lock file, entries sorted by reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockFile {
    entries: Vec<LockEntry>,
}

impl LockFile {
    pub fn parse(text: &str) -> Result<Self, LockError> {
        let raw: RawLock =
            toml::from_str(text).map_err(|e| LockError::Syntax { message: e.message().to_owned(), span: e.span() })?;
        if raw.version != LOCK_VERSION {
            return Err(LockError::Version(raw.version));
        }
        let mut lock = Self::default();
        for entry in raw.images {
            let bad = |message: String| LockError::Entry { reference: entry.reference.clone(), message };
            let reference = ImageRef::parse(&entry.reference).map_err(|e| bad(e.to_string()))?;
            Digest::parse(&entry.digest).map_err(|e| bad(e.to_string()))?;
            if reference.canonical_name() != entry.name {
                return Err(bad(format!(
                    "`name` is `{}` but the reference names `{}`",
                    entry.name,
                    reference.canonical_name()
                )));
            }
            if reference.tag() != Some(entry.tag.as_str()) {
                return Err(bad(format!("`tag` is `{}` but the reference has tag {:?}", entry.tag, reference.tag())));
            }
            if lock.get(&entry.reference).is_some() {
                return Err(LockError::Duplicate(entry.reference));
            }
            lock.insert(entry);
        }
        Ok(lock)
    }

    /// Adds or replaces the entry for its reference, keeping the order sorted.
    pub fn insert(&mut self, entry: LockEntry) {
        match self.entries.binary_search_by(|e| e.reference.cmp(&entry.reference)) {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    pub fn get(&self, reference: &str) -> Option<&LockEntry> {
        self.entries.binary_search_by(|e| e.reference.as_str().cmp(reference)).ok().map(|i| &self.entries[i])
    }

    /// The pinned digest for a reference, parsed (entries were checked on load).
    pub fn digest_for(&self, reference: &str) -> Option<Digest> {
        self.get(reference).and_then(|e| Digest::parse(&e.digest).ok())
    }

    pub fn entries(&self) -> &[LockEntry] {
        &self.entries
    }

    /// The file's text: the same entries always give the same bytes.
    pub fn render(&self) -> String {
        let raw = RawLock { version: LOCK_VERSION, images: self.entries.clone() };
        let body = toml::to_string(&raw).expect("a lock of strings and integers always serializes");
        format!("{HEADER}\n{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(reference: &str, tag: &str, name: &str) -> LockEntry {
        LockEntry {
            reference: reference.into(),
            name: name.into(),
            tag: tag.into(),
            digest: "sha256:11a9d238fbb48bab14599c57e41123254452b1a2d93c6c8595bce96f346bd082".into(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            registry: "docker.io".into(),
        }
    }

    #[test]
    fn render_is_sorted_and_round_trips() {
        let mut lock = LockFile::default();
        lock.insert(entry("postgres:16", "16", "docker.io/library/postgres"));
        lock.insert(entry("haproxy:2.8", "2.8", "docker.io/library/haproxy"));
        let text = lock.render();
        assert!(text.find("haproxy:2.8").expect("present") < text.find("postgres:16").expect("present"));
        let again = LockFile::parse(&text).expect("round trip");
        assert_eq!(again, lock);
        assert_eq!(again.render(), text);
    }

    #[test]
    fn rejects_inconsistent_entries() {
        let mut lock = LockFile::default();
        lock.insert(entry("postgres:16", "15", "docker.io/library/postgres"));
        assert!(matches!(LockFile::parse(&lock.render()), Err(LockError::Entry { .. })));
        let text = "version = 2\n";
        assert!(matches!(LockFile::parse(text), Err(LockError::Version(2))));
        let text = "version = 1\n[[image]]\nreference = 1\n";
        assert!(matches!(LockFile::parse(text), Err(LockError::Syntax { span: Some(_), .. })));
    }
}
