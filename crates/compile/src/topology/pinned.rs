//! The pinned topology (the default): one primary service pinned to its node
//! by placement constraints, one service per asynchronous streaming replica
//! (each with its own volume and replication slot), HAProxy routing writes
//! to the primary service only and reads to the replicas, with the primary
//! as backup. No automatic failover: the README's runbook promotes a replica.
//!
//! For the official image, which has no replication of its own, it emits
//! three scripts (in `crates/compile/scripts/`), each parameterised by the
//! environment only: the primary's init script (replication role and its
//! pg_hba rule), the replica's entrypoint (cluster identity check, slot,
//! base backup, re-copy when it can no longer stream), and the healthcheck
//! every database service runs (streaming, not just accepting connections).

use std::collections::BTreeMap;

use hacompile_haproxy::{Balance, Directive as D, Mode, Section, SectionKind, ServerOptions};
use hacompile_spec::{DbService, Flavor, POSTGRES_PORT, Role, ValidSpec};
use hacompile_stack as st;

use super::Topology;
use crate::names::*;
use crate::proxy::{READ_LISTENER, WRITE_LISTENER, dynamic_server};
use crate::services::{db_deploy, db_healthcheck, db_mounts, facts, logging, secret, server_settings};
use crate::{OutputFile, PinnedImages};

pub const PRIMARY_INIT_SCRIPT: &str = include_str!("../../scripts/pg-primary-init.sh");
pub const REPLICA_ENTRYPOINT_SCRIPT: &str = include_str!("../../scripts/pg-replica-entrypoint.sh");
pub const PRIMARY_ENTRYPOINT_SCRIPT: &str = include_str!("../../scripts/pg-primary-entrypoint.sh");
pub const HEALTHCHECK_SCRIPT: &str = include_str!("../../scripts/pg-healthcheck.sh");
const DOCKERFILE_TEMPLATE: &str = include_str!("../../scripts/postgres.Dockerfile");
/// The database image recipe with `[backup]`, beside the stack.
pub const DOCKERFILE: &str = "postgres.Dockerfile";

const CFG_KEY_PRIMARY_INIT: &str = "pg_primary_init";
const CFG_KEY_REPLICA_ENTRYPOINT: &str = "pg_replica_entrypoint";
const CFG_KEY_PRIMARY_ENTRYPOINT: &str = "pg_primary_entrypoint";
const CFG_KEY_HEALTHCHECK: &str = "pg_healthcheck";
const REPLICA_ENTRYPOINT_PATH: &str = "/usr/local/bin/hacompile-replica-entrypoint.sh";
const PRIMARY_ENTRYPOINT_PATH: &str = "/usr/local/bin/hacompile-primary-entrypoint.sh";
const PRIMARY_INIT_PATH: &str = "/docker-entrypoint-initdb.d/10-hacompile-replication.sh";
const HEALTHCHECK_PATH: &str = "/usr/local/bin/hacompile-healthcheck.sh";
const MODE_0555: u32 = 0o555;

pub struct Pinned;

impl Topology for Pinned {
    fn companions(&self, spec: &ValidSpec, images: &PinnedImages) -> Vec<OutputFile> {
        if spec.spec().postgres.flavor != Flavor::Official {
            return Vec::new();
        }
        let mut out = vec![
            OutputFile::config(PRIMARY_INIT, CFG_KEY_PRIMARY_INIT, PRIMARY_INIT_SCRIPT, true),
            OutputFile::config(PRIMARY_ENTRYPOINT, CFG_KEY_PRIMARY_ENTRYPOINT, PRIMARY_ENTRYPOINT_SCRIPT, true),
            OutputFile::config(REPLICA_ENTRYPOINT, CFG_KEY_REPLICA_ENTRYPOINT, REPLICA_ENTRYPOINT_SCRIPT, true),
            OutputFile::config(HEALTHCHECK, CFG_KEY_HEALTHCHECK, HEALTHCHECK_SCRIPT, true),
        ];
        if spec.backup().is_some() {
            out.push(OutputFile::beside(DOCKERFILE, dockerfile(spec, &images.postgres)));
        }
        out
    }

    fn services(&self, spec: &ValidSpec, images: &PinnedImages, network: &str) -> Vec<(String, st::Service)> {
        spec.db_services().into_iter().map(|db| (db.name.clone(), db_service(spec, images, network, &db))).collect()
    }

