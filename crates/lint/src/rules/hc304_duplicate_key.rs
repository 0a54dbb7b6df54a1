use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC304",
    name: "duplicate-key",
    family: Family::Swarm,
    severity: Severity::Error,
    summary: "A mapping has the same key twice; the later one silently wins",
    doc: r#"
## What it does
Reports a key written twice in one mapping, anywhere in the file.

## Why it matters
YAML parsers keep one of the two without a warning. A reviewer reads the first
`placement:` and approves it; swarm applies the second.

## Example
```yaml
deploy:
  placement:
    constraints: [node.labels.pg.role == primary]
  placement:
    constraints: []
```

## Fix
Keep one and delete the other.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for d in &cx.doc.duplicates {
        let (line, _) = cx.src.line_col(d.first.start);
        out.push(
            Hit::new(
                d.again.clone(),
                format!("the key `{}` is already set on line {line}; this one silently wins", d.key),
            )
            .help("keep one of the two"),
        );
    }
}
