use super::mounts::binds;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC503",
    name: "sensitive-host-mount",
    family: Family::Hardening,
    severity: Severity::Error,
    summary: "A service bind-mounts a sensitive host directory",
    doc: r#"
## What it does
Reports bind mounts of `/`, `/etc`, `/root`, `/boot`, `/proc`, `/sys`, `/dev`,
`/var/lib/docker`, `/var/run`, `/run` (and below, except `/run/secrets`).

## Why it matters
These paths let a container read host credentials, change host configuration
or reach other containers' data.

## Example
```yaml
volumes:
  - /etc:/host/etc
```

## Fix
Mount only the file the service needs, read-only, or deliver it as a swarm
config or secret.
"#,
    check: Check::Stack(check),
};

const SENSITIVE: &[&str] =
    &["/etc", "/root", "/boot", "/proc", "/sys", "/dev", "/var/lib/docker", "/var/run", "/run", "/home"];

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for (path, node) in binds(cx, svc.node) {
            let p = path.trim_end_matches('/');
            let hit = p.is_empty() || SENSITIVE.iter().any(|s| p == *s || p.starts_with(&format!("{s}/")));
            if hit && !p.ends_with("docker.sock") && !p.starts_with("/run/secrets") {
                out.push(
                    Hit::new(
                        cx.span(node),
                        format!("service `{}` mounts the host's `{}`", svc.name, if p.is_empty() { "/" } else { p }),
                    )
                    .help("mount only the file needed, read-only, or deliver it as a config or secret"),
                );
            }
        }
    }
}
