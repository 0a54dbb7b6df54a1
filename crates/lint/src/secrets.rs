//! Heuristics shared by the secret rules: which keys hold credentials, which
//! values are literals, URLs with passwords, provider token shapes, entropy.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

pub use hacompile_spec::values::is_credential_key;

use crate::rules::interpolation;

/// Is this value, under a credential key, a literal credential? Judged on
/// what the file ships outside variables (`hunter2$X` ships `hunter2`;
/// `${PW}`, `${PW:-}` and `"${PW}"` ship nothing; a default is judged by
/// HC103 through [`credential_defaults`]). Any word counts: `password`,
/// `secret`, `changeme` and `admin` under a password key are passwords, the
/// most guessed ones. Booleans, `0`/`1` switches, durations, sizes, digests
/// and paths (`/run/secrets/pw`) are not credentials.
pub fn is_literal_secret(value: &str) -> bool {
    // A connection string whose credentials come from variables ships
    // none: `postgresql://${U}:${PW}@db/app`, `host=db password=${PW}`.
    // Any other URL is judged as a whole below (a webhook's path, a
    // token in a query, a Sentry DSN's key are credentials).
    if credentials_from_variables(value) {
        return false;
    }
    let shipped = interpolation::literal_text(value);
    // Around variables, separators are not a password: `${USER}:${PASS}`.
    if shipped.len() != value.len() && !shipped.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    is_credential_text(&shipped)
}

/// A connection string whose credentials are all variables: a URL whose
/// user information has variables and no literal letter or digit (and no
/// literal password in its query), or a libpq keyword/value string whose
/// `password=` is a variable. Nothing else in such a value is a secret.
fn credentials_from_variables(value: &str) -> bool {
    if has_literal_password(value) {
        return false;
    }
    if URL_START.is_match(value) {
        return URL_USERINFO.captures(value).and_then(|c| c.get(1)).is_some_and(|u| {
            let written = u.as_str();
            written.contains('$')
                && !interpolation::literal_text(written).bytes().any(|b| b.is_ascii_alphanumeric())
                && !URL_SECRET_QUERY.is_match(value)
        });
    }
    CONNINFO_KEYWORD.is_match(value) && CONNINFO_VARIABLE_PASSWORD.is_match(value)
}

/// A query parameter that holds a credential (`?token=...`, `&api_key=`).
static URL_SECRET_QUERY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[?&][a-z_]*(?:password|passwd|pwd|token|secret|key|signature|sig)=").expect("valid regex")
});

/// `password=$X` / `password=${X}` in a libpq keyword/value string.
static CONNINFO_VARIABLE_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[\s,;:])password[ \t]*=[ \t]*'?\$").expect("valid regex"));

/// A literal password in a URL or a connection string (HC102's finding).
fn has_literal_password(value: &str) -> bool {
    url_password(value).is_some() || conninfo_password(value).is_some()
}

/// A URL's user information (`user:password` or a key alone), as written.
static URL_USERINFO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z][A-Za-z0-9+.-]*://([^\s/?#@]+)@").expect("valid regex"));

static URL_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*["']?[A-Za-z][A-Za-z0-9+.-]*(?::[A-Za-z][A-Za-z0-9+.-]*)?://"#).expect("valid regex")
});