    fn listeners(&self, spec: &ValidSpec, guard: &[D], check: Option<&D>) -> Vec<Section> {
        let hp = &spec.spec().haproxy;
        // Each server's `maxconn` is this proxy's share of its
        // max_connections (the primary's split between its two listeners),
        // leaving room for every proxy's checks: a spike queues instead of
        // failing the check and cutting every session.
        let (primary_writes, primary_reads) = spec.primary_maxconn();
        let server = |service: &str, backup: bool, reads: bool, maxconn: u32| D::ServerTemplate {
            prefix: format!("{service}-"),
            count: 1,
            fqdn: tasks_name(service),
            port: POSTGRES_PORT,
            options: ServerOptions {
                maxconn: Some(maxconn),
                // A returning replica takes the reads back from the primary.
                shutdown_backup_sessions_on_up: reads && !backup,
                ..dynamic_server(backup)
            },
        };
        let listener = |name: &str, port: u16, balance, servers: Vec<D>| {
            let mut directives = vec![D::Bind { address: String::new(), port }, D::Mode(Mode::Tcp)];
            directives.extend(guard.iter().cloned());
            directives.extend([D::OptionTcpLog, D::Balance(balance)]);
            directives.extend(check.cloned());
            directives.extend(servers);
            Section { kind: SectionKind::Listen(name.into()), comment: None, directives }
        };
        let services = spec.db_services();
        let primary = services.iter().find(|s| s.role == Role::Primary).expect("a spec always has a primary");
        let mut write = listener(
            WRITE_LISTENER,
            *hp.write_port.get(),
            Balance::First,
            vec![server(&primary.name, false, false, primary_writes)],
        );
        write.comment = Some("Writes: the primary service only; never a replica".into());
        let mut read_servers: Vec<D> = services
            .iter()
            .filter(|s| s.role != Role::Primary)
            .map(|s| server(&s.name, false, true, spec.replica_maxconn()))
            .collect();
        read_servers.push(server(&primary.name, true, true, primary_reads));
        let mut read = listener(READ_LISTENER, *hp.read_port.get(), Balance::LeastConn, read_servers);
        read.comment = Some("Reads: the replicas; the primary only while no replica is up".into());
        vec![write, read]
    }
}

/// The database image recipe with `[backup]`: the pinned official image plus pgBackRest.
pub(crate) fn dockerfile(spec: &ValidSpec, postgres_image: &str) -> String {
    crate::image_recipe(spec, postgres_image, DOCKERFILE_TEMPLATE)
}

/// A replica's replication slot: its service name as PostgreSQL spells names.
pub fn slot_name(service: &str) -> String {
    service.replace('-', "_")
}

fn config_ref(source: &str, target: &str, uid: &str) -> st::FileRef {
    st::FileRef { source: source.into(), target: target.into(), uid: uid.into(), gid: uid.into(), mode: MODE_0555 }
}

