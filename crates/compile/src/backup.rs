//! Backups with pgBackRest, shared by both topologies: the server settings
//! that archive WAL and fetch it back, `pgbackrest.conf` (no credential in
//! it), the wrapper script that reads the repository's credentials from
//! Docker secrets at each call and runs the base backup scheduler, and what
//! a database service mounts for them.
//!
//! Base backups run inside the database containers, not in a service of
//! their own: `pgbackrest backup` must run where the data directory is (or
//! reach it through pgBackRest's own SSH or TLS protocol on every database
//! host), so a separate service could not back up a primary on another
//! node. Every database service starts the scheduler (detached, adopted by
//! the container's init); it backs up only while its server is the primary.

use std::collections::BTreeMap;

use hacompile_spec::values::parse_schedule;
use hacompile_spec::{DEFAULT_REPO_PATH, DEFAULT_S3_PATH, RepoType, UriStyle, ValidSpec};
use hacompile_stack as st;

use crate::OutputFile;
use crate::names::secret_path;
use crate::services::secret;

pub const WRAPPER_SCRIPT: &str = include_str!("../scripts/pgbackrest.sh");
/// Files beside the stack.
pub const WRAPPER: &str = "pgbackrest.sh";
pub const CONFIG: &str = "pgbackrest.conf";
/// Where the services see them.
pub const WRAPPER_PATH: &str = "/usr/local/bin/hacompile-pgbackrest";
pub const CONFIG_PATH: &str = "/etc/pgbackrest/pgbackrest.conf";
const CFG_KEY_WRAPPER: &str = "pgbackrest_wrapper";
const CFG_KEY_CONFIG: &str = "pgbackrest_conf";
/// The scheduler's record of its last runs: on the data volume, beside PGDATA.
const STATE_DIR: &str = "/var/lib/postgresql/data/hacompile-backup";
/// A switch to a new WAL file at least this often, so an idle primary's
/// last commits reach the archive within a minute.
const ARCHIVE_TIMEOUT: &str = "60s";
const MODE_0444: u32 = 0o444;
const MODE_0555: u32 = 0o555;

/// `archive_command`: every finished WAL file into the repository.
pub fn archive_command() -> String {
    format!("{WRAPPER_PATH} archive-push %p")
}

/// `restore_command`: a WAL file back from the repository (recovery, and a
/// replica whose primary no longer has the WAL it needs).
pub fn restore_command() -> String {
    format!("{WRAPPER_PATH} archive-get %f \"%p\"")
}

/// Server settings for archiving, in a fixed order (empty without `[backup]`).
/// `restore_command` is last: Patroni takes it from its recovery settings.
pub fn server_settings(spec: &ValidSpec) -> Vec<(String, String)> {
    if spec.backup().is_none() {
        return Vec::new();
    }
    vec![
        // `on`: the primary archives; a replica starts when it is promoted.
        ("archive_mode".into(), "on".into()),
        ("archive_command".into(), archive_command()),
        ("archive_timeout".into(), ARCHIVE_TIMEOUT.into()),
        ("restore_command".into(), restore_command()),
    ]
}

/// pgbackrest.conf: the stanza's repository, retention and compression.
/// Credentials and per-service paths come from the environment.
pub fn config(spec: &ValidSpec) -> Option<String> {
    let b = spec.backup()?;
    let r = b.repository.get();
    let mut global: Vec<(&str, String)> = Vec::new();
    match r.kind.get() {
        RepoType::Posix => {
            global.push(("repo1-type", "posix".into()));
            global.push(("repo1-path", r.path.as_ref().map_or(DEFAULT_REPO_PATH.into(), |p| p.get().clone())));
        }
        RepoType::S3 => {
            let get = |v: &Option<hacompile_spec::Sp<String>>| v.as_ref().map(|v| v.get().clone()).unwrap_or_default();
            global.push(("repo1-type", "s3".into()));
            global.push(("repo1-path", r.path.as_ref().map_or(DEFAULT_S3_PATH.into(), |p| p.get().clone())));
            global.push(("repo1-s3-bucket", get(&r.bucket)));
            global.push(("repo1-s3-endpoint", get(&r.endpoint)));
            global.push(("repo1-s3-region", get(&r.region)));
            let style = match r.uri_style.as_ref().map(|s| *s.get()) {
                Some(UriStyle::Path) => "path",
                _ => "host",
            };
            global.push(("repo1-s3-uri-style", style.into()));
            let verify = r.verify_tls.as_ref().is_none_or(|v| *v.get());
            global.push(("repo1-storage-verify-tls", if verify { "y" } else { "n" }.into()));
            // A private CA, as the Docker secret the services mount (a path, not a credential).
            if let Some(ca) = &r.ca {
                global.push(("repo1-storage-ca-file", secret_path(ca.secret.get())));
            }
        }
    }
    global.push(("repo1-retention-full", b.retention_full.to_string()));
    global.push(("repo1-retention-diff", b.retention_diff.to_string()));
    if *b.encrypt.get() {
        global.push(("repo1-cipher-type", "aes-256-cbc".into()));
    }
    if let Some(n) = &b.process_max {
        global.push(("process-max", n.get().to_string()));
    }
    global.push(("compress-type", b.compress_type.as_str().into()));
    if b.compress_type != hacompile_spec::CompressType::None {
        global.push(("compress-level", b.compress_level.to_string()));
    }
    // Logs to the container's output only (docker logs); no files.
    global.push(("log-level-console", "info".into()));
    global.push(("log-level-stderr", "warn".into()));
    global.push(("log-level-file", "off".into()));
    global.push(("start-fast", "y".into()));
    global.push(("lock-path", "/tmp/pgbackrest".into()));
    let mut out = format!(
        "# Generated by hacompile from {}. Do not edit: change the spec and build again.\n\
         # pgBackRest's configuration. Credentials (passphrase, S3 keys) come from Docker\n\
         # secrets through the environment hacompile-pgbackrest sets; none is in this file.\n\
         # pg1-path and the stanza come from each service's environment.\n[global]\n",
        hacompile_boundary::text::line(spec.source().name())
    );
    for (k, v) in global {
        out.push_str(&format!("{k}={v}\n"));
    }
    Some(out)
}

