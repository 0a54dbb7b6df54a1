//! Heuristics shared by the secret rules: which keys hold credentials, which
//! values are literals, URLs with passwords, provider token shapes, entropy.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

pub use hacompile_spec::values::is_credential_key;

/// Is this value a literal credential (as opposed to a reference or a
/// harmless non-secret value such as a boolean or a duration)?
pub fn is_literal_secret(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() || is_reference(v) {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "none" | "~" | "changeme_in_secret"
    ) {
        return false;
    }
    if lower.starts_with("sha256:") || lower.starts_with("sha512:") || v.starts_with("/run/secrets/") {
        return false;
    }
    if is_duration(&lower) || is_size(&lower) {
        return false;
    }
    // Auth method names (e.g. POSTGRES_HOST_AUTH_METHOD=scram-sha-256) are not secrets.
    !matches!(lower.as_str(), "scram-sha-256" | "md5" | "trust" | "password" | "peer" | "cert")
}

/// `${X}`, `$X`, `$${X}` (compose's escape), or a command substitution
/// (`$(cat /run/secrets/x)`): the value comes from elsewhere at run time.
pub fn is_reference(v: &str) -> bool {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let v = v.strip_prefix("$$").or_else(|| v.strip_prefix('$'));
    match v {
        Some(rest) if rest.starts_with('(') => rest.ends_with(')'),
        Some(rest) => match rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            // `${X:?message}` / `${X?message}`: required, so nothing literal ships.
            Some(inner) => name_ok(inner.split_once('?').map_or(inner, |(n, _)| n.trim_end_matches(':'))),
            None => name_ok(rest),
        },
        None => false,
    }
}

fn is_duration(v: &str) -> bool {
    let units = ["ms", "us", "ns", "s", "m", "h", "d"];
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && units.contains(&unit)
}

fn is_size(v: &str) -> bool {
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && ["k", "kb", "m", "mb", "g", "gb", "t", "tb", "b", "ki", "mi", "gi", "kib", "mib", "gib"].contains(&unit)
}

/// `${NAME:-default}` or `${NAME-default}` with a non-empty default: the
/// byte range of the default inside `value`.
pub fn interpolation_default(value: &str) -> Option<Range<usize>> {
    let start = value.find("${")?;
    let body_start = start + 2;
    let end = body_start + value[body_start..].find('}')?;
    let body = &value[body_start..end];
    let sep = body.find(":-").map(|i| (i, 2)).or_else(|| body.find('-').map(|i| (i, 1)))?;
    let default = body_start + sep.0 + sep.1..end;
    (!value[default.clone()].is_empty() && !value[default.clone()].starts_with('$')).then_some(default)
}

static URL_CREDENTIALS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:@/]*:([^\s@/]+)@").expect("valid regex"));

/// A URL with a password (`scheme://user:pass@host`): the password's range.
pub fn url_password(value: &str) -> Option<Range<usize>> {
    let caps = URL_CREDENTIALS.captures(value)?;
    let m = caps.get(1)?;
    (!is_reference(m.as_str()) && !m.as_str().starts_with("${")).then(|| m.range())
}

