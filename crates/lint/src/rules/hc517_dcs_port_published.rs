use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC517",
    name: "dcs-port-published",
    family: Family::Hardening,
    severity: Severity::Error,
    summary: "An etcd client or peer port (2379/2380) is published",
    doc: r#"
## What it does
Reports published container ports 2379 (etcd's client API) and 2380
(etcd's peer port), whatever the service. Patroni's REST API (8008) is
HC509's.

## Why it matters
etcd holds Patroni's leader key. Whoever reaches the client port can write
it, delete it or pause the cluster: point the proxies at a member of their
choosing, or make every member demote itself. The peer port lets a stranger
speak as a cluster member. etcd as usually deployed beside Patroni has no
client authentication, and a published port binds every interface of every
node.

## Example
```yaml
services:
  etcd-1:
    image: quay.io/coreos/etcd:v3.5.17
    ports:
      - "2379:2379"
```

## Fix
Remove the ports: Patroni and `etcdctl` reach etcd over an overlay network
that only the members and the etcd services join. For an operator, run
`etcdctl` with `docker exec` in a member.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for port in super::ports::ports(cx, svc.node) {
            let what = match port.target {
                Some(2379) => "etcd's client API (port 2379): whoever reaches it can rewrite Patroni's leader key",
                Some(2380) => "etcd's peer port (2380): whoever reaches it can speak as a cluster member",
                _ => continue,
            };
            // The long syntax's `target:`, not the whole mapping.
            let at = cx.at(port.node, &["target"]).unwrap_or(port.node);
            out.push(
                Hit::new(cx.span(at), format!("service `{}` publishes {what}", svc.name))
                    .help("remove it: members and etcd talk over an overlay network; operators use `docker exec`"),
            );
        }
    }
}
