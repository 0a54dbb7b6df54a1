use super::backup::{pgbackrest, walg_storage};
use super::{Check, Rule};
use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};

pub const RULE: Rule = Rule {
    code: "HC518",
    name: "backup-repository-unencrypted",
    family: Family::Hardening,
    severity: Severity::Warning,
    summary: "A backup repository is not encrypted",
    doc: r#"
## What it does
Reads the pgBackRest configuration each service shows (`PGBACKREST_*`
variables, `--repoN-...` options on a `pgbackrest` command line, a
pgbackrest.conf mounted from beside the stack) and reports a repository
with `repoN-cipher-type=none`, or with no `repoN-cipher-type` at all (the
default is `none`), unless it is object storage encrypted by the server
with a key of yours (`repoN-s3-kms-key-id`, `repoN-s3-sse-customer-key`).
A configuration file the stack names but that is not beside it is judged
only on what is shown elsewhere. For WAL-G (a `WALG_*_PREFIX` storage in
the environment), reports a service with no encryption key
(`WALG_LIBSODIUM_KEY`, `WALG_LIBSODIUM_KEY_PATH`, `WALG_PGP_KEY`,
`WALG_PGP_KEY_PATH`, `WALG_CSE_KMS_ID`).

## Why it matters
A repository holds a full copy of the database, every row of every table,
and the WAL of every change since. Whoever can read the bucket, the NFS
export or a stolen disk of the backup host reads all of it, without any of
the database's roles or `pg_hba.conf` rules. Backups also live longer and
travel further than the database (copied off site, kept for months).

## Example
```yaml
services:
  db:
    image: registry.example.com/postgres-pgbackrest:16
    environment:
      PGBACKREST_REPO1_TYPE: s3
      PGBACKREST_REPO1_S3_BUCKET: backups
      PGBACKREST_REPO1_RETENTION_FULL: "2"
```

## Fix
Encrypt the repository with a passphrase that is not stored beside it:
`repo1-cipher-type=aes-256-cbc` with `repo1-cipher-pass` from a Docker
secret (an environment variable set from the secret file at start, never
written in the stack); with hacompile, `cipher_pass = { secret = "..." }`
in `[backup]`. A repository's cipher is chosen when it is created
(`stanza-create`): encrypting an existing one means a new repository.
"#,
    check: Check::Stack(check),
};

const WALG_KEYS: &[&str] =
    &["WALG_LIBSODIUM_KEY", "WALG_LIBSODIUM_KEY_PATH", "WALG_PGP_KEY", "WALG_PGP_KEY_PATH", "WALG_CSE_KMS_ID"];

fn check(cx: &StackCx<'_>, out: &mut Vec<Hit>) {
    for c in pgbackrest(cx) {
        for repo in c.repos() {
            match c.get(repo, "cipher-type") {
                Some(s) if s.value.trim().eq_ignore_ascii_case("none") => out.push(
                    Hit::new(
                        s.span.clone(),
                        format!(
                            "pgBackRest repository `repo{repo}` in {} is not encrypted (`repo{repo}-cipher-type=none`)",
                            c.anchor_what
                        ),
                    )
                    .help(format!(
                        "set `repo{repo}-cipher-type=aes-256-cbc` with `repo{repo}-cipher-pass` from a Docker secret"
                    )),
                ),
                Some(_) => {}
                None => {
                    let server_side = ["s3-kms-key-id", "s3-sse-customer-key"].iter().any(|o| c.get(repo, o).is_some());
                    if server_side || c.unseen {
                        continue;
                    }
                    out.push(
                        Hit::new(
                            c.anchor.clone(),
                            format!(
                                "pgBackRest repository `repo{repo}` in {} sets no `repo{repo}-cipher-type`: it is not encrypted",
                                c.anchor_what
                            ),
                        )
                        .help(format!(
                            "set `repo{repo}-cipher-type=aes-256-cbc` with `repo{repo}-cipher-pass` from a Docker secret"
                        )),
                    );
                }
            }
        }
    }
    for (svc, env) in cx.services().iter().zip(cx.environments()) {
        let Some(storage) = env.iter().find(|e| walg_storage(e.key)) else { continue };
        if env.iter().any(|e| WALG_KEYS.contains(&e.key)) {
            continue;
        }
        out.push(
            Hit::new(
                storage.key_span.clone(),
                format!(
                    "`{}` archives with WAL-G (`{}`) without an encryption key: the archive is not encrypted",
                    svc.name, storage.key
                ),
            )
            .help("set `WALG_LIBSODIUM_KEY_PATH` to a Docker secret's file (or `WALG_PGP_KEY_PATH`)"),
        );
    }
}
