use super::interpolation::with_defaults_or;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC512",
    name: "port-on-all-interfaces",
    family: Family::Hardening,
    severity: Severity::Info,
    summary: "A port is published on every interface of the host (short syntax without an IP)",
    doc: r#"
## What it does
Reports short-syntax ports without a host IP (`"8080:80"`) on services other
than databases (those are HC508), variables judged by their defaults
(`"${WEB_PORT:-8080}:80"`; `"${PORT}:80"` has no address whatever `PORT`
is). Informational: under `docker compose` the port is open on every
interface, and Docker's rules bypass host firewalls
such as ufw; under swarm every published port is, and the long syntax with
`mode: host` at least keeps it off the ingress mesh.

## Why it matters
An admin or debug port meant for localhost ends up reachable from the whole
network the host is on.

## Example
```yaml
ports:
  - "8080:80"
```

## Fix
Under compose, bind it: `"127.0.0.1:8080:80"`. Under swarm, use the long
syntax with `mode: host` and restrict the port in the host's firewall, or do
not publish it.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services().iter().filter(|s| !cx.is_database(s)) {
        for &port in cx.at(svc.node, &["ports"]).and_then(|p| cx.doc.seq(p)).unwrap_or(&[]) {
            let Some(short) = cx.doc.scalar(port) else { continue };
            // A variable is judged by its default; one without a default
            // stands for a port (or an address), never for a colon.
            let Some(resolved) = with_defaults_or(short, "VAR") else { continue };
            // `HOST:CONTAINER` has one colon; `IP:HOST:CONTAINER` two (IPv6 in brackets more).
            let bound = resolved.starts_with('[') || resolved.matches(':').count() >= 2;
            if resolved.contains(':') && !bound {
                out.push(
                    Hit::new(cx.span(port), format!("service `{}` publishes `{short}` on every interface", svc.name))
                        .help("compose: bind it to an address (`127.0.0.1:...`); swarm: long syntax with `mode: host` and a firewall rule"),
                );
            }
        }
    }
}
