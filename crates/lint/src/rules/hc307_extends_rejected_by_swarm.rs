use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC307",
    name: "extends-rejected-by-swarm",
    family: Family::Swarm,
    severity: Severity::Error,
    summary: "`extends` makes `docker stack deploy` reject the whole file",
    doc: r#"
## What it does
Reports the `extends` key of a service.

## Why it matters
`docker stack deploy` does not resolve `extends`: it refuses the whole file
("Configuration contains forbidden properties"), so no service of the stack
is deployed or updated. Under `docker compose` the same file works, which is
how it reaches a swarm deploy untested.

## Example
```yaml
services:
  replica:
    extends:
      service: primary
```

## Fix
Share the common part with a YAML anchor and merge key (`x-common: &common`,
then `<<: *common` in each service), which swarm resolves while parsing, or
render the file with `docker compose config` before deploying it.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        if let Some(k) = cx.doc.key_of(svc.node, "extends") {
            out.push(
                Hit::new(
                    cx.span(k),
                    format!("`extends` of service `{}` makes `docker stack deploy` reject the file", svc.name),
                )
                .help("use a YAML anchor and `<<:` merge key instead, or render the file with `docker compose config`"),
            );
        }
    }
}
