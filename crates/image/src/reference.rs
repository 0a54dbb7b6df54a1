//! The distribution reference grammar.
//!
//! `[registry/]path[:tag][@algo:hex]`. The first component is a registry only
//! if it contains `.` or `:` or is `localhost`; otherwise the registry is
//! `docker.io` and one-component names get `library/`.

use std::fmt;

/// The longest repository name the distribution spec accepts.
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;
const DOCKER_HUB: &str = "docker.io";

/// Why a reference was rejected; each variant says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("the image reference is empty")]
    Empty,
    #[error("the image reference has no repository name before `{0}`")]
    MissingName(char),
    #[error("the repository name `{0}` has uppercase letters; repository names are lowercase")]
    Uppercase(String),
    #[error("the repository name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error(
        "`{0}` is not a valid repository path component (lowercase letters, digits and single `.`, `_`, `__` or `-` separators)"
    )]
    BadComponent(String),
    #[error("`{0}` is not a valid registry host")]
    BadRegistry(String),
    #[error(
        "the tag `{0}` is not valid (letters, digits, `_`, `.`, `-`; at most 128 characters; not starting with `.` or `-`)"
    )]
    BadTag(String),
    #[error("the digest `{0}` is not valid: {1}")]
    BadDigest(String, &'static str),
}

/// A content digest such as `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: &'static str,
    hex: String,
}

impl Digest {
    /// Parses `algo:hex`, checking the algorithm and the exact hex length.
    pub fn parse(text: &str) -> Result<Self, RefError> {
        let bad = |why| RefError::BadDigest(text.to_owned(), why);
        let (algo, hex) = text.split_once(':').ok_or_else(|| bad("expected `sha256:<64 hex digits>`"))?;
        let (algorithm, len) = match algo {
            "sha256" => ("sha256", 64),
            "sha384" => ("sha384", 96),
            "sha512" => ("sha512", 128),
            _ => return Err(bad("the algorithm must be sha256, sha384 or sha512")),
        };
        if hex.len() != len {
            return Err(bad(match algorithm {
                "sha256" => "a sha256 digest has exactly 64 hex digits",
                "sha384" => "a sha384 digest has exactly 96 hex digits",
                _ => "a sha512 digest has exactly 128 hex digits",
            }));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("the digest must be lowercase hex digits"));
        }
        Ok(Self { algorithm, hex: hex.to_owned() })
    }

    pub fn algorithm(&self) -> &str {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// A parsed image reference that remembers what the user wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    original: String,
    /// The name as written (`postgres`, `ghcr.io/acme/pg`).
    name: String,
    registry: String,
    /// The repository path inside the registry (`library/postgres`).
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, RefError> {
        if text.is_empty() {
            return Err(RefError::Empty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, d)) => (rest, Some(Digest::parse(d)?)),
            None => (text, None),
        };
        // A `:` after the last `/` separates the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(RefError::MissingName(if digest.is_some() && tag.is_none() { '@' } else { ':' }));
        }
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if name.len() > MAX_NAME_LEN {
            return Err(RefError::NameTooLong);
        }
        let (registry, path) = split_registry(name);
        if let Some(host) = registry {
            check_registry(host)?;
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(RefError::Uppercase(path.to_owned()));
        }
        for component in path.split('/') {
            check_component(component)?;
        }
        let registry = registry.unwrap_or(DOCKER_HUB);
        let registry = if registry == "index.docker.io" { DOCKER_HUB } else { registry };
        let repository =
            if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path.to_owned() };
        Ok(Self {
            original: text.to_owned(),
            name: name.to_owned(),
            registry: registry.to_owned(),
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// Exactly what the user wrote.
    pub fn as_written(&self) -> &str {
        &self.original
    }

    /// The name as written, without tag or digest.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `registry/repository`, e.g. `docker.io/library/postgres`.
    pub fn canonical_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag as written; `None` when the user wrote none (not `latest`).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `name:tag@digest` with the user's name and tag kept as a readable hint.
    pub fn pinned(&self, digest: &Digest) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}@{digest}", self.name),
            None => format!("{}@{digest}", self.name),
        }
    }
}

fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (Some(first), rest),
        _ => (None, name),
    }
}

fn check_registry(host: &str) -> Result<(), RefError> {
    let bad = || RefError::BadRegistry(host.to_owned());
    let (hostname, port) = match host.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    // IPv6 literals in brackets are allowed by the grammar.
    if hostname.starts_with('[') && hostname.ends_with(']') {
        let inner = &hostname[1..hostname.len() - 1];
        return if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            Ok(())
        } else {
            Err(bad())
        };
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if hostname.split('.').all(label_ok) { Ok(()) } else { Err(bad()) }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_component(c: &str) -> Result<(), RefError> {
    let bad = || RefError::BadComponent(c.to_owned());
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let dashes = sep.bytes().all(|b| b == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn check_tag(tag: &str) -> Result<(), RefError> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok { Ok(()) } else { Err(RefError::BadTag(tag.to_owned())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:bbec126b29d3dbc06437d2ea6694119467ea5c85ed6e487d28bb81a5a7e31805";

    #[test]
    fn docker_hub_names_get_library() {
        let r = ImageRef::parse("postgres:16").expect("valid");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/postgres");
        assert_eq!(r.canonical_name(), "docker.io/library/postgres");
        assert_eq!(r.tag(), Some("16"));
        assert_eq!(r.digest(), None);
    }

    #[test]
    fn missing_tag_is_not_latest() {
        let r = ImageRef::parse("postgres").expect("valid");
        assert_eq!(r.tag(), None);
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        let r = ImageRef::parse("127.0.0.1:5000/team/pg:16.4-bookworm").expect("valid");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/pg");
        assert_eq!(r.tag(), Some("16.4-bookworm"));
        let r = ImageRef::parse("localhost/pg").expect("valid");
        assert_eq!(r.registry(), "localhost");
        let r = ImageRef::parse("bitnamilegacy/postgresql:17").expect("valid");
        assert_eq!(r.canonical_name(), "docker.io/bitnamilegacy/postgresql");
        let r = ImageRef::parse("ghcr.io/acme/db__x/pg-x.y:1").expect("valid");
        assert_eq!(r.registry(), "ghcr.io");
    }

    #[test]
    fn digest_forms() {
        let r = ImageRef::parse(&format!("haproxy:2.8@{D}")).expect("valid");
        assert_eq!(r.tag(), Some("2.8"));
        assert_eq!(r.digest().map(ToString::to_string).as_deref(), Some(D));
        assert_eq!(r.pinned(r.digest().expect("digest")), format!("haproxy:2.8@{D}"));
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "",
            ":16",
            &format!("@{D}"),
            "Postgres:16",
            "postgres:16@sha256:abc",
            "postgres@md5:0123",
            "postgres:-x",
            "postgres:a b",
            "pg--/x",
            "pg..x",
            "a/",
            "exa_mple.com:/x",
            &format!("postgres@{}", D.to_uppercase().replace("SHA256", "sha256")),
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(ImageRef::parse("Postgres"), Err(RefError::Uppercase(_))));
        assert!(matches!(ImageRef::parse(":16"), Err(RefError::MissingName(':'))));
        let long = "a".repeat(256);
        assert_eq!(ImageRef::parse(&long), Err(RefError::NameTooLong));
        let long_tag = format!("pg:{}", "a".repeat(129));
        assert!(matches!(ImageRef::parse(&long_tag), Err(RefError::BadTag(_))));
    }
}
