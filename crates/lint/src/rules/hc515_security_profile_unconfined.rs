use super::interpolation::with_defaults;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::yaml::NodeId;

pub const RULE: Rule = Rule {
    code: "HC515",
    name: "security-profile-unconfined",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A service runs without its seccomp or AppArmor profile (`unconfined`)",
    doc: r#"
## What it does
Reports `seccomp:unconfined`, `apparmor:unconfined` and
`systempaths=unconfined` (with `:` or `=`) in `security_opt`. `docker stack
deploy` drops `security_opt` (HC301 says so), but the same file is often run
with `docker compose`, which applies it.

## Why it matters
Docker's default seccomp profile blocks about fifty system calls a service
never needs and exploits often do (`keyctl`, `add_key`, `unshare`, `mount`,
`bpf`...); the AppArmor profile keeps writes away from `/proc` and `/sys`;
`systempaths=unconfined` unmasks `/proc/kcore`, `/proc/sysrq-trigger` and
friends. Each is one less wall between a compromised process and the host.

## Example
```yaml
security_opt:
  - seccomp:unconfined
```

## Fix
Remove it. If one system call is missing, copy Docker's default profile,
allow that call, and point at the file: `seccomp:./seccomp/service.json`.
"#,
    check: Check::Stack(check),
};

/// The `security_opt` entries of a service as (node, kind, value):
/// `seccomp:unconfined` and `seccomp=unconfined` both give
/// `("seccomp", "unconfined")`, `label:disable` gives `("label", "disable")`.
pub(crate) fn options(cx: &StackCx<'_>, svc: NodeId) -> Vec<(NodeId, String, String)> {
    let Some(list) = cx.at(svc, &["security_opt"]).and_then(|s| cx.doc.seq(s)) else { return Vec::new() };
    list.iter()
        .filter_map(|&item| {
            let text = with_defaults(cx.doc.scalar(item)?)?;
            let (kind, value) = text.split_once([':', '='])?;
            Some((item, kind.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase()))
        })
        .collect()
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for (item, kind, value) in options(cx, svc.node) {
            if matches!(kind.as_str(), "seccomp" | "apparmor" | "systempaths") && value == "unconfined" {
                out.push(
                    Hit::new(cx.span(item), format!("service `{}` runs with `{kind}` unconfined", svc.name)).help(
                        "remove it; if one system call is missing, use a copy of the default profile that allows it",
                    ),
                );
            }
        }
    }
}
