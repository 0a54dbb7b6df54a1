use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC201",
    name: "untagged-image",
    family: Family::SupplyChain,
    severity: Severity::Error,
    summary: "An image has neither a tag nor a digest (an implicit `latest`)",
    doc: r#"
## What it does
Reports `image: postgres`, written without a tag or a digest. The linter reads
your text, so `postgres` and `postgres:latest` are told apart.

## Why it matters
Without a tag, every node pulls whatever `latest` is on the day it schedules a
task: the primary and its replica can run different major versions, and a
PostgreSQL major upgrade cannot start on an old data directory.

## Example
```yaml
services:
  db:
    image: postgres
```

## Fix
Name the version you tested and pin its digest:
`image: postgres:16@sha256:...` (`hacompile pin` writes it for you).
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for img in cx.images() {
        if let Ok(r) = &img.parsed
            && r.tag().is_none()
            && r.digest().is_none()
        {
            out.push(
                Hit::new(
                    img.span.clone(),
                    format!("the image of service `{}` has no tag: it means `latest`", img.service),
                )
                .help(format!(
                    "name the version and pin its digest, e.g. `{}:<version>@sha256:...` (`hacompile pin`)",
                    r.name()
                )),
            );
        }
    }
}
