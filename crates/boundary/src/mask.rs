//! One masking pass for every printed line.
//!
//! Whatever state a file is in (parsed, half-parsed, not UTF-8), a line of it
//! that reaches a terminal goes through [`Masker`]: the exact places a
//! checker found (rule findings, the spec's credential values), every other
//! occurrence of those values anywhere in the line, and what a line scan
//! recognises on its own (credential-shaped `key: value` / `key = value` in
//! block and flow style, password flags, URL passwords, provider tokens,
//! continuation lines of a multi-line credential value). Messages go through
//! the same pass. Masking errs on the side of hiding: a masked non-secret
//! costs a re-read, a printed secret cannot be taken back.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::Regex;

/// Does this key name hold a credential when given a literal value?
/// (`POSTGRES_PASSWORD`, `api_key`, `--requirepass`, `REDISCLI_AUTH`; not
/// `*_FILE`, not settings about credentials such as `PASSWORD_MIN_LENGTH`,
/// `REGISTRY_AUTH_TOKEN_REALM` or `DOVECOT_PASS_SCHEME`.) Shared by the
/// spec's literal-credential check and the linter.
pub fn is_credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    // Paths to secrets, and settings *about* credentials (their length,
    // lifetime, algorithm, where to get one, who issues it), are not
    // credentials: the last word names what the value is.
    const NOT: &[&str] = &[
        "_file",
        "_path",
        "_dir",
        "_length",
        "_min",
        "_max",
        "_count",
        "_ttl",
        "_timeout",
        "_expiry",
        "_expire",
        "_expires",
        "_expiration",
        "_lifetime",
        "_validity",
        "_interval",
        "_rotation",
        "_seconds",
        "_minutes",
        "_hours",
        "_days",
        "_size",
        "_limit",
        "_rounds",
        "_iterations",
        "_cost",
        "_strength",
        "_complexity",
        "_history",
        "_attempts",
        "_retries",
        "_policy",
        "_method",
        "_encryption",
        "_algorithm",
        "_hash_rounds",
        "_scheme",
        "_realm",
        "_issuer",
        "_audience",
        "_service",
        "_url",
        "_uri",
        "_endpoint",
        "_host",
        "_port",
        "_header",
        "_type",
        "_format",
        "_name",
        "_prefix",
        "_backend",
        "_provider",
        "_source",
        "_command",
        "_cmd",
        "_mode",
        "_user",
        "_username",
        "_enabled",
        "_enable",
        "_disabled",
        "_required",
    ];
    if NOT.iter().any(|s| k.ends_with(s)) {
        return false;
    }
    // Names, not credentials, whatever their last word: etcd's cluster token
    // only keeps members of two clusters from joining each other by mistake.
    const NAMES: &[&str] = &["etcd_initial_cluster_token", "initial-cluster-token", "initial_cluster_token"];
    if NAMES.iter().any(|n| k.trim_start_matches('-') == n.trim_start_matches('-')) {
        return false;
    }
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "token",
        "apikey",
        "api_key",
        "access_key",
        "secret_key",
        "secret_access_key",
        "private_key",
        "client_secret",
        "credential",
        "credentials",
        "auth_token",
        "secret",
        "pass",
        "encryption_key",
        "salt",
        "dsn",
        "requirepass",
        "masterauth",
        "rpcpassword",
        // The password redis-cli reads from its environment.
        "rediscli_auth",
        // MongoDB's replica-set keyfile content (Bitnami's MONGODB_REPLICA_SET_KEY).
        "replica_set_key",
        "master_key",
        "signing_key",
        "erlang_cookie",
        // WordPress's keys (`WORDPRESS_AUTH_KEY`, `SECURE_AUTH_KEY`, ...).
        "auth_key",
        "nonce_key",
        "logged_in_key",
    ];
    let segments: Vec<&str> = k.split(['_', '-', '.']).collect();
    // A bound on credentials (`OPENAI_MAX_TOKENS`, `MIN_PASSWORD_AGE`) is a number.
    if segments.iter().any(|s| matches!(*s, "max" | "min")) {
        return false;
    }
    WORDS.iter().any(|w| {
        if w.contains('_') {
            k.contains(w)
        } else if w.len() > 4 {
            // Long words also count inside another (PGPASSWORD, DBPASSWD).
            k.contains(w)
        } else {
            segments.contains(w)
        }
    })
}

static URL_CREDENTIALS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:@/]*:([^\s@/]+)@").expect("valid regex"));

/// A URL with a password (`scheme://user:pass@host`): the password's range.
/// A reference (`${PW}`) in its place is not a password.
pub fn url_password(value: &str) -> Option<Range<usize>> {
    let caps = URL_CREDENTIALS.captures(value)?;
    let m = caps.get(1)?;
    (!m.as_str().starts_with('$')).then(|| m.range())
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

/// Words (any case) at least one of which every pattern of [`scan_line`]
/// needs: the credential words of [`is_credential_key`] and their
/// misspellings' stems, provider token prefixes, password flags, URLs.
static TRIGGERS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build([
            "pass", "pwd", "tok", "key", "secret", "cred", "salt", "dsn", "auth", "priv", "akia", "asia", "gh",
            "glpat", "xox", "_live_", "aiza", "begin", "eyj", "sg.", "npm_", "-p", "-a", "-u", "--user", "://",
        ])
        .expect("plain words build a searcher")
});

