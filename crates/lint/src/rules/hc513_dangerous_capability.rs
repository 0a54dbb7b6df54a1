use super::interpolation::with_defaults;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC513",
    name: "dangerous-capability",
    family: Family::Hardening,
    severity: Severity::Error,
    summary: "A service adds a capability that reaches the host (`SYS_ADMIN`, `ALL`, `SYS_PTRACE`, ...)",
    doc: r#"
## What it does
Reports `cap_add` entries that give a container power over the host or the
other containers: `ALL`, `SYS_ADMIN`, `SYS_MODULE`, `SYS_RAWIO`, `SYS_PTRACE`,
`SYS_BOOT`, `SYS_TIME`, `DAC_READ_SEARCH`, `NET_ADMIN`, `BPF`, `PERFMON`,
`MAC_ADMIN` and `MAC_OVERRIDE`, written with or without the `CAP_` prefix, in
any case. Swarm applies `cap_add` from Docker 20.10 on, so this matters for
`docker stack deploy` as much as for compose.

## Why it matters
`SYS_ADMIN` alone is the usual way out of a container (mount a cgroup or the
host's disks, `unshare`), `ALL` is most of `privileged: true`, `SYS_PTRACE`
reads other processes' memory, `DAC_READ_SEARCH` reads any host file by
handle, `NET_ADMIN` rewrites routes and firewall rules under every other
service on the node.

## Example
```yaml
services:
  fuse-mount:
    image: example/s3fs:1.93
    cap_add: [SYS_ADMIN]
```

## Fix
Remove it, and find what the service really needs: a FUSE mount belongs on
the host (mount it there and bind it in), a VPN or packet filter belongs in
its own host-level service outside the stack. Keep `cap_drop: [ALL]` and add
back only narrow capabilities (`NET_BIND_SERVICE`, `CHOWN`, `SETUID`,
`SETGID`).
"#,
    check: Check::Stack(check),
};

/// The capability and what it gives.
const DANGEROUS: &[(&str, &str)] = &[
    ("ALL", "every capability, most of `privileged: true`"),
    ("SYS_ADMIN", "mounts, namespaces and most of the kernel's admin interfaces: the usual container escape"),
    ("SYS_MODULE", "loading kernel modules: code in the host's kernel"),
    ("SYS_RAWIO", "raw access to devices and I/O ports"),
    ("SYS_PTRACE", "reading and changing other processes' memory"),
    ("SYS_BOOT", "rebooting the host"),
    ("SYS_TIME", "setting the host's clock"),
    ("DAC_READ_SEARCH", "reading any host file by handle"),
    ("NET_ADMIN", "rewriting interfaces, routes and firewall rules of the node"),
    ("BPF", "loading BPF programs into the host's kernel"),
    ("PERFMON", "observing every process on the host"),
    ("MAC_ADMIN", "changing the host's AppArmor or SELinux policy"),
    ("MAC_OVERRIDE", "bypassing the host's AppArmor or SELinux policy"),
];

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        let Some(list) = cx.at(svc.node, &["cap_add"]).and_then(|c| cx.doc.seq(c)) else { continue };
        for &item in list {
            let Some(cap) = cx.doc.scalar(item).and_then(with_defaults) else { continue };
            let upper = cap.trim().to_ascii_uppercase();
            let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
            if let Some((name, why)) = DANGEROUS.iter().find(|(name, _)| *name == bare) {
                out.push(
                    Hit::new(cx.span(item), format!("service `{}` adds `{name}`: {why}", svc.name))
                        .help("remove it; keep `cap_drop: [ALL]` and add back only narrow capabilities such as `NET_BIND_SERVICE`"),
                );
            }
        }
    }
}
