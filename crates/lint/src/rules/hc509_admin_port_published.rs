use super::ports::ports;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC509",
    name: "admin-port-published",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "An administration port is published (Docker API, HAProxy stats/runtime API, Portainer)",
    doc: r#"
## What it does
Reports published container ports that are well-known administration
endpoints: 2375/2376 (Docker API), 8404 and 9999 (HAProxy stats and runtime
API conventions), 9000/9443 (Portainer, on a Portainer image: MinIO's S3
API is 9000 too), 5050 (pgAdmin), 8008 (Patroni REST API). A port bound to
the host's loopback (`"127.0.0.1:8404:8404"`) is not reported: under compose
it is not on the network; under swarm, which ignores the address, HC309
reports it.

## Why it matters
These endpoints control or reveal the cluster: backend state, server
addresses, sometimes the ability to disable servers or run containers.

## Example
```yaml
ports:
  - "8404:8404"
```

## Fix
Do not publish them; if operators need the stats page, publish it in host
mode behind authentication and a source-address ACL (what `hacompile build`
emits), or reach it through an SSH tunnel.
"#,
    check: Check::Stack(check),
};

const ADMIN: &[(u32, &str)] = &[
    (2375, "the unencrypted Docker API"),
    (2376, "the Docker API"),
    (8404, "HAProxy's stats page"),
    (9999, "HAProxy's runtime API"),
    (9000, "Portainer"),
    (9443, "Portainer"),
    (5050, "pgAdmin"),
    (8008, "Patroni's REST API"),
];

/// Ports whose administration endpoint is one product's default, shared
/// with other products' ordinary ports (MinIO's S3 API is 9000): reported
/// on that product's image only.
const ONLY_ON_IMAGE: &[(u32, &str)] = &[(9000, "portainer"), (9443, "portainer")];

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let image = cx.image(svc).unwrap_or_default().to_ascii_lowercase();
        // A port bound to the host's loopback is not published to the
        // network (under compose; swarm ignores the address: HC309).
        for port in ports(cx, svc.node).iter().filter(|p| !p.loopback()) {
            let Some(t) = port.target else { continue };
            let Some((_, what)) = ADMIN.iter().find(|(p, _)| *p == t) else { continue };
            if ONLY_ON_IMAGE.iter().any(|(p, product)| *p == t && !image.contains(product)) {
                continue;
            }
            out.push(
                Hit::new(cx.span(port.node), format!("service `{}` publishes {what} (port {t})", svc.name))
                    .help("do not publish it; use authentication and a source ACL, or an SSH tunnel"),
            );
        }
    }
}