/// A key followed by `:` or `=` (quoted or not, TOML dotted, YAML, env, JSON).
static KEY_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"([A-Za-z_][A-Za-z0-9_.\-]*)["']?[ \t]*(:|=)[ \t]*"#).expect("valid regex"));
/// A flag and its value: `--password x`, `--password=x`, `-a x` (redis-cli),
/// and the exec-form list split `"--password", "x"`.
static FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|[\s\["',])(--?[A-Za-z][A-Za-z0-9_.\-]*)(?:=|[ \t]+|["'][ \t]*,[ \t]*["'])([^\s"',\]]+)"#)
        .expect("valid regex")
});
/// A password glued to a short flag: mysql's `-pSECRET`, in shell or exec form.
static GLUED_P: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?:^|[\s\["',])-p([^\s"',\]\-][^\s"',\]]*)"#).expect("valid regex"));
/// `-u user:pass` / `--user user:pass` (curl and friends).
static USER_PASS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?:^|[\s\["',])(?:-u|--user)[ \t]+[^\s:"']+:([^\s"',\]]+)"#).expect("valid regex"));

/// haproxy.cfg's own credentials: `insecure-password X` / `password HASH` in
/// a userlist, `stats auth USER:PASS`.
static HAPROXY_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|\s)user\s+\S+\s+(?:insecure-password|password)\s+(\S+)|(?:^|\s)stats\s+auth\s+[^\s:]+:(\S+)")
        .expect("valid regex")
});

/// Clients whose `-p` is a port: PostgreSQL's and redis-cli.
const PORT_P_CLIENTS: &[&str] = &[
    "psql",
    "pg_isready",
    "pg_dump",
    "pg_dumpall",
    "pg_restore",
    "pg_basebackup",
    "pg_receivewal",
    "pg_recvlogical",
    "pgbench",
    "createdb",
    "dropdb",
    "createuser",
    "dropuser",
    "vacuumdb",
    "reindexdb",
    "clusterdb",
    "redis-cli",
];
/// Clients whose `-P` is a port: mysql's and MariaDB's.
const PORT_UPPER_P_CLIENTS: &[&str] =
    &["mysql", "mysqladmin", "mysqldump", "mysqlcheck", "mysqlimport", "mariadb", "mariadb-admin", "mariadb-dump"];

/// Is the program the flag belongs to (the last word before it that is not
/// a flag or a flag's value we can tell) a client whose `flag` is a port?
/// Read back word by word: the nearest word that names a program decides;
/// a program we do not know (sshpass, mongosh, sqlcmd) does not.
fn port_client_before(before: &str, flag: &str) -> bool {
    let clients = if flag == "-p" { PORT_P_CLIENTS } else { PORT_UPPER_P_CLIENTS };
    // Only the command the flag is in: `psql ... && tool -p 1234` is tool's.
    let before = before.rfind([';', '&', '|', '`', '(', '\n']).map_or(before, |i| &before[i + 1..]);
    let words = before.split(|c: char| c.is_whitespace() || "\"',[]();&|`".contains(c)).filter(|w| !w.is_empty());
    for word in words.rev() {
        // Flags and their values (`-h db`, `-U app`, `127.0.0.1`) are passed over.
        if word.starts_with('-') || !word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/') {
            continue;
        }
        let base = word.rsplit('/').next().unwrap_or(word);
        if clients.contains(&base) {
            return true;
        }
        if is_program_like(base) {
            return false;
        }
    }
    false
}

/// A word that names some program rather than a flag's value: anything
/// known to take a password after `-p`/`-P`, and the words that start a
/// command (`CMD`, a shell, `exec`).
fn is_program_like(word: &str) -> bool {
    const OTHERS: &[&str] = &[
        "sshpass",
        "mongo",
        "mongosh",
        "mongodump",
        "mongorestore",
        "mongoexport",
        "mongoimport",
        "sqlcmd",
        "bcp",
        "mosquitto_pub",
        "mosquitto_sub",
        "zip",
        "unzip",
        "7z",
        "7za",
        "smbclient",
        "CMD",
        "CMD-SHELL",
        "sh",
        "bash",
        "exec",
        "test",
    ];
    OTHERS.contains(&word)
}

/// Short flags that take a password in common clients (`redis-cli -a`).
const PASSWORD_SHORT_FLAGS: &[&str] = &["-a", "-p", "-P", "-w", "-k"];

