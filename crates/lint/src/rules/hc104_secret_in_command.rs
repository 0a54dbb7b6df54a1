use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::{credential_defaults, is_credential_key, is_literal_secret};
use crate::yaml::NodeId;

pub const RULE: Rule = Rule {
    code: "HC104",
    name: "secret-in-command",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A command, entrypoint or healthcheck passes a literal password",
    doc: r#"
## What it does
Reports literal credentials in `command`, `entrypoint` and `healthcheck.test`,
in the string and the exec (list) form and in scripts run by `sh -c` or
`CMD-SHELL`: `PGPASSWORD=x psql ...`, `--password=x`, `--password x`,
`--requirepass x`, `password=x` in a connection string, `-u user:x` (curl),
and the short flags of the clients that take a password: mysql's glued
`-px`, `mongosh -p x`, `redis-cli -a x`, `sshpass -p x` (elsewhere `-p` is a
port). A literal default (`--requirepass ${PW:-x}`) ships too. Values read at
run time (`$$(cat /run/secrets/pw)`, `$PGPASSWORD`) and paths
(`--password-file /run/secrets/pw`) are not reported.

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

/// `name=value` inside a word: the `password=x` of a libpq connection
/// string (`"host=db password=x"`) or a URL query (`?password=x`).
static INNER_ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)[\s;'"(&?]([a-z_][a-z0-9_]*)=("[^"]*"|'[^']*'|[^\s'";)&]+)"#).expect("valid regex")
});

/// Clients whose short flags take a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    /// mysql and friends: the password glued to `-p` (`-proot`); a separate
    /// word after `-p` is a database name (the password is prompted for).
    Mysql,
    /// mongosh and the database tools: `-p <password>`.
    Mongo,
    /// redis-cli (and its forks): `-a <password>`.
    RedisCli,
    /// sshpass: `-p <password>`.
    Sshpass,
    /// `sh -c`, `bash -c`: the next word is a script.
    Shell,
    /// Any other program: `-p` is a port or something else.
    Other,
}

fn program(word: &str) -> Program {
    match word.rsplit('/').next().unwrap_or(word) {
        "mysql" | "mysqladmin" | "mysqldump" | "mysqlcheck" | "mysqlsh" | "mysqlshow" | "mysqlimport" | "mysqlpump"
        | "mariadb" | "mariadb-admin" | "mariadb-dump" | "mariadb-check" | "mariadb-import" | "mariadb-show" => {
            Program::Mysql
        }
        "mongosh" | "mongo" | "mongodump" | "mongorestore" | "mongoexport" | "mongoimport" | "mongostat"
        | "mongotop" | "mongofiles" => Program::Mongo,
        "redis-cli" | "valkey-cli" | "keydb-cli" => Program::RedisCli,
        "sshpass" => Program::Sshpass,
        "sh" | "bash" | "ash" | "dash" | "zsh" | "ksh" => Program::Shell,
        _ => Program::Other,
    }
}

/// Words after which the next word is still a command name.
const PREFIXES: &[&str] =
    &["exec", "then", "do", "else", "if", "while", "until", "time", "!", "env", "nohup", "command"];

/// One word of a command line: its text as the program receives it (quotes
/// removed), the scalar it comes from, and the bytes of that scalar's value
/// it is written in.
#[derive(Debug, Clone)]
struct Word {
    text: String,
    node: NodeId,
    src: Range<usize>,
}

/// Splits a shell line into words the way `sh` would for this purpose:
/// quotes removed, `$(...)` kept whole, and `;`, `&&`, `||`, `|`, `&` and
/// newlines as words of their own (all read as `;`). Linear in the text.
fn split_shell(s: &str, node: NodeId) -> Vec<Word> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start: Option<usize> = None;
    let mut chars = s.char_indices().peekable();
    let end_word = |out: &mut Vec<Word>, cur: &mut String, start: &mut Option<usize>, at: usize| {
        if let Some(st) = start.take() {
            out.push(Word { text: std::mem::take(cur), node, src: st..at });
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\r' => end_word(&mut out, &mut cur, &mut start, i),
            '\n' | ';' | '&' | '|' => {
                end_word(&mut out, &mut cur, &mut start, i);
                out.push(Word { text: ";".into(), node, src: i..i + 1 });
            }
            '\'' => {
                start.get_or_insert(i);
                for (_, d) in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    cur.push(d);
                }
            }
            '"' => {
                start.get_or_insert(i);
                while let Some((_, d)) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some(&(_, e)) if matches!(e, '"' | '\\' | '$' | '`') => {
                                cur.push(e);
                                chars.next();
                            }
                            _ => cur.push('\\'),
                        },
                        _ => cur.push(d),
                    }
                }
            }
            '\\' => {
                start.get_or_insert(i);
                if let Some((_, d)) = chars.next()
                    && d != '\n'
                {
                    cur.push(d);
                }
            }
            '$' if matches!(chars.peek(), Some((_, '('))) => {
                // `$(cat /run/secrets/pw)` is one word, spaces and all.
                start.get_or_insert(i);
                cur.push('$');
                let mut depth = 0usize;
                for (_, d) in chars.by_ref() {
                    cur.push(d);
                    match d {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                start.get_or_insert(i);
                cur.push(c);
            }
        }
    }
    end_word(&mut out, &mut cur, &mut start, s.len());
    out
}

