use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::secrets::{is_credential_key, is_literal_secret};

pub const RULE: Rule = Rule {
    code: "HC107",
    name: "secret-in-labels",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A credential-shaped label has a literal value",
    doc: r#"
## What it does
Reports service labels and `deploy.labels` whose key says they hold a
credential (`traefik.http.middlewares.x.basicauth.users` aside, e.g.
`backup.password`, `api_token`) and whose value is written in the file.

## Why it matters
Labels are readable by anyone who can list services or containers
(`docker service inspect`), and by every tool that reads them.

## Example
```yaml
deploy:
  labels:
    backup.s3.secret_key: wJalrXUtnFEMI
```

## Fix
Pass the credential as a Docker secret to the service that needs it.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let mut entries = cx.entries_of(svc.node, "labels");
        if let Some(deploy) = cx.at(svc.node, &["deploy"]) {
            entries.extend(cx.entries_of(deploy, "labels"));
        }
        for e in entries {
            let Some(value) = e.value else { continue };
            let last = e.key.rsplit('.').next().unwrap_or(e.key);
            if (e.credential || is_credential_key(last)) && is_literal_secret(value) {
                out.push(
                    Hit::new(e.value_span.clone(), format!("label `{}` of service `{}` has a literal credential", e.key, svc.name))
                        .help("labels are readable by anyone who can inspect the service; pass the credential as a Docker secret"),
                );
            }
        }
    }
}