fn is_reference(v: &str) -> bool {
    let v = v.trim_matches(['"', '\'']);
    // `$(cat /run/secrets/pw)`, and compose's `$$` escape of it.
    let v = v.strip_prefix('$').filter(|r| r.starts_with('$')).unwrap_or(v);
    if v.starts_with("$(") && v.ends_with(')') {
        return true;
    }
    let Some(rest) = v.strip_prefix('$') else { return v.starts_with("/run/secrets/") };
    let name = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(rest);
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// In `${NAME:-default}` (quoted or not) only the default is literal: its
/// range; an empty range for `${NAME}` and `${NAME:?message}`.
fn interpolation_default(value: &str) -> Option<Range<usize>> {
    let lead = value.len() - value.trim_start_matches(['"', '\'']).len();
    let body = value[lead..].strip_prefix("${")?;
    let close = body.find('}')?;
    let inner = &body[..close];
    let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
    let start = lead + 2;
    match inner[name_len..].strip_prefix(":-").or_else(|| inner[name_len..].strip_prefix('-')) {
        Some(default) => {
            let d = start + close - default.len();
            Some(d..start + close)
        }
        None => Some(start..start),
    }
}

fn normalised(key: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.replace('-', "_")
}

/// The end (exclusive, in `line`) of a value starting at `at`.
fn value_end(line: &str, at: usize, sep: char, in_flow: bool, key_starts_line: bool) -> usize {
    let rest = &line[at..];
    let Some(first) = rest.chars().next() else { return at };
    if first == '"' || first == '\'' {
        let mut escaped = false;
        let mut chars = rest.char_indices().skip(1).peekable();
        while let Some((i, c)) = chars.next() {
            if first == '"' && c == '\\' && !escaped {
                escaped = true;
                continue;
            }
            // YAML writes a single quote inside single quotes as `''`.
            if first == '\'' && c == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                continue;
            }
            if c == first && !escaped {
                // A shell-quoted value may go on (`'it'\''s'`): to the end of an `=` line.
                return if sep == '=' && key_starts_line { line.len() } else { at + i + 1 };
            }
            escaped = false;
        }
        return line.len();
    }
    if first == '[' {
        // An array or flow sequence of credentials: up to its close.
        let mut depth = 0usize;
        for (i, c) in rest.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return at + i + 1;
                    }
                }
                _ => {}
            }
        }
        return line.len();
    }
    // `KEY=value with spaces` at the start of a line (an env file, a list
    // item) is the whole rest of the line; inside a command, a word.
    let word = sep == '=' && !key_starts_line;
    let stop = |c: char| {
        (word && c.is_whitespace())
            || (in_flow && matches!(c, ',' | '}' | ']'))
            || (word && matches!(c, ';' | '"' | '\'' | ',' | ')'))
    };
    let mut end = line.len();
    for (i, c) in rest.char_indices() {
        if stop(c) {
            end = at + i;
            break;
        }
        if c == '#' && i > 0 && rest[..i].ends_with([' ', '\t']) {
            end = at + i;
            break;
        }
    }
    // Trailing spaces before a comment are not the value.
    at + line[at..end].trim_end().len()
}

