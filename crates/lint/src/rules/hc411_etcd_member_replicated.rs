use super::etcd;
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC411",
    name: "etcd-member-replicated",
    family: Family::HighAvailability,
    severity: Severity::Error,
    summary: "One etcd service runs several tasks (`replicas` > 1 or `mode: global`)",
    doc: r#"
## What it does
Reports an etcd member service (see HC410 for how members are found) with
`deploy.replicas` above 1 or `deploy.mode: global`.

## Why it matters
An etcd member has a stable identity: its name, its peer URL and its data
directory, all listed in the initial cluster. The tasks of one service share
one configuration and one DNS name, so they are not distinct members: they
claim the same name, or start as separate one-member clusters, and a task
rescheduled without its data directory cannot rejoin (it must be removed
and added again with `etcdctl member`).

## Example
```yaml
services:
  etcd:
    image: quay.io/coreos/etcd:v3.5.17
    deploy:
      replicas: 3
```

## Fix
One service per member (`etcd-1`, `etcd-2`, `etcd-3`), each with
`replicas: 1`, its own name, peer URL and volume, and a placement
constraint that pins it to its node.
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for i in etcd::members(cx) {
        let svc = &cx.services()[i];
        if let Some(mode) = cx.at(svc.node, &["deploy", "mode"])
            && cx.doc.scalar(mode) == Some("global")
        {
            out.push(
                Hit::new(
                    cx.span(mode),
                    format!("etcd service `{}` runs one task per node: the tasks are not distinct members", svc.name),
                )
                .help("declare one service per member, each with `replicas: 1` and its own name, peer URL and volume"),
            );
        }
        if let Some(replicas) = cx.at(svc.node, &["deploy", "replicas"])
            && let Some(n) = cx
                .doc
                .scalar(replicas)
                .and_then(super::interpolation::with_defaults)
                .and_then(|r| r.parse::<u64>().ok())
            && n > 1
        {
            out.push(
                Hit::new(cx.span(replicas), format!("etcd service `{}` runs {n} tasks of one member configuration: they are not {n} distinct members", svc.name))
                    .help("declare one service per member, each with `replicas: 1` and its own name, peer URL and volume"),
            );
        }
    }
}
