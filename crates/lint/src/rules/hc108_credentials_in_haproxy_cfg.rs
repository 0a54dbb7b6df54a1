use super::{Check, Rule};
use crate::finding::{Family, Hit, Severity};
use crate::secrets::is_literal_secret;
use crate::source::Source;

pub const RULE: Rule = Rule {
    code: "HC108",
    name: "credentials-in-haproxy-cfg",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "haproxy.cfg holds a literal password (`stats auth`, `insecure-password`, an `Authorization` header)",
    doc: r#"
## What it does
Reads haproxy.cfg files (found by the directory walk or named by a stack's
`configs: ... file:`) and reports a password written in them:
`stats auth USER:PASSWORD`, `user NAME insecure-password PASSWORD` in a
`userlist`, and the credential of an `Authorization` or
`Proxy-Authorization` header that HAProxy sends or sets (`http-check send
hdr Authorization "Basic ..."`, `http-request set-header Authorization ...`,
and the request line of `option httpchk` before HAProxy 2.2:
`HTTP/1.1\r\nAuthorization:\ Basic\ ...`). HAProxy's word rules apply:
quotes, backslash escapes, and `#` starting a comment. A variable outside
double quotes (`stats auth admin:${PW}`) is reported too: HAProxy expands
variables only inside them, so that credential is the literal text. A
value HAProxy takes from its environment (`"${STATS_PASSWORD}"`) or from a
sample expression (`%[...]`) is not reported. `user NAME password HASH` (a crypt(3) hash) is not
reported.

## Why it matters
haproxy.cfg is a Docker config: readable by every task that mounts it, kept
in the swarm's raft log, shown by `docker config inspect`, and usually
committed to the repository beside the stack. A password there is a password
for whoever reads any of them. The statistics page and the runtime API it
guards can disable servers and drain the database.

## Example
```
listen stats
    bind *:8404
    stats enable
    stats auth admin:hunter2
```

## Fix
Put the users in a `userlist` with `password` set to a crypt(3) hash
(`openssl passwd -6`), in a file of its own created as a Docker secret and
loaded as a second configuration (`haproxy -f /usr/local/etc/haproxy/haproxy.cfg
-f /run/secrets/haproxy_stats_users`), then `stats http-request auth unless
{ http_auth(USERLIST) }`. This is what `hacompile build` emits. Or take the
password from the environment: `stats auth "admin:${STATS_PASSWORD}"`.
"#,
    check: Check::Haproxy(check),
};

/// HAProxy's words of a line (comments removed): where each one's text
/// starts and the text, without the quotes of a word quoted whole
/// (`"pa ss"` is one word, `pa ss`). Outside single quotes a backslash
/// escapes the next character, a space too (`pa\ ss` is one word).
fn words(code: &str) -> Vec<(usize, &str)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut quoted_whole = None;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i] == b'\\' {
                i += 2;
            } else if b[i] == b'"' || b[i] == b'\'' {
                let q = b[i];
                let open = i;
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if q == b'"' && b[i] == b'\\' { 2 } else { 1 };
                }
                let close = i.min(b.len());
                i = (i + 1).min(b.len());
                if open == start && (i >= b.len() || b[i].is_ascii_whitespace()) {
                    quoted_whole = Some((open + 1, close));
                }
            } else {
                i += 1;
            }
        }
        let end = i.min(b.len());
        let (from, to) = quoted_whole.unwrap_or((start, end));
        if let Some(text) = code.get(from..to) {
            out.push((from, text));
        }
    }
    out
}

/// The code of a line: up to a `#` outside quotes and not escaped.
fn code_of(line: &str) -> &str {
    unescaped(line).find(|&(_, c, quote)| c == '#' && quote.is_none()).map_or(line, |(i, ..)| &line[..i])
}

/// The characters of a line as HAProxy's quoting reads them: each one's
/// offset, the character, and the quote in effect after it (`"` or `'`, or
/// none). A backslash outside single quotes escapes the next character:
/// both are left out.
fn unescaped(line: &str) -> impl Iterator<Item = (usize, char, Option<char>)> + '_ {
    let mut quote = None;
    let mut escaped = false;
    line.char_indices().filter_map(move |(i, c)| {
        if escaped {
            escaped = false;
            return None;
        }
        match (quote, c) {
            (None | Some('"'), '\\') => {
                escaped = true;
                return None;
            }
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        Some((i, c, quote))
    })
}

