use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC309",
    name: "host-ip-ignored-by-swarm",
    family: Family::Swarm,
    severity: Severity::Warning,
    summary: "A host IP in a published port is ignored by swarm: the port is open on every interface",
    doc: r#"
## What it does
Reports ports with a host IP: the short syntax's (`"127.0.0.1:8888:8888"`,
`"[::1]:5432:5432"`), which swarm ignores, and the long syntax's
`host_ip:`, which `docker stack deploy` refuses ("Additional property
host_ip is not allowed").

## Why it matters
Swarm has no host IP in a port: `docker stack deploy` drops the address with
only a log warning ("ignoring IP-address ... service will listen on
'0.0.0.0'") and publishes the port on every interface of every node, through
the ingress mesh. A port the author meant for localhost (an admin UI, a
database) is reachable from the whole network.

## Example
```yaml
ports:
  - "127.0.0.1:8888:8888"
```

## Fix
Do not publish the port; reach it over an overlay network, or with
`docker exec` or an SSH tunnel to a container. If it must be published, use
the long syntax with `mode: host` and restrict it in the host's firewall.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        // Short syntax (`IP:HOST:CONTAINER`) and long syntax (`host_ip:`).
        for port in super::ports::ports(cx, svc.node) {
            let (Some(ip), Some(_)) = (&port.written_ip, &port.host_ip) else { continue };
            let Some(short) = &port.short else {
                // docker's schema for stacks has no `host_ip`.
                let at = cx.at(port.node, &["host_ip"]).unwrap_or(port.node);
                out.push(
                    Hit::new(
                        cx.span(at),
                        format!(
                            "`docker stack deploy` refuses `host_ip` in a port of service `{}` (\"Additional property host_ip is not allowed\"), and swarm could not bind an address anyway",
                            svc.name
                        ),
                    )
                    .help("remove `host_ip`: do not publish the port (use an overlay network or a tunnel), or publish it with `mode: host` and a firewall rule"),
                );
                continue;
            };
            out.push(
                Hit::new(
                    cx.span(port.node),
                    format!(
                        "swarm ignores the address `{ip}` in port `{short}` of service `{}`: the port is published on every interface",
                        svc.name
                    ),
                )
                .help("do not publish it (use an overlay network or a tunnel), or use the long syntax with `mode: host` and a firewall rule"),
            );
        }
    }
}
