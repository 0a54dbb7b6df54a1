use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC305",
    name: "unsupported-version",
    family: Family::Swarm,
    severity: Severity::Error,
    summary: "The file declares a compose format older than 3, which `docker stack deploy` cannot read",
    doc: r#"
## What it does
Reports a top-level `version` below 3 (or one that is not a version at all).
A `3.x` version is fine: `docker stack deploy` on older docker CLIs still
needs it, unlike `docker compose`, which ignores it.

## Why it matters
Version 2 files have no `deploy` section; `docker stack deploy` refuses them.

## Example
```yaml
version: "2.4"
```

## Fix
Use `version: "3.8"` and move `mem_limit`, `cpus`, `restart` into `deploy`.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    let Some(v) = cx.at(cx.root, &["version"]) else { return };
    let text = cx.doc.scalar(v).unwrap_or("");
    let major = text.split('.').next().and_then(|m| m.parse::<u32>().ok());
    if major.is_none_or(|m| m < 3) {
        out.push(
            Hit::new(cx.span(v), format!("compose format `{text}` cannot be deployed to a swarm"))
                .help("use `version: \"3.8\"` and move resource and restart settings under `deploy`"),
        );
    }
}
