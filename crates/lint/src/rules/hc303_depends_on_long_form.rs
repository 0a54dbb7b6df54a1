use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC303",
    name: "depends-on-long-form",
    family: Family::Swarm,
    severity: Severity::Error,
    summary: "The long form of `depends_on` makes `docker stack deploy` reject the file",
    doc: r#"
## What it does
Reports `depends_on` written as a mapping (`condition: service_healthy`).

## Why it matters
`docker stack deploy` refuses the whole file ("depends_on must be a list"), so
the deploy fails, in CI at best and during an incident at worst.

## Example
```yaml
depends_on:
  primary:
    condition: service_healthy
```

## Fix
Remove it; make the service wait for its dependency itself.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        if let (Some(k), Some(v)) = (cx.doc.key_of(svc.node, "depends_on"), cx.at(svc.node, &["depends_on"]))
            && cx.doc.is_map(v)
        {
            out.push(
                Hit::new(
                    cx.span(k),
                    format!(
                        "the long form of `depends_on` in service `{}` is rejected by `docker stack deploy`",
                        svc.name
                    ),
                )
                .help(
                    "remove it: swarm has no start order; wait for the dependency in the service and use healthchecks",
                ),
            );
        }
    }
}