/// The two files the database services read.
pub fn companions(spec: &ValidSpec) -> Vec<OutputFile> {
    let Some(conf) = config(spec) else { return Vec::new() };
    vec![
        OutputFile::config(CONFIG, CFG_KEY_CONFIG, &conf, false),
        OutputFile::config(WRAPPER, CFG_KEY_WRAPPER, WRAPPER_SCRIPT, true),
    ]
}

/// What a database service adds for backups: environment, secrets, configs
/// and the repository's volume.
pub struct ServiceParts {
    pub environment: BTreeMap<String, String>,
    pub secrets: Vec<st::FileRef>,
    pub configs: Vec<st::FileRef>,
    pub mounts: Vec<st::Mount>,
}

/// `pgdata`: the server's data directory; `uid`: who reads the secrets;
/// `password`: pass the superuser's password (Patroni's pg_hba asks for it
/// on the local socket; the official image trusts it).
pub fn service_parts(spec: &ValidSpec, pgdata: &str, uid: &str, password: bool) -> Option<ServiceParts> {
    let b = spec.backup()?;
    let pg = &spec.spec().postgres;
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("PGBACKREST_CONFIG", CONFIG_PATH.into());
    set("PGBACKREST_STANZA", spec.backup_stanza().expect("backup is set"));
    set("PGBACKREST_PG1_PATH", pgdata.into());
    set("HACOMPILE_BACKUP_STATE_DIR", STATE_DIR.into());
    set("HACOMPILE_BACKUP_PG_USER_FILE", secret_path(pg.user.secret.get()));
    let mut secrets = Vec::new();
    if password {
        set("HACOMPILE_BACKUP_PG_PASSWORD_FILE", secret_path(pg.password.secret.get()));
    }
    if let Some(c) = b.cipher_pass.as_ref().filter(|_| *b.encrypt.get()) {
        set("HACOMPILE_BACKUP_CIPHER_PASS_FILE", secret_path(c.secret.get()));
        secrets.push(secret(&c.secret, uid));
    }
    let r = b.repository.get();
    if let (Some(k), Some(s)) = (&r.key, &r.key_secret) {
        set("HACOMPILE_BACKUP_S3_KEY_FILE", secret_path(k.secret.get()));
        set("HACOMPILE_BACKUP_S3_KEY_SECRET_FILE", secret_path(s.secret.get()));
        secrets.push(secret(&k.secret, uid));
        secrets.push(secret(&s.secret, uid));
    }
    if let Some(ca) = &r.ca {
        secrets.push(secret(&ca.secret, uid));
    }
    let (full_days, full_time) = parse_schedule(&b.schedule.full).expect("schedules were validated");
    let days = |d: Vec<u8>| d.iter().map(u8::to_string).collect::<Vec<_>>().join(" ");
    set("HACOMPILE_BACKUP_FULL_DAYS", days(full_days));
    set("HACOMPILE_BACKUP_FULL_TIME", full_time);
    if b.schedule.diff.get() != "none" {
        let (d, t) = parse_schedule(&b.schedule.diff).expect("schedules were validated");
        set("HACOMPILE_BACKUP_DIFF_DAYS", days(d));
        set("HACOMPILE_BACKUP_DIFF_TIME", t);
    }
    let configs = vec![
        st::FileRef {
            source: CFG_KEY_CONFIG.into(),
            target: CONFIG_PATH.into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: MODE_0444,
        },
        st::FileRef {
            source: CFG_KEY_WRAPPER.into(),
            target: WRAPPER_PATH.into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: MODE_0555,
        },
    ];
    let mounts = spec
        .backup_volume()
        .map(|v| st::Mount {
            kind: "volume".into(),
            source: Some(v),
            target: r.path.as_ref().map_or(DEFAULT_REPO_PATH.into(), |p| p.get().clone()),
            tmpfs: None,
        })
        .into_iter()
        .collect();
    Some(ServiceParts { environment: env, secrets, configs, mounts })
}

/// The repository's volume for the stack's `volumes:` (posix), with the
/// NFS options that make it the same storage on every node.
pub fn volume(spec: &ValidSpec) -> Option<(String, st::Volume)> {
    let name = spec.backup_volume()?;
    let r = spec.backup().expect("a volume means backup").repository.get();
    let mut v = st::Volume { driver: "local".into(), ..Default::default() };
    if let Some(nfs) = &r.nfs {
        let opts = nfs.options.as_ref().map_or("nfsvers=4,rw".to_owned(), |o| o.get().clone());
        v.driver_opts = BTreeMap::from([
            ("type".to_owned(), "nfs".to_owned()),
            ("o".to_owned(), format!("addr={},{opts}", nfs.address.get())),
            ("device".to_owned(), format!(":{}", nfs.export.get())),
        ]);
    }
    Some((name, v))
}