/// What a line scan recognises as credentials in one line of any file
/// (YAML, TOML, JSON, env, shell): ranges within `line`.
pub fn scan_line(line: &str) -> Vec<Range<usize>> {
    // A value runs to the end of the line at most, never over its line break.
    let line = line.trim_end_matches(['\n', '\r']);
    // Most lines hold none of the words any pattern below needs: one pass
    // of a multi-word search instead of a dozen regexes.
    if !TRIGGERS.is_match(line) {
        return Vec::new();
    }
    let mut out = Vec::new();
    // Inside `password = { ... }` every value but `secret = "NAME"` is the credential.
    let mut credential_table: Option<Range<usize>> = None;
    // Where flow collections open, found once: asking `before` for them at
    // every pair would rescan the line from its start each time (a line of
    // thousands of pairs took minutes).
    let first_flow = line.find(['{', '[']);
    let first_brace = line.find('{');
    // The end of the values masked so far: a pair inside one is masked with
    // it, and measuring its value again would make a line of thousands of
    // `password: x,` pairs (one plain scalar to the end) quadratic.
    let mut covered_to = 0;
    for c in KEY_VALUE.captures_iter(line) {
        let (Some(key), Some(sep), Some(whole)) = (c.get(1), c.get(2), c.get(0)) else { continue };
        if key.start() < covered_to {
            continue;
        }
        let name = normalised(key.as_str());
        let in_credential_table = credential_table.as_ref().is_some_and(|t| t.contains(&key.start()));
        if !is_credential_key(&name) && !in_credential_table {
            continue;
        }
        let sep_char = if sep.as_str() == ":" { ':' } else { '=' };
        // `host:port`, `scheme://`: a YAML key needs a space (or the end) after `:`.
        if sep_char == ':' && whole.end() == sep.end() && whole.end() < line.len() {
            continue;
        }
        let at = whole.end();
        let before = &line[..key.start()];
        let in_flow = first_flow.is_some_and(|p| p < key.start());
        // `secret = "NAME"` inside an inline table names a Docker secret.
        if name.eq_ignore_ascii_case("secret") && first_brace.is_some_and(|p| p < key.start()) {
            continue;
        }
        let rest = &line[at..];
        if rest.starts_with('{') {
            // Its own pairs are scanned next, as credentials.
            credential_table = Some(at..rest.find('}').map_or(line.len(), |i| at + i));
            continue;
        }
        if rest.starts_with(['|', '>']) || rest.starts_with("\"\"\"") || rest.starts_with("'''") {
            // A block scalar or multi-line string continues on the next
            // lines (see [`continues_secret`]); its first line carries at
            // most the opening quote and what follows it.
            if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
                out.push(at..line.len());
            }
            continue;
        }
        let key_starts_line = {
            let lead = before.trim_start().trim_start_matches("- ").trim_start_matches("export ");
            lead.trim_start_matches(['"', '\'']).is_empty()
        };
        let end = value_end(line, at, sep_char, in_flow, key_starts_line);
        if end > at && !is_reference(&line[at..end]) {
            let masked = interpolation_default(&line[at..end]).map_or(at..end, |d| at + d.start..at + d.end);
            covered_to = covered_to.max(masked.end);
            out.push(masked);
        }
    }
    for c in FLAG.captures_iter(line) {
        let (Some(flag), Some(v)) = (c.get(1), c.get(2)) else { continue };
        let f = flag.as_str();
        let name = normalised(f.trim_start_matches('-'));
        // `-p 5432` / `-P 3306` is a port for the clients that take one
        // there (PostgreSQL's, redis-cli, mysql's `-P`); mysql's password is
        // glued to `-p` (GLUED_P below). For any other program (sshpass,
        // mongosh, sqlcmd) a number there is a password.
        let port = matches!(f, "-p" | "-P")
            && v.as_str().parse::<u16>().is_ok_and(|p| p > 0)
            && port_client_before(&line[..flag.start()], f);
        let short_password = PASSWORD_SHORT_FLAGS.contains(&f) && !port;
        if (is_credential_key(&name) || short_password) && !is_reference(v.as_str()) && !v.as_str().starts_with('-') {
            out.push(v.range());
        }
    }
    for c in HAPROXY_SECRET.captures_iter(line) {
        if let Some(v) = c.get(1).or_else(|| c.get(2)) {
            out.push(v.range());
        }
    }
    for re in [&*GLUED_P, &*USER_PASS] {
        for c in re.captures_iter(line) {
            if let Some(v) = c.get(1)
                && !is_reference(v.as_str())
            {
                out.push(v.range());
            }
        }
    }
    let mut from = 0;
    while let Some(r) = url_password(&line[from..]) {
        out.push(from + r.start..from + r.end);
        from += r.end;
    }
    for (_, re) in TOKENS.iter() {
        if line.len() >= 16 {
            out.extend(re.find_iter(line).map(|m| m.range()));
        }
    }
    // A value repeated on its own line (`pw: x # default is x`): each
    // distinct value searched once, at most a few dozen per line, so a line
    // of thousands of `KEY=x` costs linear time.
    let mut found: Vec<&str> = out
        .iter()
        .map(|r| line[r.clone()].trim_matches(['"', '\'']))
        .filter(|v| (MIN_SEARCHED..=MAX_LEN_SEARCHED).contains(&v.len()))
        .collect();
    found.sort_unstable();
    found.dedup();
    found.truncate(MAX_REPEATS_SEARCHED);
    for value in found {
        occurrences_of(line, value, &mut out);
    }
    merge(out)
}

/// Every place of `value` in `line`, overlapping ones included, without
/// building a searcher: an Aho-Corasick automaton built for each scanned
/// line cost more than the scan (a file of 100,000 credential lines took
/// 30 s). A value that cannot overlap itself (no proper prefix is also its
/// suffix) is found by `str::match_indices`; one that can (`aaa`, `abab`)
/// by Knuth-Morris-Pratt over its prefix table. Either way the work is
/// linear in the line.
fn occurrences_of(line: &str, value: &str, out: &mut Vec<Range<usize>>) {
    let (text, v) = (line.as_bytes(), value.as_bytes());
    let Some(last) = v.len().checked_sub(1) else { return };
    // border[i]: the length of the longest proper prefix of v[..=i] that is also its suffix.
    let mut border = vec![0usize; v.len()];
    let mut k = 0;
    for i in 1..v.len() {
        while k > 0 && v[i] != v[k] {
            k = border[k - 1];
        }
        if v[i] == v[k] {
            k += 1;
        }
        border[i] = k;
    }
    if border[last] == 0 {
        out.extend(line.match_indices(value).map(|(at, _)| at..at + v.len()));
        return;
    }
    let mut k = 0;
    for (i, &b) in text.iter().enumerate() {
        while k > 0 && b != v[k] {
            k = border[k - 1];
        }
        if b == v[k] {
            k += 1;
        }
        if k == v.len() {
            out.push(i + 1 - k..i + 1);
            k = border[last];
        }
    }
}

