use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC306",
    name: "profiles-rejected-by-swarm",
    family: Family::Swarm,
    severity: Severity::Error,
    summary: "`profiles` makes `docker stack deploy` reject the whole file",
    doc: r#"
## What it does
Reports the `profiles` key of a service.

## Why it matters
`profiles` is a Compose Specification key that the swarm schema does not
have: `docker stack deploy` (and `docker stack config`) refuse the whole file
with "Additional property profiles is not allowed", so no service of the
stack is deployed or updated.

## Example
```yaml
services:
  pgadmin:
    image: dpage/pgadmin4:8
    profiles: [debug]
```

## Fix
Remove `profiles`. Put optional services in a stack file of their own and
deploy it with a second `-c` file or as a separate stack.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        if let Some(k) = cx.doc.key_of(svc.node, "profiles") {
            out.push(
                Hit::new(
                    cx.span(k),
                    format!("`profiles` of service `{}` makes `docker stack deploy` reject the file", svc.name),
                )
                .help("remove it; deploy optional services from a separate stack file"),
            );
        }
    }
}
