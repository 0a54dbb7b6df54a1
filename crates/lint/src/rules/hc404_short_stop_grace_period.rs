use hacompile_spec::values::parse_duration;

use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC404",
    name: "short-stop-grace-period",
    family: Family::HighAvailability,
    severity: Severity::Warning,
    summary: "PostgreSQL gets less than 30 s to shut down (the default is 10 s)",
    doc: r#"
## What it does
Reports PostgreSQL services without `stop_grace_period` (swarm's default is
10 s) or with one shorter than 30 s.

## Why it matters
After the grace period Docker sends SIGKILL. A PostgreSQL killed during its
shutdown checkpoint recovers from WAL on the next start: a longer outage on
every update, and on a replica a restart from scratch of what it was replaying.

## Example
```yaml
services:
  db:
    image: postgres:16
```

## Fix
```yaml
stop_signal: SIGINT          # fast shutdown
stop_grace_period: 120s
```
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.postgres_services() {
        match cx.at(svc.node, &["stop_grace_period"]) {
            None => out.push(
                Hit::new(
                    cx.span(svc.key),
                    format!("PostgreSQL service `{}` has swarm's default 10 s to shut down", svc.name),
                )
                .help("set `stop_grace_period: 120s` (and `stop_signal: SIGINT`)"),
            ),
            Some(v) => {
                if let Some(ms) = cx.doc.scalar(v).and_then(|t| parse_duration(t).ok())
                    && ms < 30_000
                {
                    out.push(
                        Hit::new(
                            cx.span(v),
                            format!("PostgreSQL service `{}` gets less than 30 s to shut down", svc.name),
                        )
                        .help("60s-120s lets the shutdown checkpoint finish"),
                    );
                }
            }
        }
    }
}