/// Provider token shapes (gitleaks-style), with the provider's name.
static TOKENS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        ("an AWS access key id", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("a GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
        ("a GitHub fine-grained token", r"\bgithub_pat_[A-Za-z0-9_]{60,}\b"),
        ("a GitLab token", r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
        ("a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
        ("a Stripe secret key", r"\b[sr]k_live_[A-Za-z0-9]{20,}\b"),
        ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
        ("a private key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        ("a JSON Web Token", r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
        ("a SendGrid key", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),
        ("an npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ]
    .into_iter()
    .map(|(name, re)| (name, Regex::new(re).expect("valid regex")))
    .collect()
});

/// The first provider token in `value`: its kind and range.
pub fn provider_token(value: &str) -> Option<(&'static str, Range<usize>)> {
    // Cheap prefilter: every pattern needs a run of at least 16 non-space bytes.
    if value.len() < 16 {
        return None;
    }
    TOKENS.iter().find_map(|(name, re)| re.find(value).map(|m| (*name, m.range())))
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A value that looks randomly generated (a key or password), not a word,
/// path, URL, digest or image reference.
pub fn looks_random(v: &str) -> bool {
    if v.len() < 20 || v.len() > 200 || v.contains(char::is_whitespace) || v.contains('/') || v.contains("://") {
        return false;
    }
    if v.starts_with("sha256:") || v.contains('@') || v.contains('$') {
        return false;
    }
    // Words joined by separators (`production-database-primary-2026`) are names.
    let segments: Vec<&str> = v.split(['-', '_', '.']).filter(|s| !s.is_empty()).collect();
    let words = segments.iter().filter(|s| s.len() >= 3 && s.bytes().all(|b| b.is_ascii_alphabetic())).count();
    if segments.len() >= 2 && words * 2 >= segments.len() {
        return false;
    }
    let classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
    ];
    classes.iter().filter(|c| **c).count() >= 2 && entropy(v) >= 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys() {
        for k in [
            "POSTGRES_PASSWORD",
            "PGPASSWORD",
            "DB_PASS",
            "API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_TOKEN",
            "client_secret",
            "REDIS_PASSWD",
            "SENTRY_DSN",
            "APP_SALT",
            "requirepass",
            "SECRET",
        ] {
            assert!(is_credential_key(k), "{k}");
        }
        for k in [
            "POSTGRES_PASSWORD_FILE",
            "POSTGRES_USER",
            "PASSWORD_MIN_LENGTH",
            "PASSENGER_MODE",
            "COMPASS",
            "POSTGRES_HOST_AUTH_METHOD",
            "SECRETS_DIR",
            "PASSWORD_ENCRYPTION",
            "TOKEN_TTL",
        ] {
            assert!(!is_credential_key(k), "{k}");
        }
    }

    #[test]
    fn literals() {
        for v in ["hunter2", "s3cr3t!", "${X:-default}", "$X-literal"] {
            assert!(is_literal_secret(v), "{v}");
        }
        for v in [
            "",
            "${DB_PASSWORD}",
            "$DB_PASSWORD",
            "true",
            "30s",
            "512m",
            "/run/secrets/pw",
            "sha256:abcd",
            "$$(cat /run/secrets/x)",
            "$X",
            "${db_pw}",
        ] {
            assert!(!is_literal_secret(v), "{v}");
        }
    }

    #[test]
    fn defaults_and_urls() {
        let v = "${PGPASSWORD:-hunter2}";
        assert_eq!(&v[interpolation_default(v).expect("default")], "hunter2");
        assert_eq!(interpolation_default("${PGPASSWORD}"), None);
        assert_eq!(interpolation_default("${PGPASSWORD:-}"), None);
        let u = "postgres://app:hunter2@db:5432/app";
        assert_eq!(&u[url_password(u).expect("password")], "hunter2");
        assert_eq!(url_password("postgres://app:${PW}@db/app"), None);
        assert_eq!(url_password("https://example.com/x"), None);
        let r = "redis://:cache-pass@cache:6379/0";
        assert_eq!(&r[url_password(r).expect("empty user")], "cache-pass");
    }

    #[test]
    fn tokens_and_entropy() {
        assert_eq!(provider_token("key=AKIAIOSFODNN7EXAMPLE").map(|t| t.0), Some("an AWS access key id"));
        assert!(provider_token("ghp_0123456789abcdefghijABCDEFGHIJ0123456789").is_some());
        assert!(provider_token("node.labels.pg.role == primary").is_none());
        assert!(looks_random("q8Zr2LxP0vWm4NcT7yKb1HsD"));
        assert!(!looks_random("production-database-primary"));
        assert!(!looks_random("production-database-primary-2026"));
        assert!(!looks_random("sha256:11a9d238fbb48bab14599c57e41123254452b1a2d93c6c8595bce96f346bd082"));
    }
}
