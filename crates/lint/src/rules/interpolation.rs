//! Compose variable interpolation, as `docker stack deploy` and
//! `docker compose` apply it to a value before anything runs: `${X}`, `$X`,
//! `${X:-default}`, `${X-default}`, `${X:?error}`, `${X:+alternate}`, and `$$`
//! for a literal `$`. Rules judge what the file ships when no variable is
//! set: the defaults.

use std::borrow::Cow;
use std::ops::Range;

/// Defaults nest (`${A:-${B:-x}}`); real files go two or three deep. Deeper
/// text is taken as written, which keeps hostile input linear.
const MAX_NESTING: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `${X}` or `$X`.
    Plain,
    /// `${X:-d}` / `${X-d}`: `d` when unset.
    Default,
    /// `${X:?e}` / `${X?e}`: the deploy fails when unset.
    Required,
    /// `${X:+a}` / `${X+a}`: `a` when set, nothing when unset.
    Alternate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text taken as written (its range in the value).
    Text(Range<usize>),
    /// `$$`: one literal `$`.
    Dollar,
    /// A variable: its name's range, the operator, and the range of the
    /// operator's argument (empty for [`Op::Plain`]).
    Var { name: Range<usize>, op: Op, arg: Range<usize> },
}

/// The pieces of `v` in order. Malformed syntax (`${` never closed, a bad
/// name) is text, as written.
pub fn pieces(v: &str) -> Vec<Piece> {
    let b = v.as_bytes();
    let closes = brace_pairs(b);
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    let flush = |out: &mut Vec<Piece>, from: usize, to: usize| {
        if from < to {
            out.push(Piece::Text(from..to));
        }
    };
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                flush(&mut out, text_start, i);
                out.push(Piece::Dollar);
                i += 2;
                text_start = i;
            }
            Some(b'{') => {
                let Some(close) = closes.binary_search_by_key(&i, |p| p.0).ok().map(|k| closes[k].1) else {
                    i += 1;
                    continue;
                };
                let inner = i + 2..close;
                let name_end = name_end(b, inner.start);
                if name_end == inner.start {
                    i += 1;
                    continue;
                }
                let rest = &v[name_end..close];
                let (op, skip) = if rest.is_empty() {
                    (Op::Plain, 0)
                } else if rest.starts_with(":-") {
                    (Op::Default, 2)
                } else if rest.starts_with('-') {
                    (Op::Default, 1)
                } else if rest.starts_with(":?") {
                    (Op::Required, 2)
                } else if rest.starts_with('?') {
                    (Op::Required, 1)
                } else if rest.starts_with(":+") {
                    (Op::Alternate, 2)
                } else if rest.starts_with('+') {
                    (Op::Alternate, 1)
                } else {
                    i += 1;
                    continue;
                };
                flush(&mut out, text_start, i);
                let arg = if op == Op::Plain { close..close } else { name_end + skip..close };
                out.push(Piece::Var { name: inner.start..name_end, op, arg });
                i = close + 1;
                text_start = i;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                flush(&mut out, text_start, i);
                let end = name_end(b, i + 1);
                out.push(Piece::Var { name: i + 1..end, op: Op::Plain, arg: end..end });
                i = end;
                text_start = i;
            }
            _ => i += 1,
        }
    }
    flush(&mut out, text_start, b.len());
    out
}

/// Every `${` (its `$`) with the `}` that closes it, nested ones counted,
/// sorted by the `$`: one pass, so unclosed braces cost nothing extra.
fn brace_pairs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut open = Vec::new();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                open.push(i);
                i += 1;
            }
            b'}' => {
                if let Some(o) = open.pop() {
                    pairs.push((o, i));
                }
            }
            _ => {}
        }
        i += 1;
    }
    pairs.sort_unstable();
    pairs
}

fn name_end(b: &[u8], from: usize) -> usize {
    match b.get(from) {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            from + b[from..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
        }
        _ => from,
    }
}

/// Does `v` contain any interpolation (`$`)? The cheap test callers run first.
pub fn has_interpolation(v: &str) -> bool {
    v.contains('$')
}

/// The value the deploy produces when no variable is set, when every
/// variable has a default: `${IMG:-postgres:16}` is `postgres:16`. `None`
/// when a variable has no default, or only an empty one (the value is
/// decided at deploy time), or the deploy would fail (`${X:?e}`).
pub fn with_defaults(v: &str) -> Option<Cow<'_, str>> {
    if !has_interpolation(v) {
        return Some(Cow::Borrowed(v));
    }
    let mut out = String::with_capacity(v.len());
    resolve_into(v, 0, &mut out, None).then_some(Cow::Owned(out))
}

/// Like [`with_defaults`], but a variable without a default (or a required
/// one) reads as `unknown`: for questions where the shape matters more than
/// the value (`${PORT}:80` has no host address whatever `PORT` is).
pub fn with_defaults_or<'v>(v: &'v str, unknown: &str) -> Option<Cow<'v, str>> {
    if !has_interpolation(v) {
        return Some(Cow::Borrowed(v));
    }
    let mut out = String::with_capacity(v.len());
    resolve_into(v, 0, &mut out, Some(unknown)).then_some(Cow::Owned(out))
}

