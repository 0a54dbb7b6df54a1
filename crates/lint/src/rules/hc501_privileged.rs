use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC501",
    name: "privileged",
    family: Family::Hardening,
    severity: Severity::Error,
    summary: "A service runs privileged",
    doc: r#"
## What it does
Reports `privileged: true`.

## Why it matters
A privileged container is root on the host: every device, every capability,
no seccomp or AppArmor. `docker stack deploy` ignores the key, so in swarm it
is at best dead configuration that someone will "fix" by running the file with
`docker compose`, and at worst a sign the service depends on it.

## Example
```yaml
privileged: true
```

## Fix
Remove it. Grant the single capability the service needs with `cap_add`.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        if let Some(v) = cx.at(svc.node, &["privileged"])
            && cx.doc.scalar(v).is_some_and(|t| t == "true")
        {
            out.push(
                Hit::new(
                    cx.span(v),
                    format!(
                        "service `{}` runs privileged (ignored by swarm, root on the host under compose)",
                        svc.name
                    ),
                )
                .help("remove it; add only the capability the service needs with `cap_add`"),
            );
        }
    }
}
