use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC408",
    name: "restart-policy-abandons-database",
    family: Family::HighAvailability,
    severity: Severity::Warning,
    summary: "A database's restart policy lets swarm give up on it for good",
    doc: r#"
## What it does
Reports database services whose `deploy.restart_policy` has a
`max_attempts` bound, or `condition: none`, or `condition: on-failure`
(a server that stopped cleanly stays stopped), and policies restarting
with no `delay` (a crash loop then hammers the node). A missing policy is
swarm's default (`any`, every 5 s, forever) and is not reported. This rule
replaces HC405 (unbounded-restarts), retired: it recommended the very bound
that makes swarm abandon the only primary.

## Why it matters
Swarm has no backoff and no later retry: after `max_attempts` quick
failures within `window` it never restarts the task again. For a cluster's
only primary that is an outage until a person notices, long after the cause
(a full disk, a node that came back) is gone. `delay` is what paces a crash
loop; the bound only turns a transient fault into a permanent one.

## Example
```yaml
deploy:
  restart_policy:
    condition: on-failure
    max_attempts: 5
    window: 120s
```

## Fix
```yaml
deploy:
  restart_policy:
    condition: any
    delay: 10s
    max_attempts: 0
```
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.databases() {
        let Some(policy) = cx.at(svc.node, &["deploy", "restart_policy"]) else { continue };
        let condition = cx.str_at(policy, &["condition"]).unwrap_or("any");
        let attempts = cx.str_at(policy, &["max_attempts"]).and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
        let at = |key: &str| cx.at(policy, &[key]).map_or_else(|| cx.span(policy), |n| cx.span(n));
        if condition != "any" {
            out.push(
                Hit::new(
                    at("condition"),
                    format!("database `{}` is not restarted after `condition: {condition}` exits", svc.name),
                )
                .help("use `condition: any`: a server that stopped cleanly is as absent as one that crashed"),
            );
        }
        if attempts > 0 {
            out.push(
                Hit::new(
                    at("max_attempts"),
                    format!("swarm abandons database `{}` for good after {attempts} quick failures", svc.name),
                )
                .help("set `max_attempts: 0` (never give up) and pace a crash loop with `delay` (e.g. 10s)"),
            );
        }
        let delay = cx.str_at(policy, &["delay"]);
        if matches!(delay, Some("0") | Some("0s")) {
            out.push(
                Hit::new(at("delay"), format!("database `{}` restarts with no delay", svc.name))
                    .help("set `delay` (e.g. 10s) so a crash loop does not hammer the node"),
            );
        }
    }
}
