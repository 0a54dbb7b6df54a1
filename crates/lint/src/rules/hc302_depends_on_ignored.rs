use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC302",
    name: "depends-on-ignored",
    family: Family::Swarm,
    severity: Severity::Warning,
    summary: "`depends_on` is dropped by `docker stack deploy`: start order is not guaranteed",
    doc: r#"
## What it does
Reports the list form of `depends_on`, which swarm drops without a word.

## Why it matters
In swarm every service starts at once and is restarted independently. A
replica that assumes the primary is up because of `depends_on` fails its base
backup on a fresh deploy, and again after every primary restart.

## Example
```yaml
services:
  replica:
    depends_on: [primary]
```

## Fix
Make each service wait for what it needs itself (a bounded retry loop at
start-up) and rely on healthchecks and `restart_policy`.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        if let (Some(k), Some(v)) = (cx.doc.key_of(svc.node, "depends_on"), cx.at(svc.node, &["depends_on"]))
            && cx.doc.seq(v).is_some()
        {
            out.push(
                Hit::new(cx.span(k), format!("`depends_on` of service `{}` is dropped by `docker stack deploy`", svc.name))
                    .help("swarm starts services in any order: wait for dependencies in the service itself, with healthchecks and a restart policy"),
            );
        }
    }
}
