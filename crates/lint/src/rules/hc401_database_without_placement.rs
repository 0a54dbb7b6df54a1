use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC401",
    name: "database-without-placement",
    family: Family::HighAvailability,
    severity: Severity::Error,
    summary: "A database service with a named volume has no placement constraint",
    doc: r#"
## What it does
Reports database servers that mount a named volume but have no
`deploy.placement.constraints`. A database server is a service running a
database image (PostgreSQL and the images built on it: Citus, Spilo,
TimescaleDB, PostGIS, Patroni, a Stolon keeper; MySQL, MariaDB, MongoDB, ...)
as a server. A job that uses the image is not one: a swarm job
(`mode: replicated-job` or `global-job`); a command that runs database
clients (`pg_dump`, `pg_basebackup`, `psql -f`, `mysqldump`, ...) and no
server; or a command of its own that starts no server, run once
(`restart_policy.condition: none`). The image's own command with
`condition: none` is still a server (one HC408 reports).
Tools named after a database (`postgres-exporter`, `postgres-backup-s3`,
`mongo-express`) are not databases either.

## Why it matters
Named volumes are local to a node. When swarm reschedules the task, after a
node drain or a restart, it may start it on another node with an empty
volume: PostgreSQL runs `initdb` and the cluster comes back with no data.

## Example
```yaml
services:
  db:
    image: postgres:16
    volumes: [pgdata:/var/lib/postgresql/data]
```

## Fix
Label the node that holds the data and pin the service to it:
```yaml
deploy:
  placement:
    constraints: [node.labels.pg.role == primary]
```
"#,
    check: Check::Stack(check),
};

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for svc in cx.databases() {
        if cx.named_volumes(svc).is_empty() {
            continue;
        }
        let constrained = cx
            .at(svc.node, &["deploy", "placement", "constraints"])
            .and_then(|c| cx.doc.seq(c))
            .is_some_and(|c| !c.is_empty());
        if !constrained {
            out.push(
                Hit::new(cx.span(svc.key), format!("database service `{}` keeps data in a named volume but may run on any node", svc.name))
                    .help("pin it to the node that holds its data: `deploy.placement.constraints: [node.labels.pg.role == primary]`"),
            );
        }
    }
}
