use super::{Check, Rule};
use crate::finding::{Family, Severity};

pub const RULE: Rule = Rule {
    code: "HC001",
    name: "unreadable-input",
    family: Family::Input,
    severity: Severity::Error,
    summary: "A file could not be read or parsed, so nothing in it was checked",
    doc: r#"
## What it does
Reports a file that is not valid YAML or TOML, not UTF-8, too large (over
16 MiB for stack files, 1 MiB for specs), nested too deeply, or whose YAML
aliases expand into millions of nodes (an "alias bomb"); a symbolic link
that leads out of the file's tree (its git work tree, else the working
directory), which is not followed; and a legacy (version 1) compose file,
its services at the top level, which neither `docker stack deploy` nor
Compose v2 reads. The run exits with code 2; the other files of the run are
still linted.

## Why it matters
A file the linter cannot read is a file nobody checked. `docker stack deploy`
would refuse most of these too, or spend minutes and gigabytes expanding them.

## Example
```yaml
a: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]   # ... 9^n nodes
```

## Fix
Fix the syntax at the reported place, save the file as UTF-8, or split it.
"#,
    check: Check::Engine,
};
