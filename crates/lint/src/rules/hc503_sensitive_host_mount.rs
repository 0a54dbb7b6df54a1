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
`/var/lib/docker`, `/var/run`, `/run`, `/home` (and below, except
`/run/secrets`), with a variable's default judged as the path. The host's
time zone mounted read-only (`/etc/localtime:/etc/localtime:ro`,
`/etc/timezone`) is not reported; mounted writable it is, since the
container could rewrite the host's zone file.

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

/// Files a service may read from the host: its time zone.
const READ_ONLY_HARMLESS: &[&str] = &["/etc/localtime", "/etc/timezone"];

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for bind in binds(cx, svc.node) {
            let Some(path) = &bind.source else { continue };
            let p = path.trim_end_matches('/');
            let hit = p.is_empty() || SENSITIVE.iter().any(|s| p == *s || p.starts_with(&format!("{s}/")));
            let time_zone = bind.read_only && READ_ONLY_HARMLESS.contains(&p);
            if hit && !time_zone && !p.ends_with("docker.sock") && !p.starts_with("/run/secrets") {
                out.push(
                    Hit::new(
                        cx.span(bind.node),
                        format!("service `{}` mounts the host's `{}`", svc.name, if p.is_empty() { "/" } else { p }),
                    )
                    .help(if READ_ONLY_HARMLESS.contains(&p) {
                        "mount it read-only (`:ro`)"
                    } else {
                        "mount only the file needed, read-only, or deliver it as a config or secret"
                    }),
                );
            }
        }
    }
}
