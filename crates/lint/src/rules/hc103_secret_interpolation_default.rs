use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::credential_defaults;

pub const RULE: Rule = Rule {
    code: "HC103",
    name: "secret-interpolation-default",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A credential variable falls back to a literal default (`${X:-literal}`)",
    doc: r#"
## What it does
Reports credential-shaped variables whose value is `${VAR:-default}` or
`${VAR-default}` with a literal default (nested defaults too:
`${A:-${B:-admin}}`). An empty default (`${VAR:-}`) or a switch (`0`, `false`)
is no password; settings about credentials (`*_TOKEN_REALM`, ...) are not
credentials (see HC101).

## Why it matters
The default is a password in the file, and it is silently used whenever the
variable is unset at deploy time: the production cluster starts with the
example password and nobody notices.

## Example
```yaml
environment:
  POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-postgres}
```

## Fix
Use a Docker secret; or, if the value must come from the environment, make it
required: `${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}`.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for (svc, env) in cx.services().iter().zip(cx.environments()) {
        for e in env {
            let Some(value) = e.value else { continue };
            if !e.credential {
                continue;
            }
            let raw = &cx.src.text[e.value_span.clone()];
            for d in credential_defaults(value) {
                let default = &value[d];
                let at = raw
                    .find(default)
                    .map_or(e.value_span.clone(), |i| e.value_span.start + i..e.value_span.start + i + default.len());
                out.push(
                    Hit::new(at, format!("`{}` of service `{}` falls back to a literal default", e.key, svc.name))
                        .help(format!("use a Docker secret, or require the variable: `${{{}:?must be set}}`", e.key)),
                );
            }
        }
    }
}
