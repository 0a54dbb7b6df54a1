use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::yaml::NodeId;

pub const RULE: Rule = Rule {
    code: "HC506",
    name: "no-resource-limits",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A service has no memory or CPU limit",
    doc: r#"
## What it does
Reports services without `deploy.resources.limits.memory` or
`deploy.resources.limits.cpus`, also looking at the services they `extends`
in the same file (limits are inherited). A service that extends one in
another file (`extends: {file: ...}`) is not reported: its limits cannot be
seen from this file.

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

/// How many `extends` hops are followed (cycles end there too).
const MAX_EXTENDS: usize = 16;

/// The service and those it extends in this file, nearest first; `None` if
/// the chain leaves the file (its end cannot be seen).
fn extends_chain(cx: &StackCx<'_>, node: NodeId) -> Option<Vec<NodeId>> {
    let services = cx.at(cx.root, &["services"])?;
    let mut chain = vec![node];
    let mut at = node;
    for _ in 0..MAX_EXTENDS {
        let Some(ext) = cx.at(at, &["extends"]) else { return Some(chain) };
        if cx.at(ext, &["file"]).is_some() {
            return None;
        }
        let base = cx.doc.scalar(ext).or_else(|| cx.str_at(ext, &["service"]))?;
        at = cx.at(services, &[base])?;
        if chain.contains(&at) {
            return Some(chain);
        }
        chain.push(at);
    }
    Some(chain)
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let Some(chain) = extends_chain(cx, svc.node) else { continue };
        let missing: Vec<&str> = ["memory", "cpus"]
            .into_iter()
            .filter(|k| !chain.iter().any(|n| cx.at(*n, &["deploy", "resources", "limits", k]).is_some()))
            .collect();
        if !missing.is_empty() {
            out.push(
                Hit::new(cx.span(svc.key), format!("service `{}` has no {} limit", svc.name, missing.join(" or ")))
                    .help("set `deploy.resources.limits` (and reservations, so the scheduler knows what it needs)"),
            );
        }
    }
}
