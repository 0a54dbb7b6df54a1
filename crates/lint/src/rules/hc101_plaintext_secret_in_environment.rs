use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::{is_literal_secret, is_user_list_key, user_passwords};

pub const RULE: Rule = Rule {
    code: "HC101",
    name: "plaintext-secret-in-environment",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A credential-shaped environment variable has a literal value",
    doc: r#"
## What it does
Reports environment variables whose name says they hold a credential
(`*PASSWORD*`, `*_TOKEN`, `*SECRET*`, `API_KEY`, `REDISCLI_AUTH`,
`MONGODB_REPLICA_SET_KEY`, ...) and whose value is written in the file, in
the map form and the `- KEY=value` list form, also when the value comes
through a YAML anchor or merge key (reported where it is written). Any word
counts: `password` or `changeme` under a password key is a password, the
most guessed one. The passwords of `user:password` lists under `*_USERS` keys
are reported too.

Not reported: `*_FILE` variables; settings *about* a credential, named by
their last word (`*_TOKEN_REALM`, `*_PASS_SCHEME`, `*_TOKEN_URL`,
`*_PASSWORD_MIN_LENGTH`, ...); values that ship nothing literal (`${VAR}`,
`${VAR:-}`, `"${VAR}"`; a literal default is HC103); URLs and connection
strings whose user and password come from variables
(`*_DSN: postgresql://${U}:${PW}@db/app`); booleans and `0`/`1`
switches, durations, sizes, `sha256:` digests and paths
(`/run/secrets/...`, `/certs/token.crt`).
In a cluster spec, any literal credential is reported.

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
            if e.credential && is_literal_secret(value) {
                out.push(
                    Hit::new(
                        e.value_span.clone(),
                        format!("`{}` of service `{}` has a literal value", e.key, svc.name),
                    )
                    .help(fix_help(e.key)),
                );
            } else if is_user_list_key(e.key) {
                let raw = &cx.src.text[e.value_span.clone()];
                for r in user_passwords(value) {
                    let pw = &value[r];
                    let at = raw
                        .find(pw)
                        .map_or(e.value_span.clone(), |i| e.value_span.start + i..e.value_span.start + i + pw.len());
                    out.push(
                        Hit::new(
                            at,
                            format!("`{}` of service `{}` lists a user with a literal credential", e.key, svc.name),
                        )
                        .help(fix_help(e.key)),
                    );
                }
            }
        }
    }
}