/// Distinct values of one line searched for again in it.
const MAX_REPEATS_SEARCHED: usize = 32;
/// Longer values are masked where they are but not searched for again: a
/// credential is not kilobytes long, and an automaton built from a value
/// that runs to the end of a 300 KB line took minutes.
const MAX_LEN_SEARCHED: usize = 512;

/// Sorted, overlapping and touching ranges joined.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// [`scan_line`] over every line of a text: ranges in the text.
pub fn scan_text(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        out.extend(scan_line(line).into_iter().map(|r| at + r.start..at + r.end));
        at += line.len();
    }
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

/// How far back a line looks for the key whose multi-line value it continues.
const LOOKBACK: usize = 400;

/// A `key:` / `key =` line (YAML block or list item, TOML, env): its key
/// and what follows the separator.
static KEY_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*(?:-\s+)?["']?([A-Za-z_][A-Za-z0-9_.\-]*)["']?\s*(?::(?:\s|$)|=)(.*)$"#).expect("valid regex")
});

/// Does `rest` (a value's text on its key's line) leave the value open on
/// the next lines: empty (the value is below), a block scalar indicator
/// (after any tag or anchor), an unclosed quote or `[`, a TOML `"""`?
fn opens_value(rest: &str) -> bool {
    let mut r = rest.trim();
    // Tags and anchors before the value: `!!str |`, `&pw |`.
    while let Some(after) = r.strip_prefix('!').or_else(|| r.strip_prefix('&')) {
        r = after.split_once(char::is_whitespace).map_or("", |(_, v)| v).trim_start();
    }
    let r = r.split(" #").next().unwrap_or(r).trim_end();
    if r.is_empty() || r.starts_with(['|', '>']) {
        return true;
    }
    let double = r.matches('"').count() - r.matches("\\\"").count();
    let single = r.matches('\'').count() - 2 * r.matches("''").count();
    let brackets = r.matches('[').count() > r.matches(']').count();
    (r.starts_with('"') && double % 2 == 1) || (r.starts_with('\'') && single % 2 == 1) || brackets
}

/// Is line `n` (0-based) of `lines` part of a multi-line credential value:
/// a YAML block scalar (`password: |`, also tagged or anchored), a plain or
/// quoted scalar continued below its key, a value nested under a
/// credential-named key, a TOML multi-line string (`password = """`) or
/// array? A key line itself never is. Looks back at most [`LOOKBACK`] lines,
/// past the value's own lines, to the nearest key line above it.
pub fn continues_secret(lines: &dyn Fn(usize) -> Option<String>, n: usize) -> bool {
    let Some(current) = lines(n) else { return false };
    if current.trim().is_empty() || KEY_LINE.is_match(&current) && !current.trim_start().starts_with(['"', '\'']) {
        return false;
    }
    let cur_indent = indent(&current);
    let mut triple = 0usize;
    for back in 1..=LOOKBACK.min(n) {
        let Some(prev) = lines(n - back) else { return false };
        let t = prev.trim();
        triple += prev.matches("\"\"\"").count() + prev.matches("'''").count();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // TOML: an odd number of triple quotes between here and a credential key's line.
        if triple % 2 == 1 {
            let opener = prev.find("\"\"\"").or_else(|| prev.find("'''")).unwrap_or(0);
            return scan_key_before(&prev[..opener]);
        }
        let Some(caps) = KEY_LINE.captures(&prev) else {
            // A line of the value itself (block scalar, continuation, array item).
            continue;
        };
        let key = caps.get(1).map_or("", |m| m.as_str());
        let rest = caps.get(2).map_or("", |m| m.as_str());
        // `secrets:` lists the names of Docker secrets, not their values.
        let credential = is_credential_key(&normalised(key)) && !key.eq_ignore_ascii_case("secrets");
        if indent(&prev) < cur_indent {
            // The parent: everything below a credential key belongs to it.
            return credential;
        }
        // A key at the same indent: the line continues its value only if
        // the value was left open (an unindented TOML array, a quote).
        return credential && opens_value(rest);
    }
    false
}

fn scan_key_before(text: &str) -> bool {
    let t = text.trim_end().trim_end_matches(['=', ':']).trim_end();
    let key = t.rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',').next().unwrap_or(t);
    is_credential_key(&normalised(key.trim_matches(['"', '\''])))
}

/// Secret values found in a file and exact places, applied to every line
/// and message that is printed.
#[derive(Debug, Default, Clone)]
pub struct Masker {
    /// Absolute byte ranges in the file, sorted by start.
    ranges: Vec<Range<usize>>,
    /// The values searched for, [`VALUES_PER_SEARCHER`] per automaton.
    values: Vec<AhoCorasick>,
    /// Made by [`Self::scanning`]: `ranges` hold what [`scan_line`] finds
    /// on every line of the file.
    lines_scanned: bool,
}

