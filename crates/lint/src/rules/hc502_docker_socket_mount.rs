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
Reports bind mounts of `/var/run/docker.sock` or `/run/docker.sock`, also
when the host path is a variable whose default is the socket
(`${DOCKER_SOCK:-/var/run/docker.sock}`: the default is what ships), or a
variable without a default mounted at the socket's path in the container.

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
        for bind in binds(cx, svc.node) {
            let socket = |p: &str| p.trim_end_matches('/').ends_with("docker.sock");
            let hit = match &bind.source {
                Some(source) => socket(source),
                None => socket(&bind.target),
            };
            if hit {
                out.push(
                    Hit::new(
                        cx.span(bind.node),
                        format!("service `{}` mounts the Docker socket: control of the host and the swarm", svc.name),
                    )
                    .help("remove the mount, or front the API with a read-only filtering proxy"),
                );
            }
        }
    }
}
