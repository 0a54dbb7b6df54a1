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
API conventions), 9000/9443 (Portainer), 5050 (pgAdmin), 8008 (Patroni REST API).

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

pub(crate) fn target(cx: &StackCx<'_>, port: crate::yaml::NodeId) -> Option<u32> {
    if let Some(short) = cx.doc.scalar(port) {
        let container = short.rsplit(':').next()?.split('/').next()?;
        return container.split('-').next()?.parse().ok();
    }
    cx.str_at(port, &["target"])?.parse().ok()
}

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for &port in cx.at(svc.node, &["ports"]).and_then(|p| cx.doc.seq(p)).unwrap_or(&[]) {
            if let Some(t) = target(cx, port)
                && let Some((_, what)) = ADMIN.iter().find(|(p, _)| *p == t)
            {
                out.push(
                    Hit::new(cx.span(port), format!("service `{}` publishes {what} (port {t})", svc.name))
                        .help("do not publish it; use authentication and a source ACL, or an SSH tunnel"),
                );
            }
        }
    }
}