/// Values shorter than this are masked where found, not searched for
/// elsewhere (a one-letter "secret" would mask every word).
const MIN_SEARCHED: usize = 3;

/// Values per automaton of a [`Masker`]. aho-corasick (1.1.5) builds an
/// automaton in time quadratic in its patterns when nearly all of its
/// states end one (values that extend each other, as `v10` ... `v99999`
/// do: the NFA's shuffle follows long chains of swaps for every state):
/// 100,000 such values took 11 s in a debug build, 1.5 s in a release one.
/// Automata of a bounded number of values cost linear time in all, and a
/// printed line is searched by each (the same places are found).
const VALUES_PER_SEARCHER: usize = 1024;

impl Masker {
    /// `ranges` are places in the file's `text`; their texts are also
    /// searched for on every line.
    pub fn new(text: &str, mut ranges: Vec<Range<usize>>, extra_values: impl IntoIterator<Item = String>) -> Self {
        ranges.retain(|r| r.start < r.end && r.end <= text.len());
        ranges.sort_by_key(|r| (r.start, r.end));
        let mut values: Vec<String> = ranges
            .iter()
            .filter_map(|r| text.get(r.clone()))
            .flat_map(|v| {
                // A quoted value is also searched without its quotes.
                let inner = v.trim_matches(['"', '\'']).trim();
                [v.trim().to_owned(), inner.to_owned()]
            })
            .chain(extra_values)
            .filter(|v| v.len() >= MIN_SEARCHED)
            .collect();
        values.sort();
        values.dedup();
        let values = values
            .chunks(VALUES_PER_SEARCHER)
            .map(|chunk| {
                AhoCorasick::builder()
                    // Thousands of values in a large file: a searcher that is
                    // quick to build beats a faster one that takes longer to build.
                    .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
                    .build(chunk)
                    .expect("plain strings build a searcher")
            })
            .collect();
        Self { ranges, values, lines_scanned: false }
    }

    /// For a file no checker could read (it does not parse, it is not
    /// UTF-8): what a line scan finds on every line, plus `ranges`.
    pub fn scanning(text: &str, ranges: Vec<Range<usize>>) -> Self {
        Self::scanning_with(text, ranges, [])
    }

    /// [`Self::scanning`], also searching for `values` (secrets as decoded
    /// from escapes, which the file's text does not hold as written).
    pub fn scanning_with(text: &str, mut ranges: Vec<Range<usize>>, values: impl IntoIterator<Item = String>) -> Self {
        ranges.extend(scan_text(text));
        Self { lines_scanned: true, ..Self::new(text, ranges, values) }
    }

    /// Places to mask in the line `line` that starts at `line_start` in the
    /// file (a whole line, or a part of one).
    pub fn line_masks(&self, line: &str, line_start: usize) -> Vec<Range<usize>> {
        let mut out = self.places(line, line_start);
        out.extend(scan_line(line));
        out
    }

    /// [`Self::line_masks`] of a whole line of the file (without its line
    /// break). A masker made by [`Self::scanning`] scanned every line of
    /// the file once already, and its places hold what the scan found: the
    /// line is not scanned again each time it is shown.
    pub fn whole_line_masks(&self, line: &str, line_start: usize) -> Vec<Range<usize>> {
        if self.lines_scanned { self.places(line, line_start) } else { self.line_masks(line, line_start) }
    }

    /// The known places within the line, and every occurrence of a value.
    fn places(&self, line: &str, line_start: usize) -> Vec<Range<usize>> {
        let line_end = line_start + line.len();
        let first = self.ranges.partition_point(|r| r.end <= line_start);
        let mut out: Vec<Range<usize>> = self.ranges[first..]
            .iter()
            .take_while(|r| r.start < line_end)
            .map(|r| r.start.max(line_start) - line_start..r.end.min(line_end) - line_start)
            .collect();
        out.extend(self.occurrences(line));
        out
    }

    fn occurrences(&self, s: &str) -> Vec<Range<usize>> {
        self.values.iter().flat_map(|ac| ac.find_overlapping_iter(s).map(|m| m.range())).collect()
    }

    /// A message or help text: every occurrence of a secret value, and what
    /// the line scan finds inside `backticks` (where messages quote input).
    /// The scan is not run over the prose itself, which would read
    /// "secrets: create one" as a credential.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut masks = self.occurrences(s);
        let mut parts = s.split('`');
        let mut at = 0;
        let mut quoted = false;
        for part in parts.by_ref() {
            if quoted {
                masks.extend(scan_line(part).into_iter().map(|r| at + r.start..at + r.end));
            }
            at += part.len() + 1;
            quoted = !quoted;
        }
        apply(s, &masks)
    }
}

