use std::collections::BTreeMap;

use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC402",
    name: "database-volume-shared",
    family: Family::HighAvailability,
    severity: Severity::Error,
    summary: "Two database tasks could share one data volume",
    doc: r#"
## What it does
Reports database services whose named volume could be mounted by two tasks on
one node: `replicas` above 1 or `mode: global` without
`placement.max_replicas_per_node: 1`, and two database services mounting the
same named volume.

## Why it matters
Two postmasters on one data directory corrupt it; PostgreSQL's pid-file lock
does not work across containers.

## Example
```yaml
services:
  replica:
    image: postgres:16
    volumes: [pgdata:/var/lib/postgresql/data]
    deploy:
      replicas: 2
```

## Fix
One service per replica, each with its own volume (what `hacompile build`
emits), or `max_replicas_per_node: 1` with constraints that keep the tasks on
different nodes.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let mut users: BTreeMap<String, Vec<(String, std::ops::Range<usize>)>> = BTreeMap::new();
    for svc in cx.databases() {
        let volumes = cx.named_volumes(svc);
        for (name, node) in &volumes {
            users.entry(name.clone()).or_default().push((svc.name.to_owned(), cx.span(*node)));
        }
        if volumes.is_empty() {
            continue;
        }
        let replicas = cx.str_at(svc.node, &["deploy", "replicas"]).and_then(|r| r.parse::<u64>().ok()).unwrap_or(1);
        let global = cx.str_at(svc.node, &["deploy", "mode"]) == Some("global");
        let one_per_node = cx.str_at(svc.node, &["deploy", "placement", "max_replicas_per_node"]) == Some("1");
        if (replicas > 1 || global) && !one_per_node {
            let at =
                cx.at(svc.node, &["deploy", "replicas"]).or(cx.at(svc.node, &["deploy", "mode"])).unwrap_or(svc.key);
            out.push(
                Hit::new(
                    cx.span(at),
                    format!("tasks of database service `{}` can share its volume on one node", svc.name),
                )
                .help("use one service per replica with its own volume, or `placement.max_replicas_per_node: 1`"),
            );
        }
    }
    for (volume, services) in users {
        if services.len() > 1 {
            let (second, span) = &services[1];
            out.push(
                Hit::new(
                    span.clone(),
                    format!("database services `{}` and `{second}` mount the same volume `{volume}`", services[0].0),
                )
                .help("give every database service its own volume"),
            );
        }
    }
}
