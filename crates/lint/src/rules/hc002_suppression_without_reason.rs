use super::{Check, Rule};
use crate::finding::{Family, Severity};

pub const RULE: Rule = Rule {
    code: "HC002",
    name: "suppression-without-reason",
    family: Family::Input,
    severity: Severity::Error,
    summary: "An inline suppression gives no reason, or names no known rule",
    doc: r#"
## What it does
Reports `# hacompile-ignore` comments that do not say why, or name a code that
is not a rule. Such a comment suppresses nothing.

## Why it matters
A suppression is a decision someone has to be able to review later. Without a
reason, the next reader cannot tell an accepted risk from a forgotten one.

## Example
```yaml
services:
  db:
    environment:
      # hacompile-ignore HC101
      POSTGRES_PASSWORD: example
```

## Fix
Add the reason after a colon: `# hacompile-ignore HC101: throwaway CI database`.
"#,
    check: Check::Engine,
};
