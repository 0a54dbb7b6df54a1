use std::sync::LazyLock;

use regex::Regex;

use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::{is_credential_key, is_literal_secret, is_reference};

pub const RULE: Rule = Rule {
    code: "HC104",
    name: "secret-in-command",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A command, entrypoint or healthcheck passes a literal password",
    doc: r#"
## What it does
Reports literal credentials in `command`, `entrypoint` and `healthcheck.test`:
`PGPASSWORD=x psql ...`, `--password=x`, `--password x`, `password=x` in a
connection string, `-u user:x` (curl). Values read at run time
(`$$(cat /run/secrets/pw)`, `$PGPASSWORD`) are not reported.

## Why it matters
Command lines are visible to every process on the host (`ps`), in
`docker inspect`, in the task history of `docker service ps`, and in the file.

## Example
```yaml
healthcheck:
  test: ["CMD-SHELL", "PGPASSWORD=hunter2 psql -h 127.0.0.1 -U app -c 'select 1'"]
```

## Fix
Read the secret file at run time (`PGPASSWORD="$$(cat /run/secrets/pw)"`), or
use a check that needs no password (`pg_isready`).
"#,
    check: Check::Stack(check),
};

static ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(?:^|[\s;'"(])([a-z_][a-z0-9_]*)=("[^"]*"|'[^']*'|[^\s'";)]+)"#).expect("valid regex")
});
/// `--name=value`, `--name value`, `-name=value`: the name is judged by
/// [`is_credential_key`] (so `--admin-password`, `--requirepass`,
/// `--masterauth`, `-rpcpassword` all count).
static FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:^|\s)--?([A-Za-z][A-Za-z0-9_.-]*)(?:=|\s+)("[^"]*"|'[^']*'|[^\s'";-][^\s'";]*)"#)
        .expect("valid regex")
});
/// mysql's password glued to `-p` (only where a mysql client is in the command).
static MYSQL_P: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:^|\s)-p([^\s-]\S*)").expect("valid regex"));
const MYSQL_CLIENTS: &[&str] =
    &["mysql", "mysqladmin", "mysqldump", "mysqlcheck", "mysqlsh", "mariadb", "mariadb-admin", "mariadb-dump"];
static CURL_USER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?:^|\s)(?:-u|--user)\s+[^\s:]+:([^\s'"]+)"#).expect("valid regex"));

/// Ranges (within `text`) of literal credentials.
fn literal_secrets(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let literal = |v: &str| {
        let v = v.trim_matches(['"', '\'']);
        is_literal_secret(v) && !is_reference(v) && !v.starts_with('$')
    };
    for c in ASSIGN.captures_iter(text) {
        if let (Some(k), Some(v)) = (c.get(1), c.get(2))
            && is_credential_key(k.as_str())
            && literal(v.as_str())
        {
            out.push(v.range());
        }
    }
    for c in FLAG.captures_iter(text) {
        if let (Some(name), Some(v)) = (c.get(1), c.get(2))
            && is_credential_key(&name.as_str().replace(['-', '.'], "_"))
            && literal(v.as_str())
            && !v.as_str().starts_with(['/', '.', '~'])
        {
            out.push(v.range());
        }
    }
    for c in CURL_USER.captures_iter(text) {
        if let Some(v) = c.get(1)
            && literal(v.as_str())
        {
            out.push(v.range());
        }
    }
    let has_mysql = text
        .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|')
        .any(|w| MYSQL_CLIENTS.contains(&w.rsplit('/').next().unwrap_or(w)));
    if has_mysql {
        for c in MYSQL_P.captures_iter(text) {
            if let Some(v) = c.get(1)
                && literal(v.as_str())
            {
                out.push(v.range());
            }
        }
    }
    out.sort_by_key(|r| r.start);
    out.dedup();
    out
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for path in [&["command"][..], &["entrypoint"], &["healthcheck", "test"]] {
            let Some(node) = cx.at(svc.node, path) else { continue };
            let mut parts = Vec::new();
            cx.scalars_below(node, &mut parts);
            // List form: `["--password", "x"]` is one flag split in two.
            let pairs = parts.windows(2).filter_map(|w| {
                let flag = cx.doc.scalar(w[0])?;
                let name = flag.strip_prefix("--").or_else(|| flag.strip_prefix('-'))?;
                (!name.contains('=') && is_credential_key(&name.replace(['-', '.'], "_"))).then_some(w[1])
            });
            let mut spans: Vec<std::ops::Range<usize>> = pairs
                .filter(|v| {
                    cx.doc.scalar(*v).is_some_and(|t| is_literal_secret(t) && !t.starts_with(['$', '-', '/', '.']))
                })
                .map(|v| cx.span(v))
                .collect();
            for part in &parts {
                let Some(text) = cx.doc.scalar(*part) else { continue };
                let span = cx.span(*part);
                let raw = &cx.src.text[span.clone()];
                for r in literal_secrets(text) {
                    let needle = &text[r.clone()];
                    spans
                        .push(raw.find(needle).map_or(span.clone(), |i| span.start + i..span.start + i + needle.len()));
                }
            }
            for span in spans {
                out.push(
                    Hit::new(span, format!("`{}` of service `{}` passes a literal credential", path.join("."), svc.name))
                        .help("read it from the secret file at run time, e.g. `PGPASSWORD=\"$$(cat /run/secrets/pw)\"`, or use a check that needs none (`pg_isready`)"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::literal_secrets;

    #[test]
    fn finds_literals_not_references() {
        let t = "PGPASSWORD=hunter2 psql --password=x2 -c 'select 1'";
        let found: Vec<&str> = literal_secrets(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(found, ["hunter2", "x2"]);
        assert!(literal_secrets("PGPASSWORD=\"$(cat /run/secrets/pw)\" psql").is_empty());
        assert!(literal_secrets("pg_isready -U \"$$(cat /run/secrets/u)\" -d app").is_empty());
        assert!(literal_secrets("curl -u admin:$PW http://x").is_empty());
        assert_eq!(literal_secrets("curl -u admin:s3cret http://x").len(), 1);
        let t = "redis-server --requirepass hunter2 --masterauth x9 --port 6379";
        let found: Vec<&str> = literal_secrets(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(found, ["hunter2", "x9"]);
        assert_eq!(literal_secrets("mysqladmin ping -h 127.0.0.1 -uroot -phunter2").len(), 1);
        assert!(literal_secrets("psql -p 5432 -h db").is_empty(), "-p is a port outside mysql");
        assert!(literal_secrets("app --password-file /run/secrets/pw").is_empty());
    }
}
