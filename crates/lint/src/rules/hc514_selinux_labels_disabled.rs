use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC514",
    name: "selinux-labels-disabled",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A service turns SELinux labelling off (`security_opt: [label:disable]`)",
    doc: r#"
## What it does
Reports `label:disable` and `label=disable` in `security_opt`. `docker stack
deploy` drops `security_opt` (HC301 says so), but the same file is often run
with `docker compose`, which applies it.

## Why it matters
On an SELinux host, the container's label is what keeps a process that broke
out of its namespaces away from host files and other containers' data.
Disabling it usually papers over a bind mount without the right label.

## Example
```yaml
security_opt:
  - label:disable
```

## Fix
Remove it and label what the container must read: mount with `:z` (shared)
or `:Z` (private), or set a specific type (`label:type:container_runtime_t`)
for the rare service that needs one.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for (item, kind, value) in super::hc515_security_profile_unconfined::options(cx, svc.node) {
            if kind == "label" && value == "disable" {
                out.push(
                    Hit::new(cx.span(item), format!("service `{}` runs without SELinux labels", svc.name))
                        .help("remove `label:disable`; label the mounts instead (`:z` or `:Z`)"),
                );
            }
        }
    }
}