/// A literal (no variables left) that would be a credential under a
/// credential key.
pub fn is_credential_text(text: &str) -> bool {
    let v = text.trim().trim_matches(['"', '\'']).trim();
    if v.is_empty() || is_shell_reference(v) {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    if matches!(lower.as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "none" | "~" | "0" | "1") {
        return false;
    }
    if lower.starts_with("sha256:") || lower.starts_with("sha512:") || is_path(v) {
        return false;
    }
    !(is_duration(&lower) || is_size(&lower))
}

/// `/run/secrets/pw`, `/certs/token.crt`, `./keys/app.pem`: where a
/// credential is, not the credential.
fn is_path(v: &str) -> bool {
    let rest = v.strip_prefix("./").or_else(|| v.strip_prefix('/'));
    rest.is_some_and(|r| {
        r.contains('/') && r.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
    })
}

/// The literal defaults of a value (`${PW:-hunter2}`, nested ones too) that
/// are credentials under a credential key: ranges in `value`.
pub fn credential_defaults(value: &str) -> Vec<Range<usize>> {
    interpolation::defaults(value).into_iter().filter(|r| is_credential_text(&value[r.clone()])).collect()
}

/// `$X`, `${X}` (with any operator), `$(command)`: read at run time, by
/// compose from the deploy environment or by a shell in the container.
/// `$$X` and `$$(...)` are compose's escapes of the shell forms.
pub fn is_reference(v: &str) -> bool {
    let v = v.strip_prefix('$').filter(|r| r.starts_with('$')).unwrap_or(v);
    if !v.starts_with('$') {
        return false;
    }
    if v.contains(char::is_whitespace) && !(v.starts_with("$(") && v.ends_with(')')) {
        return false;
    }
    let pieces = interpolation::pieces(v);
    match pieces.as_slice() {
        [interpolation::Piece::Var { op, arg, .. }] => *op != interpolation::Op::Default || arg.is_empty(),
        _ => is_shell_reference(v),
    }
}

/// `$NAME`, `${NAME}` or `$(command)` as a shell sees them.
fn is_shell_reference(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('$') else { return false };
    if rest.starts_with('(') {
        return rest.ends_with(')');
    }
    let name = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(rest);
    let name = name.split([':', '-', '?', '+']).next().unwrap_or(name);
    !name.is_empty()
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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

/// Keys that hold `user:password` pairs (`DB_USERS: app:pw,report:pw2`).
pub fn is_user_list_key(key: &str) -> bool {
    let last = key.rsplit(['_', '.', '-']).next().unwrap_or(key);
    last.eq_ignore_ascii_case("users") || last.eq_ignore_ascii_case("userlist")
}

/// Words that, after `name:`, give a role, not a password
/// (`ADMIN_USERS: alice:admin`).
const ROLES: &[&str] = &[
    "admin",
    "administrator",
    "viewer",
    "editor",
    "reader",
    "writer",
    "read",
    "write",
    "readonly",
    "readwrite",
    "ro",
    "rw",
    "owner",
    "member",
    "guest",
    "operator",
    "superuser",
    "user",
    "users",
    "monitoring",
];

/// The passwords (ranges in `value`) of a `user:password[,user:password]`
/// list. Password hashes (`$2y$...`, `{SHA}...`, `md5...` of 35
/// characters), roles and Kafka principals (`User:alice`) are not
/// reported; nor are references.
pub fn user_passwords(value: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    for item in value.split([',', ';', ' ', '\n']) {
        let start = at;
        at += item.len() + 1;
        let Some((user, pw)) = item.split_once(':') else { continue };
        let user_ok = !user.is_empty()
            && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
        if !user_ok || matches!(user, "User" | "Group" | "Role") || pw.is_empty() {
            continue;
        }
        let hashed = pw.starts_with('$') || pw.starts_with('{') || (pw.len() == 35 && pw.starts_with("md5"));
        let role = ROLES.iter().any(|r| pw.eq_ignore_ascii_case(r));
        if !hashed && !role && is_credential_text(pw) {
            let p = start + user.len() + 1;
            out.push(p..p + pw.len());
        }
    }
    out
}

static URL_CREDENTIALS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:@/]*:([^\s@/]+)@").expect("valid regex"));
/// A password in a URL's query (`jdbc:postgresql://db/app?user=a&password=x`).
static URL_QUERY_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)://[^\s?]*\?(?:[^\s#]*&)?(?:password|passwd|pwd)=([^\s&#]+)").expect("valid regex")
});

