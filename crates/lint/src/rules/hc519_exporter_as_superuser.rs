use std::collections::HashSet;

use super::{Check, Rule};
use crate::context::{Entry, StackCx};
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC519",
    name: "exporter-as-superuser",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "postgres_exporter connects as the superuser",
    doc: r#"
## What it does
Reports a `postgres_exporter` service that connects as `postgres`
(`DATA_SOURCE_USER`, or the user of `DATA_SOURCE_NAME`), or that reads the
superuser's name or password from the same file a PostgreSQL service of the
stack takes its `POSTGRES_USER_FILE` or `POSTGRES_PASSWORD_FILE` from.

## Why it matters
An exporter reads statistics views; `pg_monitor` grants every one of them.
As the superuser it holds a credential that can read and change all data,
drop databases and run programs on the server, in a container that serves
HTTP to the whole network. A leak there (a log, a scrape endpoint, an image
with a hole) is a leak of the whole cluster.

## Example
```yaml
services:
  exporter:
    image: quay.io/prometheuscommunity/postgres-exporter:v0.16.0
    environment:
      DATA_SOURCE_URI: db:5432/postgres?sslmode=disable
      DATA_SOURCE_USER: postgres
      DATA_SOURCE_PASS_FILE: /run/secrets/postgres_password
```

## Fix
Create a role with `LOGIN` and `pg_monitor` only, give it a secret of its
own, and connect as it:
```sql
CREATE ROLE monitor WITH LOGIN PASSWORD '...' IN ROLE pg_monitor;
```
```yaml
      DATA_SOURCE_USER: monitor
      DATA_SOURCE_PASS_FILE: /run/secrets/monitor_password
```
hacompile's `[postgres.exporter]` creates such a role and compiles the exporters.
"#,
    check: Check::Stack(check),
};

/// The superuser every PostgreSQL image creates unless told otherwise.
const SUPERUSER: &str = "postgres";

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    // The files PostgreSQL services take the superuser's name and password from.
    let mut superuser_files: HashSet<&str> = HashSet::new();
    for (svc, env) in cx.services().iter().zip(cx.environments()) {
        if !cx.is_postgres(svc) {
            continue;
        }
        for e in env {
            if matches!(e.key, "POSTGRES_USER_FILE" | "POSTGRES_PASSWORD_FILE" | "POSTGRESQL_PASSWORD_FILE") {
                superuser_files.extend(e.value);
            }
        }
    }
    for (svc, env) in cx.services().iter().zip(cx.environments()) {
        let is_exporter =
            cx.image_base(svc).is_some_and(|b| b.contains("postgres-exporter") || b.contains("postgres_exporter"));
        if !is_exporter {
            continue;
        }
        for e in env {
            let Some(value) = e.value else { continue };
            let why = match e.key {
                "DATA_SOURCE_USER" if value == SUPERUSER => Some("connects as `postgres`".to_owned()),
                "DATA_SOURCE_NAME" if dsn_user(value) == Some(SUPERUSER) => Some("connects as `postgres`".to_owned()),
                "DATA_SOURCE_USER_FILE" | "DATA_SOURCE_PASS_FILE" if superuser_files.contains(value) => {
                    Some(format!("reads `{value}`, the superuser's credential of a PostgreSQL service"))
                }
                _ => None,
            };
            if let Some(why) = why {
                out.push(hit(svc.name, e, &why));
            }
        }
    }
}

fn hit(service: &str, e: &Entry<'_>, why: &str) -> Hit {
    Hit::new(e.value_span.clone(), format!("exporter `{service}` {why}"))
        .help("connect as a role with LOGIN and pg_monitor only, its password in a secret of its own")
}

/// The user of a connection string: URL (`postgresql://user[:pw]@host/db`)
/// or key/value (`user=NAME host=...`).
fn dsn_user(dsn: &str) -> Option<&str> {
    if let Some(rest) = dsn.strip_prefix("postgresql://").or_else(|| dsn.strip_prefix("postgres://")) {
        let (userinfo, _) = rest.split_once('@')?;
        return Some(userinfo.split(':').next().unwrap_or(userinfo));
    }
    dsn.split_whitespace().find_map(|kv| kv.strip_prefix("user=")).map(|u| u.trim_matches('\''))
}

#[cfg(test)]
mod tests {
    use super::dsn_user;

    #[test]
    fn the_user_of_either_form() {
        assert_eq!(dsn_user("postgresql://postgres:pw@db:5432/postgres"), Some("postgres"));
        assert_eq!(dsn_user("postgres://monitor@db/postgres"), Some("monitor"));
        assert_eq!(dsn_user("host=db user='postgres' dbname=x"), Some("postgres"));
        assert_eq!(dsn_user("db:5432/postgres"), None);
    }
}
