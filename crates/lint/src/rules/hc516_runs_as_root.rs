use super::interpolation::with_defaults;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC516",
    name: "runs-as-root",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A service is set to run as root (`user: root`, `user: \"0:0\"`)",
    doc: r#"
## What it does
Reports a `user` whose user part is `root` or `0`, whatever the group
(`root`, `0`, `"0:0"`, `"0:1000"`, `root:root`; a variable's default counts:
`${UID:-0}`). A service without `user` runs as the image says and is not
reported here.

## Why it matters
The setting overrides the image's `USER`: official images that drop to an
unprivileged user (postgres, haproxy, most exporters) are made to run as
root, so a bug in the service is a bug running as root, one kernel flaw or
writable mount away from the host.

## Example
```yaml
services:
  exporter:
    user: "0:0"
```

## Fix
Remove it, or name the unprivileged user the image provides
(`user: postgres`, `user: "65534:65534"`). If root was needed to read a bind
mount, fix the mount's owner instead.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let Some(node) = cx.at(svc.node, &["user"]) else { continue };
        let Some(user) = cx.doc.scalar(node).and_then(with_defaults) else { continue };
        let name = user.split(':').next().unwrap_or(&user).trim();
        if name == "root" || name == "0" {
            out.push(Hit::new(cx.span(node), format!("service `{}` is set to run as root", svc.name)).help(
                "remove `user` to run as the image's user, or name an unprivileged one (`user: \"65534:65534\"`)",
            ));
        }
    }
}
