use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC406",
    name: "global-proxy-ingress-ports",
    family: Family::HighAvailability,
    severity: Severity::Warning,
    summary: "A global service publishes ports through the ingress mesh",
    doc: r#"
## What it does
Reports `mode: global` services whose published ports use the ingress mesh:
the short syntax (`"5000:5000"`) or the long syntax without `mode: host`.

## Why it matters
A proxy on every node behind the ingress mesh is balanced twice: IPVS sends a
client to some node's proxy, which picks a backend. Client IPs are lost (no
source ACLs), traffic crosses the unencrypted ingress network, and IPVS drops
idle database connections after 900 s.

## Example
```yaml
deploy:
  mode: global
ports:
  - "5000:5000"
```

## Fix
```yaml
ports:
  - target: 5000
    published: 5000
    protocol: tcp
    mode: host
```
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        if cx.str_at(svc.node, &["deploy", "mode"]) != Some("global") {
            continue;
        }
        let Some(ports) = cx.at(svc.node, &["ports"]).and_then(|p| cx.doc.seq(p)) else { continue };
        for &port in ports {
            let ingress = match cx.doc.scalar(port) {
                Some(_) => true,
                None => cx.str_at(port, &["mode"]).unwrap_or("ingress") != "host",
            };
            if ingress {
                out.push(
                    Hit::new(
                        cx.span(port),
                        format!("global service `{}` publishes this port through the ingress mesh", svc.name),
                    )
                    .help("use the long syntax with `mode: host`"),
                );
            }
        }
    }
}