/// `password=x` in a libpq keyword/value connection string
/// (`host=db user=app password=x`), quoted or not.
static CONNINFO_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s,;:])password[ \t]*=[ \t]*('(?:[^'\\]|\\.)*'|[^\s'\x22,;]+)").expect("valid regex")
});
/// Another connection keyword: what tells a connection string from prose.
static CONNINFO_KEYWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[\s,;:])(?:host|hostaddr|port|dbname|user)[ \t]*=").expect("valid regex"));

/// Stands for a variable's value in a value being judged.
const UNKNOWN: &str = "\u{1}";

/// A literal password in a libpq keyword/value connection string
/// (`host=db user=app password=x`, one with another connection keyword),
/// judged on the value as shipped like [`url_password`]: the password as
/// shipped, quotes included.
pub fn conninfo_password(value: &str) -> Option<String> {
    if !value.contains("password") || !CONNINFO_KEYWORD.is_match(value) {
        return None;
    }
    let shipped = interpolation::with_defaults_or(value, UNKNOWN)?;
    CONNINFO_PASSWORD.captures_iter(&shipped).find_map(|caps| {
        let m = caps.get(1)?.as_str();
        let literal = m.trim_matches('\'').replace(UNKNOWN, "");
        (!literal.is_empty() && !is_shell_reference(&literal)).then(|| m.replace(UNKNOWN, ""))
    })
}

/// A URL with a literal password (`scheme://user:pass@host`, or
/// `?password=pass` in its query), judged on the value as shipped:
/// variables without a default are unknown (not literal), defaults are
/// literal (`scheme://u:${PW:-pw}@h` ships `pw`). The password as shipped.
pub fn url_password(value: &str) -> Option<String> {
    if !value.contains("://") || !(value.contains('@') || value.contains('?')) {
        return None;
    }
    let shipped = interpolation::with_defaults_or(value, UNKNOWN)?;
    let caps = URL_CREDENTIALS.captures(&shipped).or_else(|| URL_QUERY_PASSWORD.captures(&shipped))?;
    let m = caps.get(1)?.as_str();
    let literal = m.replace(UNKNOWN, "");
    (!literal.is_empty() && !is_shell_reference(&literal)).then(|| m.to_owned())
}

/// Provider token shapes: one table, shared with the masking pass.
pub use hacompile_boundary::mask::provider_token;

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
/// path, URL, digest, image reference or a structured value: host lists
/// (`db1:5432,db2:5432`), LDAP names (`cn=x,dc=example,dc=org`) and URNs
/// (`urn:ietf:params:...`) are judged part by part, and their parts are
/// names.
pub fn looks_random(v: &str) -> bool {
    if v.len() < 20 || v.len() > 200 || v.contains(char::is_whitespace) || v.contains('/') || v.contains("://") {
        return false;
    }
    if v.starts_with("sha256:")
        || v.contains('@')
        || v.contains('$')
        || v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        return false;
    }
    // Base64 padding is part of a key, not a separator.
    let body = v.trim_end_matches('=');
    if body.contains([',', ';', ':', '=']) {
        return body.split([',', ';', ':', '=']).any(random_token);
    }
    random_token(body)
}