/// Dynamic in HAProxy: `${VAR}` (environment, in double quotes) or `%[...]`.
fn dynamic(value: &str) -> bool {
    value.contains("%[") || !is_literal_secret(value)
}

/// Is there a variable (`$VAR`, `${VAR}`) in `value`, which starts at `at`
/// in the line's `code`, outside double quotes? HAProxy expands variables
/// only inside them, so the credential is the variable's literal text
/// (and whatever is written around it).
fn unexpanded(code: &str, at: usize, value: &str) -> bool {
    let b = value.as_bytes();
    (0..b.len()).any(|k| {
        b[k] == b'$'
            && b.get(k + 1).is_some_and(|&c| c == b'{' || c == b'_' || c.is_ascii_alphabetic())
            && !in_double_quotes(code, at + k)
    })
}

/// Is byte `pos` of a line's code inside double quotes (HAProxy's rules:
/// backslash escapes outside single quotes)?
fn in_double_quotes(code: &str, pos: usize) -> bool {
    unescaped(code).take_while(|&(i, ..)| i < pos).last().and_then(|(.., quote)| quote) == Some('"')
}

/// The finding for a credential with a variable HAProxy does not expand:
/// the whole credential is its place (and masked), not only the variable.
fn unexpanded_hit(span: std::ops::Range<usize>) -> Hit {
    Hit::new(
        span,
        "HAProxy expands a variable only inside double quotes: unquoted, this credential is the variable's name as literal text",
    )
    .help("put the whole word in double quotes, variable included (`stats auth \"admin:${...}\"`)")
}

/// Spaces, and spaces escaped with a backslash, at the start of `s`: their length.
fn separator(s: &str) -> usize {
    let mut n = 0;
    loop {
        let rest = &s[n..];
        if rest.starts_with("\\ ") {
            n += 2;
        } else if rest.starts_with([' ', '\t']) {
            n += 1;
        } else {
            return n;
        }
    }
}

/// The credential of an `Authorization` value: (offset in `value`, text),
/// after a scheme (`Basic`, `Bearer`, ...) when there is one; None when
/// the value is a scheme alone. Ends at a space or an escape (`\r\n`).
fn credential(value: &str) -> Option<(usize, &str)> {
    let lower = value.to_ascii_lowercase();
    let mut at = 0;
    for scheme in ["basic", "bearer", "token", "digest", "negotiate"] {
        if lower.starts_with(scheme) {
            let sep = separator(&value[scheme.len()..]);
            let rest = &value[scheme.len() + sep..];
            if rest.trim_start().is_empty() || rest.starts_with(['\\', '\r', '\n']) {
                return None;
            }
            if sep > 0 {
                at = scheme.len() + sep;
            }
            break;
        }
    }
    let rest = &value[at..];
    let len = rest.find(|c: char| c.is_whitespace() || c == '\\').unwrap_or(rest.len());
    (len > 0).then(|| (at, &rest[..len]))
}

/// The finding for a literal credential in an `Authorization` header.
fn authorization_hit(span: std::ops::Range<usize>) -> Hit {
    Hit::new(span, "an `Authorization` header in haproxy.cfg carries a literal credential")
        .help("take it from the environment (`\"Basic ${CHECK_AUTH}\"`, filled from a Docker secret at start), or check an endpoint that needs no credential (Patroni's GET /primary and /replica need none)")
}

fn is_authorization(name: &str) -> bool {
    name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("proxy-authorization")
}

