use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC511",
    name: "secret-file-in-repository",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A secret is created from a file beside the stack file",
    doc: r#"
## What it does
Reports top-level `secrets` defined with `file:` at a relative path (or any
path inside the stack's directory).

## Why it matters
The secret material then lives next to the stack file, usually in the same
repository, in every clone and backup of it.

## Example
```yaml
secrets:
  postgres_password:
    file: ./secrets/postgres_password.txt
```

## Fix
Create it on the swarm (`printf '%s' "$PW" | docker secret create
postgres_password -`) and declare it `external: true`.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let Some(secrets) = cx.at(cx.root, &["secrets"]) else { return };
    for (k, v) in cx.doc.entries(secrets) {
        let Some(name) = cx.doc.scalar(k) else { continue };
        let Some(file) = cx.at(v, &["file"]) else { continue };
        let path = cx.doc.scalar(file).unwrap_or("");
        let inside =
            !path.starts_with('/') || cx.dir.as_ref().is_some_and(|d| std::path::Path::new(path).starts_with(d));
        if inside {
            out.push(
                Hit::new(cx.span(file), format!("secret `{name}` is created from a file beside the stack file"))
                    .help("create it with `docker secret create` and declare it `external: true`"),
            );
        }
    }
}