/// One token (no separators inside) that looks generated.
fn random_token(v: &str) -> bool {
    if v.len() < 20 || is_uuid(v) {
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

/// `8-4-4-4-12` hexadecimal: an identifier (cluster, tenant, client id).
fn is_uuid(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
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
    fn connection_strings_are_judged_by_their_credentials() {
        for v in [
            "postgresql://app:hunter2@db/app",
            "https://abc123def456@o1.ingest.sentry.io/42",
            "host=db user=app password=hunter2",
            "postgresql://${U}:${PW:-fallback}@db/app",
            // Credentials in a URL's path or query, or a value shaped like
            // a keyword string (a review found these missed).
            "https://hooks.slack.com/services/T0AAAA/B0BBBB/Zq9xWebhookSecret",
            "https://api.example.com/v1/Zq9xApiKey",
            "https://grafana/api?token=Zq9xToken",
            "user=Zq9xOdd",
            "redis://:Zq9x Space@cache",
            "https://${U}:${PW}@host/api?token=Zq9xToken",
        ] {
            assert!(is_literal_secret(v), "{v}");
        }
        for v in [
            "postgresql://${PG_SUPERUSER}:${PG_SUPERPASS}@pg1:5432/postgres?sslmode=disable",
            "postgres://${U}:${PW}@db/app",
            "host=pg-1 user=monitor password=${MONITOR_PASSWORD} dbname=postgres",
            "redis://:${REDIS_PASSWORD}@cache:6379/0",
        ] {
            assert!(!is_literal_secret(v), "{v}");
        }
    }

    #[test]
    fn literals() {
        for v in ["hunter2", "s3cr3t!", "$X-literal", "hunter2$SUFFIX", "pa$$w0rd", "password", "changeme", "12345678"]
        {
            assert!(is_literal_secret(v), "{v}");
        }
        for v in [
            "",
            "${DB_PASSWORD}",
            "$DB_PASSWORD",
            "${X:-default}",
            "${ELASTIC_PASSWORD:-}",
            "${USER}:${PASS}",
            "\"${PW}\"",
            "true",
            "0",
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
    fn defaults_users_and_urls() {
        let v = "${PGPASSWORD:-hunter2}";
        assert_eq!(credential_defaults(v).iter().map(|r| &v[r.clone()]).collect::<Vec<_>>(), ["hunter2"]);
        assert!(credential_defaults("${PGPASSWORD}").is_empty());
        assert!(credential_defaults("${PGPASSWORD:-}").is_empty());
        assert!(credential_defaults("${SENTRY_DSN:-0}").is_empty());
        assert_eq!(url_password("postgres://app:hunter2@db:5432/app").as_deref(), Some("hunter2"));
        assert_eq!(url_password("postgres://app:${PW}@db/app"), None);
        assert_eq!(url_password("postgresql://${DB_USER:?error}:${DB_PASSWORD:?error}@postgres/db"), None);
        assert_eq!(url_password("postgres://app:${PW:-dflt}@db/app").as_deref(), Some("dflt"));
        assert_eq!(url_password("https://example.com/x"), None);
        assert_eq!(url_password("redis://:cache-pass@cache:6379/0").as_deref(), Some("cache-pass"));
        assert_eq!(url_password("jdbc:postgresql://pg/app?user=app&password=q-pw").as_deref(), Some("q-pw"));
        assert_eq!(url_password("jdbc:postgresql://pg/app?user=app&password=${PW}"), None);
        assert!(!is_literal_secret("/certs/token.crt") && !is_literal_secret("./keys/app.pem"));
        let u = "app:app-pw,report:$$2y$$10$$abcdefghijklmnopqrstuv,User:alice,bob:viewer";
        assert_eq!(user_passwords(u).iter().map(|r| &u[r.clone()]).collect::<Vec<_>>(), ["app-pw"]);
        assert!(is_user_list_key("DB_USERS") && is_user_list_key("PGBOUNCER_USERLIST") && !is_user_list_key("DB_USER"));
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
        for structured in [
            "pg-etcd1.db.example.net:2379,pg-etcd2.db.example.net:2379",
            "cn=readonly2,ou=Service2,dc=example,dc=org",
            "uid=svc-grafana,ou=Apps,dc=Example,dc=com",
            "urn:amazon:webservices:govcloud2",
            "6e8bc430-9c3a-11d9-9669-0800200c9a66",
        ] {
            assert!(!looks_random(structured), "{structured}");
        }
        assert!(looks_random("bXlTM2NyZXRDb29raWVLZXkyMDI2eHl6=="));
        assert!(looks_random("base64:bXlTM2NyZXRDb29raWVLZXkyMDI2eHl6"));
    }
}