fn check(src: &Source, out: &mut Vec<Hit>) {
    let mut offset = 0;
    for line in src.text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let code = code_of(line);
        let words = words(code);
        let word = |i: usize| words.get(i).map(|(_, w)| *w);
        match (word(0), word(1)) {
            (Some("stats"), Some("auth")) => {
                let Some(&(i, value)) = words.get(2) else { continue };
                let Some((user, password)) = value.split_once(':') else { continue };
                let from = start + i + user.len() + 1;
                if unexpanded(code, i + user.len() + 1, password) {
                    out.push(unexpanded_hit(from..from + password.len()));
                    continue;
                }
                if password.is_empty() || dynamic(password) {
                    continue;
                }
                out.push(
                    Hit::new(from..from + password.len(), "`stats auth` gives the statistics page a literal password")
                        .help("keep the users in a userlist with crypt(3) hashes, in a file created as a Docker secret and loaded with a second `-f`; or take the password from the environment (`${STATS_PASSWORD}` inside double quotes)"),
                );
                continue;
            }
            (Some("user"), Some(_)) if word(2) == Some("insecure-password") => {
                let Some(&(i, value)) = words.get(3) else { continue };
                if unexpanded(code, i, value) {
                    out.push(unexpanded_hit(start + i..start + i + value.len()));
                    continue;
                }
                if value.is_empty() || dynamic(value) {
                    continue;
                }
                let from = start + i;
                out.push(
                    Hit::new(from..from + value.len(), "`insecure-password` keeps a userlist password in plain text")
                        .help("use `password` with a crypt(3) hash (`openssl passwd -6`), in a userlist file created as a Docker secret"),
                );
                continue;
            }
            // The request line before HAProxy 2.2: `option httpchk GET /x
            // HTTP/1.1\r\nAuthorization:\ Basic\ ...`.
            (Some("option"), Some("httpchk")) => {
                let lower = code.to_ascii_lowercase();
                let Some(k) = lower.find("authorization:") else { continue };
                let after = k + "authorization:".len();
                let value_at = after + separator(&code[after..]);
                let Some((c, cred)) = credential(&code[value_at..]) else { continue };
                if dynamic(cred) {
                    continue;
                }
                let from = start + value_at + c;
                out.push(authorization_hit(from..from + cred.len()));
                continue;
            }
            _ => {}
        }
        // `hdr Authorization "Basic ..."`, `set-header Authorization ...`.
        let Some(k) = words.iter().position(|(_, w)| is_authorization(w)) else { continue };
        if k == 0 || !matches!(word(k - 1), Some("hdr" | "set-header" | "add-header")) {
            continue;
        }
        let Some(&(i, value)) = words.get(k + 1) else { continue };
        let Some((c, cred)) = credential(value) else { continue };
        if unexpanded(code, i + c, cred) {
            out.push(unexpanded_hit(start + i + c..start + i + c + cred.len()));
            continue;
        }
        if dynamic(cred) {
            continue;
        }
        let from = start + i + c;
        out.push(authorization_hit(from..from + cred.len()));
    }
}

#[cfg(test)]
mod tests {
    use crate::source::Source;

    /// The passwords reported, as written.
    fn found(cfg: &str) -> Vec<String> {
        let src = Source::new("haproxy.cfg", cfg.to_owned());
        let mut out = Vec::new();
        super::check(&src, &mut out);
        out.iter().map(|h| cfg[h.span.clone()].to_owned()).collect()
    }

    #[test]
    fn literal_passwords_are_found_at_their_place() {
        assert_eq!(found("listen stats\n    stats auth admin:hunter2\n"), ["hunter2"]);
        assert_eq!(found("listen s\n  stats auth \"admin:pa ss\"\n"), ["pa ss"], "a quoted word keeps its spaces");
        assert_eq!(found("listen s\n  stats auth admin:pw#1 # a comment\n"), ["pw"], "HAProxy ends the word at `#`");
        assert_eq!(found("listen s\n  stats auth 'ops:s3cr:et'\n"), ["s3cr:et"]);
        assert_eq!(found("userlist u\n  user ops insecure-password Tr0ub4dor groups admin\n"), ["Tr0ub4dor"]);
        assert_eq!(
            found("backend b\n  http-check send meth GET uri /x hdr Authorization \"Basic YWRtaW46aHVudGVyMg==\"\n"),
            ["YWRtaW46aHVudGVyMg=="]
        );
        assert_eq!(
            found("backend b\n  http-request set-header Authorization Bearer-abc123def\n"),
            ["Bearer-abc123def"]
        );
    }

