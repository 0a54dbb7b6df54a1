use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC308",
    name: "env-file-long-form",
    family: Family::Swarm,
    severity: Severity::Error,
    summary: "The long form of `env_file` (`path:`) makes `docker stack deploy` reject the file",
    doc: r#"
## What it does
Reports `env_file` entries written as mappings (`- path: ./app.env`,
`required: false`), the Compose Specification's long form.

## Why it matters
The swarm schema allows only strings there: `docker stack deploy` refuses the
whole file ("services.app.env_file.0 must be a string"), so no service of the
stack is deployed or updated.

## Example
```yaml
env_file:
  - path: ./app.env
    required: false
```

## Fix
Write the path alone (`- ./app.env`). Swarm has no optional env files: the
file must exist where the stack is deployed from.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let Some(value) = cx.at(svc.node, &["env_file"]) else { continue };
        let entries: Vec<_> = match cx.doc.seq(value) {
            Some(items) => items.to_vec(),
            None => vec![value],
        };
        for item in entries {
            if cx.doc.is_map(item) {
                out.push(
                    Hit::new(
                        cx.span(item),
                        format!(
                            "the long form of `env_file` in service `{}` is rejected by `docker stack deploy`",
                            svc.name
                        ),
                    )
                    .help("write the path alone: `- ./app.env` (swarm requires the file to exist)"),
                );
            }
        }
    }
}
