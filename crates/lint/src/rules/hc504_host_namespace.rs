use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC504",
    name: "host-namespace",
    family: Family::Hardening,
    severity: Severity::Error,
    summary: "A service shares a host namespace (network, pid, ipc, userns)",
    doc: r#"
## What it does
Reports `network_mode: host`, `pid: host`, `ipc: host` and
`userns_mode: host`.

## Why it matters
Host namespaces remove the isolation between the container and the host: its
processes, its loopback services, its shared memory. Swarm ignores these keys,
so in a stack they are also dead configuration.

## Example
```yaml
network_mode: host
```

## Fix
Remove them; publish the ports the service needs (`mode: host` for a proxy).
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for key in ["network_mode", "pid", "ipc", "userns_mode"] {
            if let Some(v) = cx.at(svc.node, &[key])
                && cx.doc.scalar(v) == Some("host")
            {
                out.push(
                    Hit::new(
                        cx.span(v),
                        format!("service `{}` shares the host's {key} namespace (ignored by swarm)", svc.name),
                    )
                    .help("remove it; publish ports instead (`mode: host` for a proxy)"),
                );
            }
        }
    }
}
