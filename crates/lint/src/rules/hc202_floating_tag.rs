use super::images::FLOATING_TAGS;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC202",
    name: "floating-tag",
    family: Family::SupplyChain,
    severity: Severity::Error,
    summary: "An image uses a tag that moves (`latest`, `stable`, `edge`, `nightly`, ...) without a digest",
    doc: r#"
## What it does
Reports images tagged `latest`, `stable`, `edge`, `dev`, `nightly`, `main`,
`master`, `beta`, `lts` and other tags that are moved on purpose, when no
digest pins them. An image written as a variable is judged by its default,
the image that ships when the variable is unset (`${IMG:-postgres:latest}`).

## Why it matters
A moving tag means the image changes under a running cluster: the next task
scheduled after a node failure runs different bytes from the one it replaces.

## Example
```yaml
image: haproxy:latest
```

## Fix
Use a version tag and pin the digest: `haproxy:2.8@sha256:...`.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for img in cx.images() {
        if let Ok(r) = &img.parsed
            && r.digest().is_none()
            && let Some(tag) = r.tag()
            && FLOATING_TAGS.contains(&tag.to_ascii_lowercase().as_str())
        {
            out.push(
                Hit::new(
                    img.span.clone(),
                    format!("the image of service `{}` uses the moving tag `{tag}`", img.service),
                )
                .help("use a version tag and pin its digest (`hacompile pin` rewrites the file)"),
            );
        }
    }
}
