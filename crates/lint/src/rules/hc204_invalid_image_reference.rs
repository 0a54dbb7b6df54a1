use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC204",
    name: "invalid-image-reference",
    family: Family::SupplyChain,
    severity: Severity::Error,
    summary: "An image reference does not follow the distribution grammar",
    doc: r#"
## What it does
Checks every literal `image:` against the reference grammar: lowercase
repository names, valid tags (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`), digests
with a known algorithm and the exact number of hex digits.

## Why it matters
`docker stack deploy` accepts the file and the tasks then fail on every node
with "invalid reference format", which looks like a registry outage at 3 a.m.

## Example
```yaml
image: Postgres:16@sha256:abc
```

## Fix
Lowercase the repository and use a full digest: `postgres:16@sha256:<64 hex>`.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for img in cx.images() {
        if let Err(e) = &img.parsed {
            out.push(
                Hit::new(
                    img.span.clone(),
                    format!("the image of service `{}` is not a valid reference: {e}", img.service),
                )
                .help("write `name:tag@sha256:<64 hex digits>` with a lowercase name"),
            );
        }
    }
}