fn db_service(spec: &ValidSpec, images: &PinnedImages, network: &str, db: &DbService<'_>) -> st::Service {
    let s = spec.spec();
    let pg = &s.postgres;
    let f = facts(pg.flavor);
    let primary =
        spec.db_services().into_iter().find(|d| d.role == Role::Primary).expect("a spec always has a primary");
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    let mut secrets = vec![secret(&pg.user.secret, f.uid)];
    let mut configs = Vec::new();
    let mut entrypoint = None;
    let mut command = None;
    let repl_password_file = secret_path(pg.replication.password.secret.get());
    // Server settings on the command line, so they need no config file; the
    // same on every database service (a replica may be promoted one day).
    let mut server = vec!["postgres".to_owned()];
    for (k, v) in server_settings(spec, db) {
        server.extend(["-c".to_owned(), format!("{k}={v}")]);
    }
    let user_file = secret_path(pg.user.secret.get());
    let healthcheck_test = match pg.flavor {
        Flavor::Official => {
            set("PGDATA", f.pgdata.expect("official flavor has PGDATA").into());
            set("POSTGRES_USER_FILE", user_file.clone());
            set("HACOMPILE_REPLICATION_USER", pg.replication.user.get().clone());
            set("HACOMPILE_REPLICATION_PASSWORD_FILE", repl_password_file);
            set("HACOMPILE_ROLE", if db.role == Role::Primary { "primary" } else { "replica" }.into());
            set("HACOMPILE_PRIMARY_HOST", primary.name.clone());
            set("HACOMPILE_PRIMARY_PORT", POSTGRES_PORT.to_string());
            secrets.push(secret(&pg.replication.password.secret, f.uid));
            configs.push(config_ref(CFG_KEY_HEALTHCHECK, HEALTHCHECK_PATH, "0"));
            if db.role == Role::Primary {
                // An empty volume under a primary whose replicas hold data
                // is a lost volume, not a first deploy: the entrypoint asks
                // them before the image's entrypoint creates a new cluster.
                let replicas: Vec<String> = spec
                    .db_services()
                    .into_iter()
                    .filter(|d| d.role != Role::Primary)
                    .map(|d| format!("{}:{POSTGRES_PORT}", d.name))
                    .collect();
                set("HACOMPILE_REPLICAS", replicas.join(" "));
                configs.push(config_ref(CFG_KEY_PRIMARY_ENTRYPOINT, PRIMARY_ENTRYPOINT_PATH, "0"));
                entrypoint = Some(vec!["bash".to_owned(), PRIMARY_ENTRYPOINT_PATH.to_owned()]);
                command = Some(std::iter::once("docker-entrypoint.sh".to_owned()).chain(server).collect());
                set("POSTGRES_PASSWORD_FILE", secret_path(pg.password.secret.get()));
                set("POSTGRES_DB", pg.database.get().clone());
                secrets.insert(1, secret(&pg.password.secret, f.uid));
                configs.push(config_ref(CFG_KEY_PRIMARY_INIT, PRIMARY_INIT_PATH, f.uid));
                // The init script creates the exporters' role.
                if let Some(e) = spec.exporter() {
                    set("HACOMPILE_MONITOR_USER", e.user.get().clone());
                    set("HACOMPILE_MONITOR_PASSWORD_FILE", secret_path(e.password.secret.get()));
                    secrets.push(secret(&e.password.secret, f.uid));
                }
            } else {
                set("HACOMPILE_PGPASS_FILE", format!("{}/hacompile.pgpass", f.data_mount));
                if spec.replication_slots() {
                    set("HACOMPILE_REPLICATION_SLOT", slot_name(&db.name));
                }
                if let Some(rate) = &pg.basebackup_max_rate {
                    set("HACOMPILE_BASEBACKUP_MAX_RATE", rate.get().clone());
                }
                let recopy_ms =
                    hacompile_spec::values::parse_duration(&pg.recopy_after).expect("durations were validated");
                set("HACOMPILE_RECOPY_AFTER", recopy_ms.div_ceil(1000).to_string());
                configs.push(config_ref(CFG_KEY_REPLICA_ENTRYPOINT, REPLICA_ENTRYPOINT_PATH, "0"));
                entrypoint = Some(vec!["bash".to_owned(), REPLICA_ENTRYPOINT_PATH.to_owned()]);
                command = Some(std::iter::once("docker-entrypoint.sh".to_owned()).chain(server).collect());
            }
            vec!["CMD".into(), "bash".into(), HEALTHCHECK_PATH.into()]
        }
        Flavor::Bitnami => {
            set("POSTGRESQL_USERNAME_FILE", user_file.clone());
            set("POSTGRESQL_PASSWORD_FILE", secret_path(pg.password.secret.get()));
            set("POSTGRESQL_DATABASE", pg.database.get().clone());
            set("POSTGRESQL_REPLICATION_USER", pg.replication.user.get().clone());
            set("POSTGRESQL_REPLICATION_PASSWORD_FILE", repl_password_file);
            secrets.push(secret(&pg.password.secret, f.uid));
            secrets.push(secret(&pg.replication.password.secret, f.uid));
            if db.role == Role::Primary {
                set("POSTGRESQL_REPLICATION_MODE", "master".into());
            } else {
                set("POSTGRESQL_REPLICATION_MODE", "slave".into());
                set("POSTGRESQL_MASTER_HOST", primary.name.clone());
                set("POSTGRESQL_MASTER_PORT_NUMBER", POSTGRES_PORT.to_string());
            }
            // `$$` is compose's escape for a literal `$`: the shell in the
            // container reads the user name from the secret file at check time.
            let probe = format!(
                "pg_isready -q -h 127.0.0.1 -p {POSTGRES_PORT} -U \"$$(cat {user_file})\" -d {}",
                pg.database.get()
            );
            vec!["CMD-SHELL".into(), probe]
        }
    };
    let mut extra_mounts = Vec::new();
    let backup = f.pgdata.and_then(|pgdata| crate::backup::service_parts(spec, pgdata, f.uid, false));
    if let Some(parts) = &backup {
        env.extend(parts.environment.clone());
        secrets.extend(parts.secrets.clone());
        configs.extend(parts.configs.clone());
        extra_mounts.extend(parts.mounts.clone());
        // The scheduler starts first, detached; then the service's own
        // entrypoint (the image's, or the replica's). Every server runs it,
        // since a replica may be promoted; it backs up only on a primary.
        let rest = entrypoint.take().unwrap_or_else(|| vec!["docker-entrypoint.sh".to_owned()]);
        entrypoint =
            Some([crate::backup::WRAPPER_PATH.to_owned(), "launch".to_owned()].into_iter().chain(rest).collect());
    }
    st::Service {
        image: images.backup.clone().unwrap_or_else(|| images.postgres.clone()),
        hostname: Some(db.name.clone()),
        entrypoint,
        init: backup.is_some().then_some(true),
        command,
        environment: env,
        secrets,
        configs,
        volumes: db_mounts(spec, &db.volume, f.data_mount, extra_mounts),
        networks: vec![network.to_owned()],
        ports: Vec::new(),
        cap_drop: vec!["ALL".into()],
        cap_add: f.capabilities.iter().map(|c| (*c).to_owned()).collect(),
        // Fast shutdown: abort transactions, checkpoint, exit.
        stop_signal: Some("SIGINT".into()),
        stop_grace_period: Some(pg.stop_grace_period.get().clone()),
        healthcheck: Some(db_healthcheck(spec, healthcheck_test)),
        logging: Some(logging(spec)),
        deploy: Some(db_deploy(spec, db.node)),
        ..Default::default()
    }
}
