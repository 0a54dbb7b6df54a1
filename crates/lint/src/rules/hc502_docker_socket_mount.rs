use super::mounts::binds;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC502",
    name: "docker-socket-mount",
    family: Family::Hardening,
    severity: Severity::Error,
    summary: "A service mounts the Docker socket",
    doc: r#"
## What it does
Reports bind mounts of `/var/run/docker.sock` or `/run/docker.sock`.

## Why it matters
The socket is the Docker API without authentication: whoever controls the
container can start a privileged container on the host, and on a manager
node, control the whole swarm, secrets included.

## Example
```yaml
volumes:
  - /var/run/docker.sock:/var/run/docker.sock
```

## Fix
Remove it. If a tool truly needs the API, put a filtering socket proxy in
front of it, read-only, on the fewest nodes possible.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.services() {
        for (path, node) in binds(cx, svc.node) {
            if path.trim_end_matches('/').ends_with("docker.sock") {
                out.push(
                    Hit::new(
                        cx.span(node),
                        format!("service `{}` mounts the Docker socket: control of the host and the swarm", svc.name),
                    )
                    .help("remove the mount, or front the API with a read-only filtering proxy"),
                );
            }
        }
    }
}
