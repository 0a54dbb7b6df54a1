use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC507",
    name: "no-healthcheck",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A database or proxy service has no healthcheck (or disables it)",
    doc: r#"
## What it does
Reports database servers and proxy services (PostgreSQL, MySQL, HAProxy, ...,
told by image or by the command they run) without a `healthcheck`, or with
`healthcheck.disable: true`. (The image may define one; state it in the file
so the policy is reviewable.) A job that uses a database image (a backup, a
schema load: see HC401 for how one is told apart) serves nothing and is not
reported.

## Why it matters
Swarm adds a task to service DNS when it is healthy and replaces unhealthy
tasks. Without a check, a PostgreSQL that is still replaying WAL, or wedged,
counts as running and receives traffic.

## Example
```yaml
services:
  db:
    image: postgres:16
```

## Fix
```yaml
healthcheck:
  test: ["CMD-SHELL", "pg_isready -q -h 127.0.0.1"]
  interval: 10s
  timeout: 5s
  retries: 5
  start_period: 120s
```
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let proxy_name = |b: &str| b.contains("haproxy") || b.contains("pgbouncer") || b.contains("pgpool");
        // By image, or by command: Patroni's demo image runs HAProxy as
        // `command: haproxy`.
        let proxy =
            cx.image_base(svc).is_some_and(|b| proxy_name(&b)) || cx.programs(svc.node).iter().any(|p| proxy_name(p));
        if !(cx.is_database(svc) || proxy) {
            continue;
        }
        let disabled = cx.str_at(svc.node, &["healthcheck", "disable"]) == Some("true");
        if cx.at(svc.node, &["healthcheck"]).is_none() || disabled {
            out.push(
                Hit::new(cx.span(svc.key), format!("service `{}` has no healthcheck", svc.name)).help(
                    "add a `healthcheck` (e.g. `pg_isready` for PostgreSQL) so swarm routes only to healthy tasks",
                ),
            );
        }
    }
}
