use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC405",
    name: "unbounded-restarts",
    family: Family::HighAvailability,
    severity: Severity::Warning,
    summary: "A service has no restart policy, or one that restarts forever",
    doc: r#"
## What it does
Reports services without `deploy.restart_policy` (swarm then restarts on any
exit, forever, every 5 s), and policies whose `max_attempts` is missing or 0.

## Why it matters
A crash-looping database restarts every few seconds forever, each time
replaying WAL and flooding logs, and the cluster never reports it as failed.
A bounded policy with a `window` stops a crash loop but still restarts a task
that ran for a while before failing.

## Example
```yaml
deploy:
  restart_policy:
    condition: any
```

## Fix
```yaml
deploy:
  restart_policy:
    condition: on-failure
    delay: 5s
    max_attempts: 5
    window: 120s
```
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        match cx.at(svc.node, &["deploy", "restart_policy"]) {
            None => out.push(
                Hit::new(
                    cx.span(svc.key),
                    format!("service `{}` has no restart policy: swarm restarts it on any exit, forever", svc.name),
                )
                .help("set `deploy.restart_policy` with `condition: on-failure`, `max_attempts` and `window`"),
            ),
            Some(policy) => {
                let condition = cx.str_at(policy, &["condition"]).unwrap_or("any");
                let attempts = cx.str_at(policy, &["max_attempts"]).and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
                if condition != "none" && attempts == 0 {
                    out.push(
                        Hit::new(
                            cx.span(policy),
                            format!("the restart policy of service `{}` restarts without bound", svc.name),
                        )
                        .help("set `max_attempts` (e.g. 5) and a `window` (e.g. 120s)"),
                    );
                }
            }
        }
    }
}
