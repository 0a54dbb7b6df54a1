use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::{interpolation_default, is_literal_secret};

pub const RULE: Rule = Rule {
    code: "HC101",
    name: "plaintext-secret-in-environment",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A credential-shaped environment variable has a literal value",
    doc: r#"
## What it does
Reports environment variables whose name says they hold a credential
(`*PASSWORD*`, `*_TOKEN`, `*SECRET*`, `API_KEY`, ...) and whose value is written
in the file, in the map form and the `- KEY=value` list form, also when the
value comes through a YAML anchor or merge key (reported where it is written).
`*_FILE` variables, bare `${VAR}` references, booleans, durations, sizes,
`sha256:` digests and `/run/secrets/...` paths are not credentials. In a
cluster spec, any literal credential is reported.

## Why it matters
The file ends up in version control, CI logs and `docker inspect` output; every
reader of any of them holds the password. Swarm has secrets for this: encrypted
in the Raft log, mounted in memory, only into the services that name them.

## Example
```yaml
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: hunter2
```

## Fix
Create a secret and point the image at the file:
```yaml
services:
  db:
    environment:
      POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password
    secrets: [postgres_password]
secrets:
  postgres_password:
    external: true   # printf '%s' "$PW" | docker secret create postgres_password -
```
"#,
    check: Check::Stack(check),
};

pub(crate) fn fix_help(key: &str) -> String {
    format!(
        "store it in a Docker secret (`docker secret create`), mount it with `secrets:`, and set `{key}_FILE: /run/secrets/<name>` if the image reads `_FILE` variables"
    )
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for (svc, env) in cx.services().iter().zip(cx.environments()) {
        for e in env {
            let Some(value) = e.value else { continue };
            if e.credential && is_literal_secret(value) && interpolation_default(value).is_none() {
                out.push(
                    Hit::new(
                        e.value_span.clone(),
                        format!("`{}` of service `{}` has a literal value", e.key, svc.name),
                    )
                    .help(fix_help(e.key)),
                );
            }
        }
    }
}
