use super::{Check, Rule};
use crate::finding::{Family, Severity};

pub const RULE: Rule = Rule {
    code: "HC003",
    name: "inline-suppression-forbidden",
    family: Family::Input,
    severity: Severity::Error,
    summary: "An inline suppression was found where the configuration forbids them",
    doc: r#"
## What it does
With `allow_inline_suppressions = false` in `.hacompile.toml` (or
`--no-inline-suppressions`), every `# hacompile-ignore` comment is reported and
none is honoured.

## Why it matters
A CI gate that a one-line comment can switch off is not a gate. Teams that
want every exception reviewed in one place keep them in the configuration.

## Example
```yaml
# hacompile-ignore HC203: pinned later
image: postgres:16
```

## Fix
Remove the comment and fix the finding, or disable the rule for that path in
`.hacompile.toml` where the exception is reviewed with the config.
"#,
    check: Check::Engine,
};