fn resolve_into(v: &str, depth: usize, out: &mut String, unknown: Option<&str>) -> bool {
    if depth > MAX_NESTING {
        out.push_str(v);
        return true;
    }
    for p in pieces(v) {
        match p {
            Piece::Text(r) => out.push_str(&v[r]),
            Piece::Dollar => out.push('$'),
            Piece::Var { op: Op::Default, arg, .. } if !arg.is_empty() => {
                if !resolve_into(&v[arg], depth + 1, out, unknown) {
                    return false;
                }
            }
            Piece::Var { .. } => match unknown {
                Some(u) => out.push_str(u),
                None => return false,
            },
        }
    }
    true
}

/// The text a value ships literally, outside any variable: `hunter2$X` ships
/// `hunter2`, `pa$$w0rd` ships `pa$w0rd`, `${PW:-x}` ships nothing here
/// (its default is in [`defaults`]).
pub fn literal_text(v: &str) -> Cow<'_, str> {
    if !has_interpolation(v) {
        return Cow::Borrowed(v);
    }
    let mut out = String::new();
    for p in pieces(v) {
        match p {
            Piece::Text(r) => out.push_str(&v[r]),
            Piece::Dollar => out.push('$'),
            Piece::Var { .. } => {}
        }
    }
    Cow::Owned(out)
}

/// The literal defaults and alternates in `v` (ranges in `v`), nested ones
/// included: what ships when the variables are unset (or, for `:+`, set).
pub fn defaults(v: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    if has_interpolation(v) {
        collect_defaults(v, 0, 0, &mut out);
    }
    out
}

fn collect_defaults(v: &str, base: usize, depth: usize, out: &mut Vec<Range<usize>>) {
    if depth > MAX_NESTING {
        return;
    }
    for p in pieces(v) {
        if let Piece::Var { op: Op::Default | Op::Alternate, arg, .. } = p {
            let inner = &v[arg.clone()];
            if !has_interpolation(inner) {
                if !inner.is_empty() {
                    out.push(base + arg.start..base + arg.end);
                }
                continue;
            }
            // `${A:-${B:-x}}`, `${A:-prefix${B}}`: the literal parts of the default.
            for q in pieces(inner) {
                if let Piece::Text(r) = q {
                    out.push(base + arg.start + r.start..base + arg.start + r.end);
                }
            }
            collect_defaults(inner, base + arg.start, depth + 1, out);
        }
    }
}

/// Splits a short-syntax volume or port (`SRC:DST[:OPTS]`) on the colons
/// outside `${...}` (whose `:-` is not a separator).
pub fn split_colons(v: &str) -> Vec<&str> {
    let b = v.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth > 0 => depth -= 1,
            b':' if depth == 0 => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&v[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_defaults() {
        assert_eq!(with_defaults("${IMG:-postgres:latest}").as_deref(), Some("postgres:latest"));
        assert_eq!(with_defaults("${R:-docker.io}/pg:${T-16}").as_deref(), Some("docker.io/pg:16"));
        assert_eq!(with_defaults("${A:-${B:-x}}").as_deref(), Some("x"));
        assert_eq!(with_defaults("${IMG}"), None);
        assert_eq!(with_defaults("${IMG:-}"), None);
        assert_eq!(with_defaults("${IMG:?set it}"), None);
        assert_eq!(with_defaults("plain").as_deref(), Some("plain"));
        assert_eq!(with_defaults("a$$b").as_deref(), Some("a$b"));
        assert_eq!(with_defaults_or("${PORT}:80", "0").as_deref(), Some("0:80"));
        assert_eq!(with_defaults_or("${P:-8080}:80", "0").as_deref(), Some("8080:80"));
        assert_eq!(with_defaults_or("${U:?user}:${P:-pw}", "?").as_deref(), Some("?:pw"));
    }

    #[test]
    fn literal_text_and_defaults() {
        assert_eq!(literal_text("hunter2$SUFFIX"), "hunter2");
        assert_eq!(literal_text("pa$$w0rd"), "pa$w0rd");
        assert_eq!(literal_text("${PW:-}"), "");
        assert_eq!(literal_text("\"${PW}\""), "\"\"");
        assert_eq!(literal_text("${broken"), "${broken");
        let v = "${PW:-hunter2}";
        assert_eq!(defaults(v).iter().map(|r| &v[r.clone()]).collect::<Vec<_>>(), ["hunter2"]);
        let v = "${A:-${B:-admin}}";
        assert_eq!(defaults(v).iter().map(|r| &v[r.clone()]).collect::<Vec<_>>(), ["admin"]);
        assert!(defaults("${PW:-}").is_empty());
        assert!(defaults("${PW:?required}").is_empty());
    }

    #[test]
    fn splits_outside_braces() {
        assert_eq!(
            split_colons("${SOCK:-/var/run/docker.sock}:/var/run/docker.sock:ro"),
            ["${SOCK:-/var/run/docker.sock}", "/var/run/docker.sock", "ro"]
        );
        assert_eq!(split_colons("a:b"), ["a", "b"]);
    }

    #[test]
    fn hostile_nesting_is_linear_enough() {
        let v = "${A:-".repeat(5000) + &"}".repeat(5000);
        let unclosed = "${".repeat(200_000);
        let t = std::time::Instant::now();
        let _ = with_defaults(&v);
        let _ = defaults(&v);
        let _ = with_defaults(&unclosed);
        let _ = literal_text(&unclosed);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
