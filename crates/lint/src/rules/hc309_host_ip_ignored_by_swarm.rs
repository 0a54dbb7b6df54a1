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
Reports short-syntax ports with a host IP (`"127.0.0.1:8888:8888"`,
`"[::1]:5432:5432"`).

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
        for &port in cx.at(svc.node, &["ports"]).and_then(|p| cx.doc.seq(p)).unwrap_or(&[]) {
            let Some(short) = cx.doc.scalar(port) else { continue };
            // `IP:HOST:CONTAINER` has two colons (IPv6 in brackets more); `HOST:CONTAINER` one.
            // Colons inside `${VAR:-default}` separate nothing.
            let parts = super::interpolation::split_colons(short);
            if short.starts_with('[') || parts.len() >= 3 {
                let ip = match short.strip_prefix('[') {
                    Some(rest) => rest.split(']').next().unwrap_or(rest),
                    None => parts[0],
                };
                out.push(
                    Hit::new(
                        cx.span(port),
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
}
