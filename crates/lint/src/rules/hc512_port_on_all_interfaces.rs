use super::ports::ports;
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
Reports short-syntax ports without a host IP (`"8080:80"`) or with the
unspecified one (`"0.0.0.0:8080:80"`, `"[::]:8080:80"`, `"0.0.0.0::80"`) on
services other than databases (those are HC508), variables judged by their defaults
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
        for port in ports(cx, svc.node) {
            let Some(short) = port.short.as_deref() else { continue };
            // `80` alone takes an ephemeral port; `0.0.0.0::80` says where.
            if port.every_interface() && (port.host_port || port.host_ip.is_some()) {
                out.push(
                    Hit::new(cx.span(port.node), format!("service `{}` publishes `{short}` on every interface", svc.name))
                        .help("compose: bind it to an address (`127.0.0.1:...`); swarm: long syntax with `mode: host` and a firewall rule"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The ports reported, as written.
    fn found(ports: &str) -> Vec<String> {
        let yaml = format!("services:\n  web:\n    image: nginx:1\n    ports: {ports}\n");
        super::super::stack_hits("compose.yml", &yaml, super::check)
    }

    /// The unspecified addresses are every interface (seen in a public
    /// stack: `0.0.0.0::8500`); an address, a variable's or loopback, is not.
    #[test]
    fn the_unspecified_address_is_every_interface() {
        assert_eq!(
            found(
                r#"["8080:80", "0.0.0.0:8081:80", "0.0.0.0::8500", "[::]:8082:80", "80", "127.0.0.1:8083:80", "[::1]:8084:80", "${BIND}:8085:80"]"#
            ),
            [r#""8080:80""#, r#""0.0.0.0:8081:80""#, r#""0.0.0.0::8500""#, r#""[::]:8082:80""#]
        );
    }
}
