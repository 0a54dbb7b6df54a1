use super::ports::ports;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC508",
    name: "database-port-published",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A database publishes a port on every interface of the nodes",
    doc: r#"
## What it does
Reports `ports` on database services that bind every interface: a short
syntax without an address (`"5432:5432"`, `"5432"`) or with the unspecified
one (`"0.0.0.0:5432:5432"`, `"[::]:5432:5432"`), a long syntax without
`host_ip` or with `0.0.0.0`/`::`. A port written with a variable is judged
by its default (`"${PG_PORT:-5432}:5432"`). A port bound to an address
(`"127.0.0.1:5432:5432"`, `host_ip: 127.0.0.1`) is for compose; under swarm,
which ignores the address, HC309 reports it.

## Why it matters
The database becomes reachable from wherever the nodes are, bypassing the
proxy's routing and checks; password guessing is the only barrier left.

## Example
```yaml
services:
  db:
    image: postgres:16
    ports: ["5432:5432"]
```

## Fix
Remove the ports: clients connect through the proxy, services over the
overlay network. For admin access use `docker exec` or a bastion.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.databases() {
        for port in ports(cx, svc.node).iter().filter(|p| p.every_interface()) {
            out.push(
                Hit::new(
                    cx.span(port.node),
                    format!("database service `{}` publishes a port on every interface", svc.name),
                )
                .help("remove it: reach the database through the proxy or the overlay network"),
            );
        }
    }
}
