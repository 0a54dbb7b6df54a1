use super::{Check, Rule};
use crate::finding::{Family, Severity};

pub const RULE: Rule = Rule {
    code: "HC004",
    name: "invalid-spec",
    family: Family::Input,
    severity: Severity::Error,
    summary: "A cluster spec fails validation; `hacompile build` would refuse it",
    doc: r#"
## What it does
Runs the spec's own validation (unknown keys, wrong types, undeclared
secrets, constraints swarm would reject, shared volumes, colliding ports,
invalid image references, ...) and reports each problem with the help
`hacompile build` gives. Literal credentials are reported as HC101.

## Why it matters
Catching it at commit time is cheaper than at deploy time.

## Example
```toml
[haproxy]
write_port = 5000
read_port = 5000
```

## Fix
Follow the help of the finding; `hacompile schema` documents every key.
"#,
    check: Check::Engine,
};
