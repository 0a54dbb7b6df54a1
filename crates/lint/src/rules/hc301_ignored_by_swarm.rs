use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC301",
    name: "ignored-by-swarm",
    family: Family::Swarm,
    severity: Severity::Warning,
    summary: "A service key that `docker stack deploy` ignores, drops or deprecates",
    doc: r#"
## What it does
Reports service keys that swarm does not apply: `build`, `container_name`,
`restart`, `links`, `external_links`, `cgroup_parent`, `devices`,
`security_opt`, `shm_size`, `tmpfs` (the service-level key), `expose`,
`sysctls` on old engines aside. Each finding says the swarm way to get the
same effect. (`privileged`, `network_mode`, `pid`, `ipc` and `userns_mode` are
reported by the hardening rules.)

## Why it matters
`docker stack deploy` prints a warning once and deploys without them: a
`restart: always` the author relied on does nothing, so a crashed database is
restarted only under swarm's default policy.

## Example
```yaml
services:
  db:
    image: postgres:16
    container_name: db
    restart: always
```

## Fix
Use `deploy.restart_policy` instead of `restart`, drop `container_name` (the
service name is the DNS name), build and push images instead of `build`, and
use a `type: tmpfs` volume instead of `tmpfs:`.
"#,
    check: Check::Stack(check),
};

const IGNORED: &[(&str, &str)] = &[
    ("build", "swarm deploys images only: build and push the image, then reference it by digest"),
    ("container_name", "swarm names tasks itself; other services reach this one by its service name"),
    ("restart", "use `deploy.restart_policy` (condition, delay, max_attempts, window)"),
    ("links", "services on a shared overlay network reach each other by service name"),
    ("external_links", "attach both stacks to a shared (external) overlay network and use service names"),
    ("cgroup_parent", "swarm places tasks in its own cgroups; remove it"),
    ("devices", "swarm cannot map devices; run such workloads outside the stack"),
    ("security_opt", "not applied by swarm; harden the image (non-root user, no setuid binaries)"),
    ("shm_size", "mount a `type: tmpfs` volume at /dev/shm with `tmpfs.size`"),
    ("tmpfs", "the service-level key is dropped silently: use a volume with `type: tmpfs`"),
    ("expose", "deprecated: every port is reachable on the service's overlay networks"),
];

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for (key, help) in IGNORED {
            if let Some(k) = cx.doc.key_of(svc.node, key) {
                out.push(
                    Hit::new(
                        cx.span(k),
                        format!("`{key}` of service `{}` is ignored by `docker stack deploy`", svc.name),
                    )
                    .help(*help),
                );
            }
        }
    }
}
