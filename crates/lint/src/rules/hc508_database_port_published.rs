use super::interpolation::{split_colons, with_defaults_or};
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
Reports `ports` on database services. In a stack, published ports bind every
interface of every node (the long syntax has no host IP), and a short syntax
without an IP (`"5432:5432"`) does the same under compose. A port written
with a variable is judged by its default (`"${PG_PORT:-5432}:5432"`).

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
        for &port in cx.at(svc.node, &["ports"]).and_then(|p| cx.doc.seq(p)).unwrap_or(&[]) {
            // `${PORT:-5432}:5432` publishes its default; a variable without
            // one stands for some port (or address), not for a colon.
            let bound_ip = cx
                .doc
                .scalar(port)
                .and_then(|t| with_defaults_or(t, "VAR"))
                .is_some_and(|t| split_colons(&t).len() >= 3 && !t.starts_with("0.0.0.0"));
            if !bound_ip {
                out.push(
                    Hit::new(
                        cx.span(port),
                        format!("database service `{}` publishes a port on every interface", svc.name),
                    )
                    .help("remove it: reach the database through the proxy or the overlay network"),
                );
            }
        }
    }
}