/// The secret texts a flag's or an assignment's value ships: the value
/// itself when literal, else its literal defaults. Paths are not secrets.
fn literal_parts(v: &str) -> Vec<&str> {
    if v.starts_with(['/', '~']) || v.starts_with("./") || v.starts_with("../") {
        return Vec::new();
    }
    if is_literal_secret(v) {
        return vec![v];
    }
    credential_defaults(v).into_iter().map(|r| &v[r]).collect()
}

/// How deep `sh -c "... sh -c '...'"` is followed.
const MAX_SHELL_DEPTH: usize = 3;

/// The literal credentials passed in one command line, as (word, secret
/// text); scripts after `sh -c` are read as command lines of their own.
fn secrets_in(words: &[Word], depth: usize, found: &mut Vec<(Word, String)>) {
    let mut prog = Program::Other;
    let mut command_position = true;
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let w = word.text.as_str();
        let next_word = words.get(i + 1).filter(|n| !n.text.starts_with('-') && n.text != ";");
        i += 1;
        if w == ";" {
            command_position = true;
            continue;
        }
        // A value and the word it is written in.
        let mut take =
            |at: &Word, v: &str| found.extend(literal_parts(v).into_iter().map(|p| (at.clone(), p.to_owned())));
        // `PGPASSWORD=x psql`: the whole rest of the word is the value.
        if let Some((k, v)) = w.split_once('=')
            && !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && is_credential_key(k)
        {
            take(word, v);
        }
        for c in INNER_ASSIGN.captures_iter(w) {
            if let (Some(k), Some(v)) = (c.get(1), c.get(2))
                && is_credential_key(k.as_str())
            {
                take(word, v.as_str().trim_matches(['"', '\'']));
            }
        }
        if command_position {
            if (w.contains('=') && !w.starts_with('-')) || PREFIXES.contains(&w) {
                continue;
            }
            command_position = false;
            // `command: ["--admin-password", "x"]`: arguments to the image's
            // entrypoint, no program named.
            if !w.starts_with('-') {
                prog = program(w);
                continue;
            }
            prog = Program::Other;
        }
        let Some(flag) = w.strip_prefix('-') else { continue };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        let name = name.trim_start_matches('-');
        if is_credential_key(&name.replace(['-', '.'], "_")) {
            match (inline, next_word) {
                (Some(v), _) => take(word, v),
                (None, Some(n)) => take(n, &n.text),
                (None, None) => {}
            }
        } else if w == "-c" && prog == Program::Shell {
            if let Some(script) = words.get(i)
                && depth < MAX_SHELL_DEPTH
            {
                // The script's words are located within the script word.
                let inner: Vec<Word> = split_shell(&script.text, script.node)
                    .into_iter()
                    .map(|mut s| {
                        s.src = script.src.clone();
                        s
                    })
                    .collect();
                secrets_in(&inner, depth + 1, found);
                i += 1;
            }
        } else if matches!(w, "-u" | "--user") {
            // `curl -u user:password`.
            if let Some(n) = next_word
                && let Some((_, pw)) = n.text.split_once(':')
            {
                take(n, pw);
            }
        } else if prog == Program::Mysql && w.len() > 2 && w.starts_with("-p") {
            take(word, &w[2..]);
        } else if (w == "-p" && matches!(prog, Program::Mongo | Program::Sshpass))
            || (w == "-a" && prog == Program::RedisCli)
        {
            if let Some(n) = next_word {
                take(n, &n.text);
            }
        }
    }
}

/// A command value's words: an exec-form list item by item (a `CMD-SHELL`
/// script, or a script handed to an entrypoint ending in `-c`, split as a
/// shell line), a string split as a shell line.
fn words_of(cx: &StackCx<'_>, node: NodeId, healthcheck: bool, script_first: bool) -> Vec<Word> {
    if let Some(text) = cx.doc.scalar(node) {
        return split_shell(text, cx.doc.resolve(node));
    }
    let Some(items) = cx.doc.seq(node) else { return Vec::new() };
    let mut out = Vec::new();
    for (i, &item) in items.iter().enumerate() {
        let Some(text) = cx.doc.scalar(item) else { continue };
        let item = cx.doc.resolve(item);
        if healthcheck && i == 0 && matches!(text, "CMD" | "CMD-SHELL" | "NONE") {
            continue;
        }
        let script =
            (script_first && i == 0) || (healthcheck && i == 1 && cx.doc.scalar(items[0]) == Some("CMD-SHELL"));
        if script {
            out.extend(split_shell(text, item));
        } else {
            out.push(Word { text: text.to_owned(), node: item, src: 0..text.len() });
        }
    }
    out
}