    /// HAProxy reads `\ ` outside quotes as a space inside the word: the
    /// whole word is the value, all of it masked (review: the part after
    /// the escape was printed).
    #[test]
    fn escaped_spaces_keep_the_word_whole() {
        assert_eq!(found("listen s\n  stats auth admin:pa\\ ss\n"), ["pa\\ ss"]);
        assert_eq!(
            found("backend b\n  http-request set-header Authorization Basic\\ YWRtaW46aHVudGVyMg==\n"),
            ["YWRtaW46aHVudGVyMg=="]
        );
        assert_eq!(found("listen s\n  stats auth admin:pw\\#1\n"), ["pw\\#1"], "an escaped # is no comment");
    }

    /// The pre-2.2 `option httpchk` request line, and proxy credentials.
    #[test]
    fn httpchk_request_headers_and_proxy_authorization() {
        assert_eq!(
            found(
                "backend b\n  option httpchk GET /health HTTP/1.1\\r\\nAuthorization:\\ Basic\\ YWRtaW46aHVudGVyMg==\n"
            ),
            ["YWRtaW46aHVudGVyMg=="]
        );
        assert_eq!(
            found(
                "backend b\n  option httpchk GET /h HTTP/1.0\\r\\nAuthorization:\\ Bearer\\ tok3n-value\\r\\nHost:\\ x\n"
            ),
            ["tok3n-value"]
        );
        assert_eq!(
            found("backend b\n  http-request set-header Proxy-Authorization \"Basic cHJveHk6cHc=\"\n"),
            ["cHJveHk6cHc="]
        );
    }

    #[test]
    fn a_scheme_alone_is_no_credential() {
        assert!(found("backend b\n  http-request set-header Authorization \"Basic\"\n").is_empty());
        assert!(found("backend b\n  option httpchk GET / HTTP/1.1\\r\\nAuthorization:\\ Basic\n").is_empty());
    }

    /// HAProxy expands variables only inside double quotes
    /// (configuration.txt, 2.3): unquoted, the credential is the literal text.
    #[test]
    fn a_variable_outside_double_quotes_is_its_literal_text() {
        assert_eq!(found("listen s\n  stats auth admin:${STATS_PASSWORD}\n"), ["${STATS_PASSWORD}"]);
        assert_eq!(found("listen s\n  stats auth 'admin:$STATS_PASSWORD'\n"), ["$STATS_PASSWORD"]);
        assert_eq!(found("userlist u\n  user ops insecure-password ${OPS_PW}\n"), ["${OPS_PW}"]);
        assert_eq!(found("backend b\n  http-request set-header Authorization Basic\\ ${AUTH}\n"), ["${AUTH}"]);
        // The whole credential is the finding's place, so all of it is
        // masked: a literal written around the variable too.
        assert_eq!(found("listen s\n  stats auth admin:pre-${PW}-Zq9x\n"), ["pre-${PW}-Zq9x"]);
        assert_eq!(
            found("backend b\n  http-request set-header Authorization Basic\\ YWRtaW46c2VjcmV0${X}\n"),
            ["YWRtaW46c2VjcmV0${X}"]
        );
        assert!(found("backend b\n  http-request set-header Authorization \"Basic ${AUTH}\"\n").is_empty());
        assert!(found("listen s\n  stats auth admin:\"${STATS_PASSWORD}\"\n").is_empty(), "quoted in the word");
    }

    #[test]
    fn references_hashes_and_comments_are_not_reported() {
        assert!(found("listen s\n  stats auth \"admin:${STATS_PASSWORD}\"\n").is_empty());
        assert!(found("userlist u\n  user ops password $6$salt$hash\n").is_empty());
        assert!(found("listen s\n  # stats auth admin:hunter2\n").is_empty());
        assert!(found("backend b\n  http-request set-header Authorization %[env(AUTH)]\n").is_empty());
        assert!(found("listen s\n  stats auth admin\n").is_empty());
        assert!(found("backend b\n  http-request set-header X-Authorization-Mode on\n").is_empty());
    }
}