/// `s` with every byte of every range replaced, a `*` per character.
pub fn apply<'a>(s: &'a str, masks: &[Range<usize>]) -> Cow<'a, str> {
    if masks.is_empty() {
        return Cow::Borrowed(s);
    }
    let mut hidden = vec![false; s.len()];
    for r in masks {
        for h in &mut hidden[r.start.min(s.len())..r.end.min(s.len())] {
            *h = true;
        }
    }
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        if hidden[i] && c != '\n' && c != '\r' {
            out.push('*');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(line: &str) -> String {
        apply(line, &scan_line(line)).into_owned()
    }

    #[test]
    fn credential_keys() {
        for k in [
            "password",
            "PGPASSWORD",
            "db_password",
            "api_key",
            "token",
            "admin_pass",
            "pass",
            "secret",
            "REDISCLI_AUTH",
            "MONGODB_REPLICA_SET_KEY",
            "MEILI_MASTER_KEY",
            "RABBITMQ_ERLANG_COOKIE",
            "SECRET_KEY_BASE",
            "WORDPRESS_AUTH_KEY",
            "MINIO_ROOT_PASSWORD",
        ] {
            assert!(is_credential_key(k), "{k}");
        }
        for k in [
            "user",
            "passive",
            "compass_x",
            "password_file",
            "bypass_x",
            "REGISTRY_AUTH_TOKEN_REALM",
            "REGISTRY_AUTH_TOKEN_SERVICE",
            "REGISTRY_AUTH_TOKEN_ISSUER",
            "DOVECOT_PASS_SCHEME",
            "OAUTH2_TOKEN_URL",
            "JWT_TOKEN_HEADER",
            "ACCESS_TOKEN_LIFETIME",
            "BCRYPT_PASSWORD_COST",
            "SECRET_NAME",
            "OPENAI_MAX_TOKENS",
            "ETCD_INITIAL_CLUSTER_TOKEN",
            "--initial-cluster-token",
        ] {
            assert!(!is_credential_key(k), "{k}");
        }
    }

    /// A number after `-p`/`-P` is a port only for a client known to take
    /// one there: sshpass, mongo and sqlcmd take a password there, and a
    /// numeric password is a password.
    #[test]
    fn a_numeric_password_after_p_is_masked() {
        for (line, want) in [
            ("sshpass -p 123456 ssh db", "sshpass -p ****** ssh db"),
            (
                "      test: [\"CMD\", \"sshpass\", \"-p\", \"2024\", \"ssh\", \"db\"]",
                "      test: [\"CMD\", \"sshpass\", \"-p\", \"****\", \"ssh\", \"db\"]",
            ),
            ("mongosh -u admin -p 31337 db", "mongosh -u admin -p ***** db"),
            ("sqlcmd -S db -U sa -P 12345", "sqlcmd -S db -U sa -P *****"),
            ("pg_isready -p 5432 && sshpass -p 4242 ssh db", "pg_isready -p 5432 && sshpass -p **** ssh db"),
            ("unknown-tool -p 8080", "unknown-tool -p ****"),
            ("psql -h db -c 'select 1' && mysterytool -p 1234", "psql -h db -c 'select 1' && mysterytool -p ****"),
            ("/usr/bin/psql -p 5432 -W", "/usr/bin/psql -p 5432 -W"),
            ("redis-cli -h db -p 6379 ping", "redis-cli -h db -p 6379 ping"),
        ] {
            assert_eq!(masked(line), want, "{line}");
        }
    }

    #[test]
    fn line_scan_hides_values_in_every_shape() {
        for (line, secret) in [
            ("      POSTGRES_PASSWORD: hunter2", "hunter2"),
            ("  - POSTGRES_PASSWORD=hunter2", "hunter2"),
            ("environment: {POSTGRES_PASSWORD: hunter2, USER: x}", "hunter2"),
            ("password = 98765432101", "98765432101"),
            ("password = [\"hunter2\"]", "hunter2"),
            ("postgres.password = \"hunter2", "hunter2"),
            ("\"DB_PASSWORD\": \"hunter2\",", "hunter2"),
            ("command: redis-server --requirepass hunter2", "hunter2"),
            ("test: [\"CMD\", \"mysqladmin\", \"ping\", \"-uroot\", \"-phunter2\"]", "hunter2"),
            ("command: redis-cli -a hunter2 ping", "hunter2"),
            ("command: [\"--password\", \"hunter2\"]", "hunter2"),
            ("DATABASE_URL: postgresql+psycopg2://airflow:hunter2@postgres/airflow", "hunter2"),
            ("url: jdbc:postgresql://db/app?user=app&password=hunter2", "hunter2"),
            ("REPLICATION_PASSWORD: hunter2 # default is hunter2", "hunter2"),
            ("x-db-password: hunter2", "hunter2"),
            ("curl -u admin:hunter2 http://x", "hunter2"),
            ("password = { secret = \"pg\", value = \"hunter2\" }", "hunter2"),
            ("      - POSTGRES_PASSWORD=correct horse hunter2", "hunter2"),
            ("API_TOKEN=abc def hunter2", "hunter2"),
            ("x-db-password: 'it''s hunter2 value'", "hunter2"),
            ("PASSWORD='it'\\''s hunter2'", "hunter2"),
            ("    user admin insecure-password hunter2", "hunter2"),
            ("    stats auth admin:hunter2", "hunter2"),
        ] {
            let shown = masked(line);
            assert!(!shown.contains(secret), "{line:?} -> {shown:?}");
        }
        for line in
            ["image: postgres:16", "password = { secret = \"pg_pw\" }", "POSTGRES_PASSWORD_FILE: /run/secrets/pw"]
        {
            assert_eq!(masked(line), line, "nothing to hide");
        }
        // A port after `-p`/`-P` (PostgreSQL's clients, mysql's `-P`), seen
        // in public stacks' healthchecks: masking it hid every `6432` of the
        // file, published ports in findings included (`****:****`).
        for line in [
            "      test: [\"CMD-SHELL\", \"pg_isready -h 127.0.0.1 -p 6432 || exit 1\"]",
            "      test: [\"CMD\", \"pg_isready\", \"-p\", \"5431\"]",
            "    command: psql -h db -p 5432 -U app",
            "    command: mysqladmin ping -h db -P 3306",
        ] {
            assert_eq!(masked(line), line, "a port is not a password");
        }
        assert_eq!(masked("sshpass -p hunter2 ssh db"), "sshpass -p ******* ssh db");
        assert_eq!(masked("mysql -p123456 app"), "mysql -p****** app", "glued to -p: mysql's password");
        assert_eq!(masked("POSTGRES_PASSWORD: ${PW}"), "POSTGRES_PASSWORD: ${PW}");
        assert_eq!(masked("PASSWORD: ${PW:-hunter2}"), "PASSWORD: ${PW:-*******}");
        assert_eq!(masked("PASSWORD: \"${PW:?set it}\""), "PASSWORD: \"${PW:?set it}\"");
    }

    #[test]
    fn continuation_lines() {
        let text = ["a = 1", "password = \"\"\"", "hunter2", "\"\"\"", "b = 2"];
        let get = |i: usize| text.get(i).map(|s| (*s).to_owned());
        assert!(continues_secret(&get, 2));
        assert!(!continues_secret(&get, 4));
        let yaml = ["services:", "  db:", "    environment:", "      PASSWORD: |", "        hunter2", "      USER: x"];
        let get = |i: usize| yaml.get(i).map(|s| (*s).to_owned());
        assert!(continues_secret(&get, 4));
        assert!(!continues_secret(&get, 5));
        assert!(!continues_secret(&get, 2));
        for shape in [
            &["    environment:", "      POSTGRES_PASSWORD:", "        hunter2"][..],
            &["    environment:", "      POSTGRES_PASSWORD: first", "        hunter2"],
            &["  x-password: !!str |", "    hunter2"],
            &["  x-password: &pw |", "    hunter2"],
            &["  x-password: 'first", "    hunter2'"],
            &["  x-api-token: |", "    line1", "      hunter2"],
            &["password = [", "  \"a\",", "  \"hunter2\","],
            &["password = [", "\"hunter2\","],
        ] {
            let get = |i: usize| shape.get(i).map(|s| (*s).to_owned());
            assert!(continues_secret(&get, shape.len() - 1), "{shape:?}");
        }
        let toml = ["password = [\"a\",", "  \"b\" ]", "database = \"app\""];
        let get = |i: usize| toml.get(i).map(|s| (*s).to_owned());
        assert!(!continues_secret(&get, 2), "a key line is never a continuation");
    }

    /// A value found on a line is searched for again in it: every place, the
    /// overlapping ones too, as a comparison at every offset finds them.
    #[test]
    fn every_place_of_a_value_in_its_line() {
        let lines = ["aaaaa", "abababab", "xabcabcabx", "ééaéé aé", "hunter2 hunter2hunter2", "", "ab"];
        let values = ["aaa", "aa", "abab", "abcab", "éa", "é", "hunter2", "a", "aba"];
        for line in lines {
            for value in values {
                let mut got = Vec::new();
                occurrences_of(line, value, &mut got);
                let want: Vec<Range<usize>> = (0..line.len())
                    .filter(|&i| line.as_bytes()[i..].starts_with(value.as_bytes()))
                    .map(|i| i..i + value.len())
                    .collect();
                assert_eq!(got, want, "{value:?} in {line:?}");
            }
        }
        assert_eq!(masked("x-db-password: aaa # not aaaa"), "x-db-password: *** # not ****");
    }

    #[test]
    fn masker_hides_every_occurrence() {
        let text = "a: hunter2\nb: x hunter2 y\n";
        let m = Masker::new(text, std::iter::once(3..10).collect(), []);
        let second = &text[11..text.len() - 1];
        assert_eq!(apply(second, &m.line_masks(second, 11)), "b: x ******* y");
        assert_eq!(m.text("the value hunter2 leaked"), "the value ******* leaked");
    }
}
