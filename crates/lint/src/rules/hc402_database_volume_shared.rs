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
same named volume as their data (a volume mounted elsewhere, such as a
shared pgBackRest repository at `/var/lib/pgbackrest`, is not data and
may be shared). A volume whose name swarm makes per task
(`name: "{{.Service.Name}}-{{.Task.Slot}}-data"`, with `.Task.Slot`,
`.Task.ID` or `.Task.Name`) is never shared; one named per service
(`{{.Service.Name}}`) is not shared between services. (`{{.Node.Hostname}}`
is per node: two tasks on one node still share it.)

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

/// Swarm's templates in a volume name (spaces inside the braces allowed).
fn templated(name: &str, fields: &[&str]) -> bool {
    let compact: String = name.chars().filter(|c| !c.is_whitespace()).collect();
    fields.iter().any(|f| compact.contains(&format!("{{{{{f}}}}}")))
}

/// Where PostgreSQL images keep their data.
const DATA_PATHS: &[&str] = &["/var/lib/postgresql", "/bitnami/postgresql", "/var/lib/pgsql", "/home/postgres"];

/// Whether a volume mount holds a data directory: a known data path, or
/// one that contains the service's PGDATA (an unknown target counts too).
pub(crate) fn holds_data(cx: &StackCx<'_>, mount: crate::yaml::NodeId, pgdata: Option<&str>) -> bool {
    let target = match cx.doc.scalar(mount) {
        Some(short) => short.split(':').nth(1),
        None => cx.str_at(mount, &["target"]),
    };
    let Some(target) = target.map(|t| t.trim_end_matches('/')) else { return true };
    let under = |path: &str, dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
    DATA_PATHS.iter().any(|d| under(target, d) || under(d, target)) || pgdata.is_some_and(|p| under(p, target))
}

const PER_TASK: &[&str] = &[".Task.Slot", ".Task.ID", ".Task.Name"];
const PER_SERVICE: &[&str] = &[".Service.Name", ".Service.ID"];

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let mut users: BTreeMap<String, Vec<(String, std::ops::Range<usize>)>> = BTreeMap::new();
    for svc in cx.databases() {
        // The name swarm creates: the top-level `name:` when given.
        let volumes: Vec<(String, _)> = cx
            .named_volumes(svc)
            .into_iter()
            .map(|(key, node)| {
                let name = cx.str_at(cx.root, &["volumes", &key, "name"]).map_or(key, str::to_owned);
                (name, node)
            })
            .filter(|(name, _)| !templated(name, PER_TASK))
            .collect();
        let pgdata = cx.str_at(svc.node, &["environment", "PGDATA"]);
        for (name, node) in &volumes {
            if !templated(name, PER_SERVICE) && holds_data(cx, *node, pgdata) {
                users.entry(name.clone()).or_default().push((svc.name.to_owned(), cx.span(*node)));
            }
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
