use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC403",
    name: "start-first-database",
    family: Family::HighAvailability,
    severity: Severity::Error,
    summary: "A database updates or rolls back `start-first`",
    doc: r#"
## What it does
Reports `update_config.order: start-first` or `rollback_config.order:
start-first` on a database service.

## Why it matters
`start-first` starts the new task before the old one stops: two postmasters on
the same node and the same data volume, which corrupts the data directory.

## Example
```yaml
deploy:
  update_config:
    order: start-first
```

## Fix
`order: stop-first` (swarm's default; state it explicitly).
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.databases() {
        for section in ["update_config", "rollback_config"] {
            if let Some(order) = cx.at(svc.node, &["deploy", section, "order"])
                && cx.doc.scalar(order) == Some("start-first")
            {
                out.push(
                    Hit::new(
                        cx.span(order),
                        format!(
                            "database service `{}` would run two servers on one volume during {}",
                            svc.name,
                            section.trim_end_matches("_config")
                        ),
                    )
                    .help("use `order: stop-first`"),
                );
            }
        }
    }
}
