use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC506",
    name: "no-resource-limits",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A service has no memory or CPU limit",
    doc: r#"
## What it does
Reports services without `deploy.resources.limits.memory` or
`deploy.resources.limits.cpus`.

## Why it matters
One runaway task (a query with a huge sort, a connection storm) takes the
node's memory; the kernel's OOM killer then picks a victim, often the
database next to it.

## Example
```yaml
deploy:
  replicas: 1
```

## Fix
```yaml
deploy:
  resources:
    limits: { cpus: "2", memory: 2g }
    reservations: { cpus: "0.5", memory: 1g }
```
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let limits = cx.at(svc.node, &["deploy", "resources", "limits"]);
        let missing: Vec<&str> =
            ["memory", "cpus"].into_iter().filter(|k| limits.and_then(|l| cx.at(l, &[k])).is_none()).collect();
        if !missing.is_empty() {
            out.push(
                Hit::new(cx.span(svc.key), format!("service `{}` has no {} limit", svc.name, missing.join(" or ")))
                    .help("set `deploy.resources.limits` (and reservations, so the scheduler knows what it needs)"),
            );
        }
    }
}
