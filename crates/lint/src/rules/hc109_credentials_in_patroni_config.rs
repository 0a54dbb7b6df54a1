use super::{Check, Rule};
use crate::finding::{Family, Hit, Severity};
use crate::secrets::{conninfo_password, is_literal_secret};
use crate::yaml::{Doc, NodeId};

pub const RULE: Rule = Rule {
    code: "HC109",
    name: "credentials-in-patroni-config",
    family: Family::Secrets,
    severity: Severity::Error,
    summary: "A Patroni configuration holds a literal password (database roles, REST API, etcd)",
    doc: r#"
## What it does
Reads the Patroni configurations lint finds (the files HC413 reads, by
the directory walk or through a stack's `configs: ... file:`) and reports a
literal value at the keys that hold Patroni's credentials:
`postgresql.authentication.{superuser,replication,rewind}.password` (and
`sslpassword`), `restapi.authentication.password`, `ctl.authentication.password`,
the `keyfile_password` of `restapi` and `ctl`, `etcd.password`,
`etcd3.password`, `consul.token`, `raft.password`,
`zookeeper.key_password`, `bootstrap.users.*.password`, and a `password=`
in `postgresql.recovery_conf.primary_conninfo`. A member's own file
without `bootstrap:` (`scope:` with `restapi:` or `postgresql:`) is read
too. A `${VAR}` placeholder (a file templated at
start) is not reported.

## Why it matters
A Patroni configuration shipped as a Docker config is readable by every task
that mounts it, kept in the swarm's raft log, shown by `docker config
inspect`, and usually committed beside the stack. These passwords open the
superuser role, the replication stream, and the REST API that can switch
over or restart the cluster.

## Example
```yaml
scope: pg
restapi:
  listen: 0.0.0.0:8008
  authentication:
    username: patroni
    password: hunter2
bootstrap:
  dcs:
    ttl: 30
```

## Fix
Leave the passwords out of the file. Patroni reads each one from its
environment (`PATRONI_SUPERUSER_PASSWORD`, `PATRONI_REPLICATION_PASSWORD`,
`PATRONI_REWIND_PASSWORD`, `PATRONI_RESTAPI_PASSWORD`, `PATRONI_CTL_PASSWORD`,
`PATRONI_ETCD3_PASSWORD`, ...). Set those in the container's entrypoint
from Docker secret files, as the entrypoint `hacompile build` emits for the
`patroni` topology does, so that no value is in the stack either.
"#,
    check: Check::Patroni(check),
};

/// (path, the environment variable Patroni reads instead).
const PLACES: &[(&[&str], &str)] = &[
    (&["postgresql", "authentication", "superuser", "password"], "PATRONI_SUPERUSER_PASSWORD"),
    (&["postgresql", "authentication", "superuser", "sslpassword"], "PATRONI_SUPERUSER_SSLPASSWORD"),
    (&["postgresql", "authentication", "replication", "password"], "PATRONI_REPLICATION_PASSWORD"),
    (&["postgresql", "authentication", "replication", "sslpassword"], "PATRONI_REPLICATION_SSLPASSWORD"),
    (&["postgresql", "authentication", "rewind", "password"], "PATRONI_REWIND_PASSWORD"),
    (&["postgresql", "authentication", "rewind", "sslpassword"], "PATRONI_REWIND_SSLPASSWORD"),
    (&["restapi", "authentication", "password"], "PATRONI_RESTAPI_PASSWORD"),
    (&["restapi", "keyfile_password"], "PATRONI_RESTAPI_KEYFILE_PASSWORD"),
    (&["ctl", "authentication", "password"], "PATRONI_CTL_PASSWORD"),
    (&["ctl", "keyfile_password"], "PATRONI_CTL_KEYFILE_PASSWORD"),
    (&["etcd", "password"], "PATRONI_ETCD_PASSWORD"),
    (&["etcd3", "password"], "PATRONI_ETCD3_PASSWORD"),
    (&["consul", "token"], "PATRONI_CONSUL_TOKEN"),
    (&["raft", "password"], "PATRONI_RAFT_PASSWORD"),
    (&["zookeeper", "key_password"], "PATRONI_ZOOKEEPER_KEY_PASSWORD"),
];

fn literal(doc: &Doc<'_>, node: NodeId) -> bool {
    doc.scalar(node).is_some_and(|v| !v.trim().is_empty() && is_literal_secret(v))
}

fn check(doc: &Doc<'_>, root: NodeId, out: &mut Vec<Hit>) {
    for (path, variable) in PLACES {
        let Some(node) = doc.at(root, path).filter(|n| literal(doc, *n)) else { continue };
        out.push(
            Hit::new(doc.span(node), format!("`{}` is a literal password in a Patroni configuration", path.join(".")))
                .help(format!("leave it out of the file and give Patroni `{variable}` from a Docker secret file, set in the entrypoint")),
        );
    }
    // A password inside the replicas' connection string.
    if let Some(node) = doc.at(root, &["postgresql", "recovery_conf", "primary_conninfo"])
        && doc.scalar(node).and_then(conninfo_password).is_some_and(|pw| is_literal_secret(&pw))
    {
        out.push(
            Hit::new(doc.span(node), "`postgresql.recovery_conf.primary_conninfo` carries a literal password")
                .help("leave `password=` out: Patroni writes the replication credentials into its pgpass file (`postgresql.pgpass`) from `PATRONI_REPLICATION_PASSWORD`"),
        );
    }
    // Deprecated, still read by Patroni 3: users created at bootstrap.
    let Some(users) = doc.at(root, &["bootstrap", "users"]) else { return };
    for (name, user) in doc.entries(users) {
        let Some(pw) = doc.get(user, "password").filter(|n| literal(doc, *n)) else { continue };
        let who = doc.scalar(name).unwrap_or("?");
        out.push(
            Hit::new(doc.span(pw), format!("`bootstrap.users.{who}.password` is a literal password in a Patroni configuration"))
                .help("create the role in `post_bootstrap` with a password read from a Docker secret file (`bootstrap.users` is deprecated)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::source::Source;

    fn found(yaml: &str) -> Vec<String> {
        let src = Source::new("patroni.yml", yaml.to_owned());
        let doc = crate::yaml::Doc::parse(&src).expect("valid YAML");
        let mut out = Vec::new();
        super::check(&doc, doc.root.expect("a root"), &mut out);
        out.iter().map(|h| yaml[h.span.clone()].to_owned()).collect()
    }

    #[test]
    fn every_credential_place_is_read() {
        let yaml = "scope: pg\nrestapi:\n  authentication:\n    username: patroni\n    password: api-pw\n\
                    etcd3:\n  hosts: [etcd:2379]\n  password: 'etcd pw'\n\
                    postgresql:\n  authentication:\n    superuser:\n      username: postgres\n      password: su-pw\n\
                    \x20   replication:\n      username: rep\n      password: \"rep-pw\"\n\
                    bootstrap:\n  users:\n    app:\n      password: app-pw\n";
        assert_eq!(found(yaml), ["su-pw", "\"rep-pw\"", "api-pw", "'etcd pw'", "app-pw"]);
    }

    #[test]
    fn zookeeper_keys_and_a_conninfo_password() {
        let yaml = "scope: pg\nzookeeper:\n  hosts: [z:2181]\n  key_password: zk-pw\n\
                    postgresql:\n  recovery_conf:\n    primary_conninfo: host=a user=rep password=rep-pw\n";
        assert_eq!(found(yaml), ["zk-pw", "host=a user=rep password=rep-pw"]);
    }

    #[test]
    fn placeholders_and_empty_values_are_not_reported() {
        let yaml = "scope: pg\nrestapi:\n  authentication:\n    password: ${PATRONI_RESTAPI_PASSWORD}\n\
                    postgresql:\n  authentication:\n    superuser:\n      password: ''\n    replication:\n      username: rep\n";
        assert!(found(yaml).is_empty(), "{:?}", found(yaml));
    }
}