/// Where `needle` is in the file: within the word's bytes when the scalar
/// is written as its value, else the first place in the scalar, else the
/// whole scalar.
fn locate(cx: &StackCx<'_>, word: &Word, needle: &str) -> Range<usize> {
    let span = cx.span(word.node);
    let raw = &cx.src.text[span.clone()];
    if let Some(value) = cx.doc.scalar(word.node)
        && let Some(o) = raw.find(value)
        && let Some(within) = raw.get(o + word.src.start..o + word.src.end)
        && let Some(j) = within.find(needle)
    {
        let at = span.start + o + word.src.start + j;
        return at..at + needle.len();
    }
    raw.find(needle).map_or(span.clone(), |j| span.start + j..span.start + j + needle.len())
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        // `entrypoint: ["sh", "-c"]`: the command's first item is the script.
        let script_first = cx
            .at(svc.node, &["entrypoint"])
            .and_then(|e| cx.doc.seq(e))
            .and_then(|items| items.last())
            .is_some_and(|last| cx.doc.scalar(*last) == Some("-c"));
        for path in [&["command"][..], &["entrypoint"], &["healthcheck", "test"]] {
            let Some(node) = cx.at(svc.node, path) else { continue };
            let words = words_of(cx, node, path.len() == 2, script_first && path == ["command"]);
            let mut found = Vec::new();
            secrets_in(&words, 0, &mut found);
            let mut spans: Vec<Range<usize>> = found.iter().map(|(w, needle)| locate(cx, w, needle)).collect();
            spans.sort_by_key(|r| (r.start, r.end));
            spans.dedup();
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
    use super::{Word, secrets_in, split_shell};

    fn found(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        secrets_in(&split_shell(line, 0), 0, &mut out);
        out.into_iter().map(|(_, s)| s).collect()
    }

    fn found_list(items: &[&str]) -> Vec<String> {
        let words: Vec<Word> = items.iter().map(|t| Word { text: (*t).to_owned(), node: 0, src: 0..t.len() }).collect();
        let mut out = Vec::new();
        secrets_in(&words, 0, &mut out);
        out.into_iter().map(|(_, s)| s).collect()
    }

    #[test]
    fn finds_literals_not_references() {
        assert_eq!(found("PGPASSWORD=hunter2 psql --password=x2 -c 'select 1'"), ["hunter2", "x2"]);
        assert!(found("PGPASSWORD=\"$(cat /run/secrets/pw)\" psql").is_empty());
        assert!(found("PGPASSWORD=\"$$(cat /run/secrets/pw)\" psql").is_empty());
        assert!(found("pg_isready -U \"$$(cat /run/secrets/u)\" -d app").is_empty());
        assert!(found("curl -u admin:$PW http://x").is_empty());
        assert_eq!(found("curl -u admin:s3cret http://x"), ["s3cret"]);
        assert_eq!(found("redis-server --requirepass hunter2 --masterauth x9 --port 6379"), ["hunter2", "x9"]);
        assert_eq!(found("mysqladmin ping -h 127.0.0.1 -uroot -phunter2"), ["hunter2"]);
        assert!(found("psql -p 5432 -h db").is_empty(), "-p is a port outside mysql");
        assert!(found("app --password-file /run/secrets/pw").is_empty());
        assert_eq!(found("psql \"host=db user=app password=conn-pw\" -c 'select 1'"), ["conn-pw"]);
        assert_eq!(found("redis-server --requirepass ${REDIS_PASSWORD:-dflt}"), ["dflt"]);
        assert!(found("redis-server --requirepass ${REDIS_PASSWORD}").is_empty());
    }

    #[test]
    fn short_flags_follow_the_program() {
        assert_eq!(found_list(&["mysqladmin", "ping", "-uroot", "-proot"]), ["root"]);
        assert_eq!(found("mongosh -u root -p example --eval 'db.runCommand(1)'"), ["example"]);
        assert_eq!(found("redis-cli -a s3cret ping"), ["s3cret"]);
        assert_eq!(found_list(&["redis-cli", "-a", "s3cret", "ping"]), ["s3cret"]);
        assert!(found("redis-cli -p 6379 ping").is_empty());
        assert!(found("mongosh --port 27017 -u root -p \"$$(cat /run/secrets/m)\"").is_empty());
        assert!(found("mongosh -u root -p x1 --quiet && psql -p 5432").len() == 1);
        assert!(found("mysql -u root -p appdb").is_empty(), "a separate word after mysql's -p is a database");
        assert_eq!(found_list(&["sh", "-c", "redis-cli -a sh-pw ping"]), ["sh-pw"]);
        assert_eq!(found("sh -c 'exec mongosh -p nested-pw'"), ["nested-pw"]);
        assert_eq!(found_list(&["--admin-password", "entry-pw", "--port", "8080"]), ["entry-pw"]);
    }
}
