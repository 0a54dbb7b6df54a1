use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC505",
    name: "capabilities-not-dropped",
    family: Family::Hardening,
    severity: Severity::Info,
    summary: "A service keeps Docker's default capabilities (no `cap_drop: [ALL]`)",
    doc: r#"
## What it does
Reports services without `cap_drop` containing `ALL`. Swarm applies
`cap_add`/`cap_drop` from Docker 20.10 on. Informational: database images
need a few capabilities at start-up (`CHOWN`, `SETUID`, `SETGID`,
`DAC_OVERRIDE`, `FOWNER` to drop root), so review before enforcing.

## Why it matters
Docker's default set includes `NET_RAW`, `MKNOD`, `SETFCAP` and more that a
database or proxy never needs after start-up; each is a step for an attacker.

## Example
```yaml
services:
  haproxy:
    image: haproxy:2.8
```

## Fix
```yaml
cap_drop: [ALL]
cap_add: [NET_BIND_SERVICE]   # only what the service needs
```
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let drops_all = cx
            .at(svc.node, &["cap_drop"])
            .and_then(|c| cx.doc.seq(c))
            .is_some_and(|c| c.iter().any(|i| cx.doc.scalar(*i).is_some_and(|t| t.eq_ignore_ascii_case("all"))));
        if !drops_all {
            out.push(
                Hit::new(cx.span(svc.key), format!("service `{}` keeps Docker's default capabilities", svc.name))
                    .help("add `cap_drop: [ALL]` and `cap_add` only what the service needs"),
            );
        }
    }
}
