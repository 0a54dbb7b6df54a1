use super::{Check, Rule};
use crate::finding::{Family, Hit, Severity};
use crate::source::Source;

pub const RULE: Rule = Rule {
    code: "HC407",
    name: "haproxy-mixed-backend",
    family: Family::HighAvailability,
    severity: Severity::Error,
    summary: "An HAProxy backend balances over both primary and replica servers",
    doc: r#"
## What it does
Reads haproxy.cfg files (given on the command line, found in directories, or
named by a stack file's `configs: ... file:`) and reports a `backend` or
`listen` section whose active (non-`backup`) servers include both a primary
and a replica, judged by server names and addresses (`primary`, `master`,
`leader`, `writer` against `replica`, `standby`, `slave`, `secondary`,
`reader`).

## Why it matters
Neither a TCP check nor `option pgsql-check` can tell a primary from a
replica: a listener over both sends some writes to a read-only replica
("cannot execute INSERT in a read-only transaction"), at random.

## Example
```
listen postgres
    bind :5432
    server primary tasks.pg-primary:5432 check
    server replica tasks.pg-replica:5432 check
```

## Fix
Route by service: a write listener whose only servers are the primary, a read
listener over the replicas with the primary as `backup`.
"#,
    check: Check::Haproxy(check),
};

#[derive(Default)]
struct Section {
    header: std::ops::Range<usize>,
    name: String,
    primaries: usize,
    replicas: usize,
}

fn role(words: &[&str]) -> Option<bool> {
    let text = words.join(" ").to_ascii_lowercase();
    let primary = ["primary", "master", "leader", "writer", "rw"].iter().any(|w| text.contains(w));
    let replica = ["replica", "standby", "slave", "secondary", "reader", "follower"].iter().any(|w| text.contains(w));
    match (primary, replica) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

fn check(src: &Source, out: &mut Vec<Hit>) {
    let mut current: Option<Section> = None;
    let mut offset = 0;
    let flush = |s: Option<Section>, out: &mut Vec<Hit>| {
        if let Some(s) = s
            && s.primaries > 0
            && s.replicas > 0
        {
            out.push(
                Hit::new(s.header, format!("`{}` balances over both primary and replica servers: some writes reach a replica", s.name))
                    .help("route by service: a write listener with only the primary, a read listener over the replicas with the primary as `backup`"),
            );
        }
    };
    for line in src.text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let code = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = code.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        match *first {
            "global" | "defaults" | "frontend" | "backend" | "listen" | "resolvers" | "userlist" | "peers"
            | "mailers" | "program" | "cache" | "ring" | "http-errors" => {
                flush(current.take(), out);
                if matches!(*first, "backend" | "listen") {
                    let indent = code.len() - code.trim_start().len();
                    let end = start + code.trim_end().len();
                    current = Some(Section {
                        header: start + indent..end,
                        name: words.get(1).unwrap_or(first).to_string(),
                        ..Default::default()
                    });
                }
            }
            "server" | "server-template" => {
                let Some(s) = current.as_mut() else { continue };
                if words.contains(&"backup") || words.contains(&"disabled") {
                    continue;
                }
                let ident =
                    if *first == "server" { &words[1..words.len().min(3)] } else { &words[1..words.len().min(4)] };
                match role(ident) {
                    Some(true) => s.primaries += 1,
                    Some(false) => s.replicas += 1,
                    None => {}
                }
            }
            _ => {}
        }
    }
    flush(current, out);
}
