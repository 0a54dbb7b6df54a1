//! The Patroni topology: automatic failover by engines SREs already trust.
//!
//! Every database service is a Patroni member (any of them may lead); an
//! etcd cluster, one service per member on its own encrypted network shared
//! only with the members, holds the leader lock. HAProxy asks each member's
//! REST API who leads (`OPTIONS /primary`) and how far a replica lags
//! (`OPTIONS /replica?lag=<bytes>`), so exactly the leader takes writes and
//! a lagging or foreign replica never serves reads.
//!
//! Emitted beside the stack: one `patroni-<member>.yml` per member (no
//! credential in it), the entrypoint that reads the credentials from Docker
//! secrets into Patroni's environment (`scripts/patroni-entrypoint.sh`), and
//! the members' image recipe (`patroni.Dockerfile`: the pinned official
//! `postgres` image plus Patroni from the PostgreSQL project's apt repository).

use std::collections::BTreeMap;

use hacompile_haproxy::{Balance, Directive as D, Mode, Section, SectionKind, ServerOptions, Time};
use hacompile_spec::values::parse_bytes;
use hacompile_spec::{DbService, POSTGRES_PORT, SyncMode, ValidSpec};
use hacompile_stack as st;
use serde::Serialize;

use super::Topology;
use crate::names::*;
use crate::proxy::{READ_LISTENER, WRITE_LISTENER, dynamic_server};
use crate::services::{
    db_deploy, db_healthcheck, db_mounts, facts, logging, pinned_task, resources, restart, secret, server_settings,
    update,
};
use crate::{OutputFile, PinnedImages};

pub const ENTRYPOINT_SCRIPT: &str = include_str!("../../scripts/patroni-entrypoint.sh");
const DOCKERFILE_TEMPLATE: &str = include_str!("../../scripts/patroni.Dockerfile");

/// File names beside the stack.
pub const ENTRYPOINT: &str = "patroni-entrypoint.sh";
pub const DOCKERFILE: &str = "patroni.Dockerfile";
/// The config file of a member: `patroni-pg-1.yml`.
pub fn config_file(member: &str) -> String {
    format!("patroni-{member}.yml")
}

/// Patroni's REST API port in every member.
pub const REST_PORT: u16 = 8008;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
/// Read listener's backends: replicas below the lag limit, else the leader.
pub const READ_REPLICAS_BACKEND: &str = "postgres_read_replicas";
pub const READ_PRIMARY_BACKEND: &str = "postgres_read_primary";

const CFG_KEY_ENTRYPOINT: &str = "patroni_entrypoint";
const ENTRYPOINT_PATH: &str = "/usr/local/bin/hacompile-patroni-entrypoint.sh";
const CONFIG_PATH: &str = "/etc/patroni/patroni.yml";
const ETCD_BINARY: &str = "/usr/local/bin/etcd";
/// etcd refuses a data directory that is not 0700: a subdirectory of the
/// volume, which etcd creates itself with that mode.
const ETCD_MOUNT: &str = "/var/lib/etcd";
const ETCD_DATA_DIR: &str = "/var/lib/etcd/data";
/// How often a server that is down or changing state is checked: a new
/// leader takes writes within about a second of its promotion, and a demoted
/// one (read-only, its `/primary` now 503) leaves the write listener within
/// `fall` half-seconds. The REST API answers these from memory.
const FAST_CHECK_MS: u64 = 500;
const MODE_0440: u32 = 0o440;
const MODE_0555: u32 = 0o555;

pub struct Patroni;

fn cfg_key(member: &str) -> String {
    format!("patroni_{}", member.replace('-', "_"))
}

fn dcs_network(spec: &ValidSpec) -> String {
    format!("{}_dcs", spec.spec().network.name.get())
}

impl Topology for Patroni {
    fn companions(&self, spec: &ValidSpec, images: &PinnedImages) -> Vec<OutputFile> {
        let mut out = vec![OutputFile::config(ENTRYPOINT, CFG_KEY_ENTRYPOINT, ENTRYPOINT_SCRIPT, true)];
        for db in spec.db_services() {
            out.push(OutputFile::config(config_file(&db.name), cfg_key(&db.name), &member_config(spec, &db), false));
        }
        out.push(OutputFile::beside(DOCKERFILE, dockerfile(spec, &images.postgres)));
        out
    }

    fn services(&self, spec: &ValidSpec, images: &PinnedImages, network: &str) -> Vec<(String, st::Service)> {
        let (member_image, etcd_image) = images.patroni.as_ref().expect("a patroni spec pins its images");
        let dcs = dcs_network(spec);
        let mut out: Vec<(String, st::Service)> =
            spec.dcs_services().iter().map(|e| (e.name.clone(), etcd_service(spec, etcd_image, &dcs, e))).collect();
        out.extend(
            spec.db_services()
                .iter()
                .map(|db| (db.name.clone(), member_service(spec, member_image, network, &dcs, db))),
        );
        out
    }

    fn extra_networks(&self, spec: &ValidSpec) -> Vec<String> {
        vec![dcs_network(spec)]
    }

    fn listeners(&self, spec: &ValidSpec, guard: &[D], _check: Option<&D>) -> Vec<Section> {
        let hp = &spec.spec().haproxy;
        let patroni = spec.patroni().expect("a patroni spec has [patroni]");
        let members = spec.db_services();
        // Any member may lead: each one gets the leader's share on the write
        // listener and on the read listener's fallback, and a replica's whole
        // share in the replicas' pool (a member is only ever one of the two).
        let (leader_writes, leader_reads) = spec.primary_maxconn();
        let servers = |maxconn: u32| -> Vec<D> {
            members
                .iter()
                .map(|db| D::ServerTemplate {
                    prefix: format!("{}-", db.name),
                    count: 1,
                    fqdn: tasks_name(&db.name),
                    port: POSTGRES_PORT,
                    options: ServerOptions {
                        maxconn: Some(maxconn),
                        check_port: Some(REST_PORT),
                        fastinter: Some(Time(FAST_CHECK_MS)),
                        downinter: Some(Time(FAST_CHECK_MS)),
                        ..dynamic_server(false)
                    },
                })
                .collect()
        };
        let rest_check =
            |uri: String| [D::OptionHttpChk { method: "OPTIONS".into(), uri }, D::HttpCheckExpectStatus(200)];
        let head = |port: Option<u16>| {
            let mut d = Vec::new();
            if let Some(port) = port {
                d.push(D::Bind { address: String::new(), port });
            }
            d.push(D::Mode(Mode::Tcp));
            d
        };

        let mut write = head(Some(*hp.write_port.get()));
        write.extend(guard.iter().cloned());
        write.extend([D::OptionTcpLog, D::Balance(Balance::First)]);
        write.extend(rest_check("/primary".into()));
        write.extend(servers(leader_writes));

        let lag = parse_bytes(&patroni.read_lag_limit).expect("sizes were validated");
        let mut read = head(Some(*hp.read_port.get()));
        read.extend(guard.iter().cloned());
        read.extend([
            D::OptionTcpLog,
            D::UseBackendIfUsable(READ_REPLICAS_BACKEND.into()),
            D::DefaultBackend(READ_PRIMARY_BACKEND.into()),
        ]);
        let mut replicas = head(None);
        replicas.push(D::Balance(Balance::LeastConn));
        replicas.extend(rest_check(format!("/replica?lag={lag}")));
        replicas.extend(servers(spec.replica_maxconn()));
        let mut leader = head(None);
        leader.push(D::Balance(Balance::First));
        leader.extend(rest_check("/primary".into()));
        leader.extend(servers(leader_reads));

        vec![
            Section {
                kind: SectionKind::Listen(WRITE_LISTENER.into()),
                comment: Some(
                    "Writes: the member whose REST API says it is the leader (OPTIONS /primary); no other".into(),
                ),
                directives: write,
            },
            Section {
                kind: SectionKind::Frontend(READ_LISTENER.into()),
                comment: Some("Reads: replicas within the lag limit; the leader only while none is".into()),
                directives: read,
            },
            Section {
                kind: SectionKind::Backend(READ_REPLICAS_BACKEND.into()),
                comment: Some(format!(
                    "Running replicas no more than {} behind the leader (OPTIONS /replica?lag=<bytes>)",
                    patroni.read_lag_limit.get()
                )),
                directives: replicas,
            },
            Section {
                kind: SectionKind::Backend(READ_PRIMARY_BACKEND.into()),
                comment: Some("The leader, for reads while no replica is usable".into()),
                directives: leader,
            },
        ]
    }
}

/// The members' image recipe: the pinned official image plus Patroni (and
/// pgBackRest with `[backup]`).
pub(crate) fn dockerfile(spec: &ValidSpec, postgres_image: &str) -> String {
    crate::image_recipe(spec, postgres_image, DOCKERFILE_TEMPLATE)
}

/// patroni.yml of one member, as Patroni reads it. Credentials come from
/// the environment the entrypoint sets; none is in this file.
#[derive(Serialize)]
struct PatroniYml {
    scope: String,
    name: String,
    restapi: RestApiYml,
    etcd3: Etcd3Yml,
    bootstrap: BootstrapYml,
    postgresql: PostgresqlYml,
    watchdog: WatchdogYml,
    tags: TagsYml,
}

#[derive(Serialize)]
struct RestApiYml {
    listen: String,
    connect_address: String,
}

#[derive(Serialize)]
struct Etcd3Yml {
    hosts: Vec<String>,
}

#[derive(Serialize)]
struct BootstrapYml {
    dcs: DcsYml,
    initdb: Vec<Opt>,
    /// The same rules as `postgresql.pg_hba`, for the first start (Patroni
    /// 3.0's validator asks for both).
    pg_hba: Vec<String>,
    post_bootstrap: String,
}

#[derive(Serialize)]
struct DcsYml {
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
    maximum_lag_on_failover: u64,
    synchronous_mode: bool,
    synchronous_mode_strict: bool,
    postgresql: DcsPostgresqlYml,
}

#[derive(Serialize)]
struct DcsPostgresqlYml {
    use_pg_rewind: bool,
    use_slots: bool,
    parameters: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct PostgresqlYml {
    listen: String,
    connect_address: String,
    data_dir: String,
    pgpass: String,
    pg_hba: Vec<String>,
    create_replica_methods: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pgbackrest: Option<ReplicaMethodYml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_conf: Option<BTreeMap<String, String>>,
    basebackup: Vec<Opt>,
}

/// A replica creation method Patroni runs as a command.
#[derive(Serialize)]
struct ReplicaMethodYml {
    command: String,
    keep_data: bool,
    no_params: bool,
}

/// An option of initdb or pg_basebackup as Patroni lists them: a flag or a
/// one-entry map.
#[derive(Serialize)]
#[serde(untagged)]
enum Opt {
    Flag(String),
    Pair(BTreeMap<String, String>),
}

impl Opt {
    fn pair(k: &str, v: &str) -> Self {
        Opt::Pair(BTreeMap::from([(k.to_owned(), v.to_owned())]))
    }
}

#[derive(Serialize)]
struct WatchdogYml {
    mode: String,
}

#[derive(Serialize)]
struct TagsYml {
    nofailover: bool,
    noloadbalance: bool,
    clonefrom: bool,
    nosync: bool,
}

fn member_config(spec: &ValidSpec, db: &DbService<'_>) -> String {
    let s = spec.spec();
    let pg = &s.postgres;
    let patroni = spec.patroni().expect("a patroni spec has [patroni]");
    let f = facts(pg.flavor);
    let repl = pg.replication.user.get();
    // restore_command is a recovery setting: Patroni takes it from `recovery_conf`.
    let parameters: BTreeMap<String, String> =
        server_settings(spec, db).into_iter().filter(|(k, _)| k != "cluster_name" && k != "restore_command").collect();
    let pg_hba: Vec<String> = vec![
        "local all all scram-sha-256".into(),
        "host all all 127.0.0.1/32 scram-sha-256".into(),
        "host all all ::1/128 scram-sha-256".into(),
        format!("host replication {repl} samenet scram-sha-256"),
        "host all all samenet scram-sha-256".into(),
    ];
    // With backups, a new member is restored from the repository (no load on
    // the leader) and catches up from the archive; basebackup is the fallback.
    let backup = spec.backup().is_some();
    let (create_replica_methods, pgbackrest, recovery_conf) = if backup {
        (
            vec!["pgbackrest".into(), "basebackup".into()],
            Some(ReplicaMethodYml {
                command: format!("{} restore --delta", crate::backup::WRAPPER_PATH),
                keep_data: true,
                no_params: true,
            }),
            Some(BTreeMap::from([("restore_command".to_owned(), crate::backup::restore_command())])),
        )
    } else {
        (vec!["basebackup".into()], None, None)
    };
    let mut basebackup = vec![Opt::pair("checkpoint", "fast")];
    if let Some(rate) = &pg.basebackup_max_rate {
        basebackup.push(Opt::pair("max-rate", rate.get()));
    }
    let yml = PatroniYml {
        scope: spec.patroni_scope(),
        name: db.name.clone(),
        restapi: RestApiYml {
            listen: format!("0.0.0.0:{REST_PORT}"),
            connect_address: format!("{}:{REST_PORT}", db.name),
        },
        etcd3: Etcd3Yml {
            hosts: spec.dcs_services().iter().map(|e| format!("{}:{ETCD_CLIENT_PORT}", e.name)).collect(),
        },
        bootstrap: BootstrapYml {
            dcs: DcsYml {
                ttl: *patroni.ttl.get(),
                loop_wait: *patroni.loop_wait.get(),
                retry_timeout: *patroni.retry_timeout.get(),
                maximum_lag_on_failover: parse_bytes(&patroni.maximum_lag_on_failover).expect("sizes were validated"),
                synchronous_mode: patroni.synchronous_mode != SyncMode::Off,
                synchronous_mode_strict: patroni.synchronous_mode == SyncMode::Strict,
                postgresql: DcsPostgresqlYml {
                    use_pg_rewind: *patroni.pg_rewind.get(),
                    use_slots: *patroni.slots.get(),
                    parameters,
                },
            },
            initdb: vec![Opt::pair("encoding", "UTF8"), Opt::Flag("data-checksums".into())],
            pg_hba: pg_hba.clone(),
            // Creates the application database once, on the first leader.
            post_bootstrap: format!("bash {ENTRYPOINT_PATH} post-bootstrap"),
        },
        postgresql: PostgresqlYml {
            listen: format!("0.0.0.0:{POSTGRES_PORT}"),
            connect_address: format!("{}:{POSTGRES_PORT}", db.name),
            data_dir: f.pgdata.expect("official flavor has PGDATA").into(),
            // Written by Patroni from the replication credentials; tmpfs-free
            // /tmp of the container, never the data volume.
            pgpass: "/tmp/hacompile-pgpass".into(),
            pg_hba: pg_hba.clone(),
            create_replica_methods,
            pgbackrest,
            recovery_conf,
            basebackup,
        },
        // No /dev/watchdog in a swarm task; fencing is the leader lock's
        // lease and Patroni demoting itself when it cannot renew it.
        watchdog: WatchdogYml { mode: "off".into() },
        tags: TagsYml { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    };
    let body = yaml_quoted(
        &serde_yaml_ng::to_value(&yml).expect("the Patroni model has only strings, numbers, lists and maps"),
    );
    format!(
        "# Generated by hacompile from {}. Do not edit: change the spec and build again.\n\
         # Patroni member `{}`. `bootstrap.dcs` is written to etcd once, when the cluster is first\n\
         # created; change it later with `patronictl edit-config` (see the entrypoint's `ctl` mode).\n\
         # Credentials come from the environment the entrypoint sets; none is in this file.\n{body}",
        hacompile_boundary::text::line(spec.source().name()),
        db.name
    )
}

fn config_ref(source: &str, target: &str, uid: &str, mode: u32) -> st::FileRef {
    st::FileRef { source: source.into(), target: target.into(), uid: uid.into(), gid: uid.into(), mode }
}

fn member_service(spec: &ValidSpec, image: &str, network: &str, dcs: &str, db: &DbService<'_>) -> st::Service {
    let s = spec.spec();
    let pg = &s.postgres;
    let patroni = spec.patroni().expect("a patroni spec has [patroni]");
    let f = facts(pg.flavor);
    let environment = BTreeMap::from([
        ("HACOMPILE_PATRONI_CONFIG".to_owned(), CONFIG_PATH.to_owned()),
        ("HACOMPILE_SUPERUSER_FILE".to_owned(), secret_path(pg.user.secret.get())),
        ("HACOMPILE_SUPERUSER_PASSWORD_FILE".to_owned(), secret_path(pg.password.secret.get())),
        ("HACOMPILE_REPLICATION_USER".to_owned(), pg.replication.user.get().clone()),
        ("HACOMPILE_REPLICATION_PASSWORD_FILE".to_owned(), secret_path(pg.replication.password.secret.get())),
        ("HACOMPILE_RESTAPI_USER".to_owned(), patroni.rest_api.user.get().clone()),
        ("HACOMPILE_RESTAPI_PASSWORD_FILE".to_owned(), secret_path(patroni.rest_api.password.secret.get())),
        ("HACOMPILE_DATABASE".to_owned(), pg.database.get().clone()),
        // Patroni finds pg_ctl on PATH, as the official image sets it.
        ("PGDATA".to_owned(), f.pgdata.expect("official flavor has PGDATA").into()),
    ]);
    let mut environment = environment;
    let mut secrets = vec![
        secret(&pg.user.secret, f.uid),
        secret(&pg.password.secret, f.uid),
        secret(&pg.replication.password.secret, f.uid),
        secret(&patroni.rest_api.password.secret, f.uid),
    ];
    // Every member: whichever bootstraps the cluster creates the exporters' role.
    if let Some(e) = spec.exporter() {
        environment.insert("HACOMPILE_MONITOR_USER".to_owned(), e.user.get().clone());
        environment.insert("HACOMPILE_MONITOR_PASSWORD_FILE".to_owned(), secret_path(e.password.secret.get()));
        secrets.push(secret(&e.password.secret, f.uid));
    }
    let mut configs = vec![
        config_ref(CFG_KEY_ENTRYPOINT, ENTRYPOINT_PATH, "0", MODE_0555),
        config_ref(&cfg_key(&db.name), CONFIG_PATH, f.uid, MODE_0440),
    ];
    let mut entrypoint = vec!["bash".to_owned(), ENTRYPOINT_PATH.to_owned()];
    let mut extra_mounts = Vec::new();
    let backup = crate::backup::service_parts(spec, f.pgdata.expect("official flavor has PGDATA"), f.uid, true);
    if let Some(parts) = &backup {
        environment.extend(parts.environment.clone());
        secrets.extend(parts.secrets.clone());
        configs.extend(parts.configs.clone());
        extra_mounts.extend(parts.mounts.clone());
        // The scheduler starts first, detached; Patroni then runs as before.
        entrypoint.splice(0..0, [crate::backup::WRAPPER_PATH.to_owned(), "launch".to_owned()]);
    }
    st::Service {
        image: image.to_owned(),
        hostname: Some(db.name.clone()),
        entrypoint: Some(entrypoint),
        init: backup.is_some().then_some(true),
        command: None,
        environment,
        secrets,
        configs,
        volumes: db_mounts(spec, &db.volume, f.data_mount, extra_mounts),
        networks: vec![network.to_owned(), dcs.to_owned()],
        ports: Vec::new(),
        // The image runs as postgres (UID 999): Patroni and PostgreSQL need
        // no capability.
        cap_drop: vec!["ALL".into()],
        cap_add: Vec::new(),
        // Patroni's graceful stop: it stops PostgreSQL and hands the leader
        // lock over at once instead of waiting for the lease to run out.
        stop_signal: Some("SIGTERM".into()),
        stop_grace_period: Some(pg.stop_grace_period.get().clone()),
        // Patroni's own liveness: its loop runs. Whether the member may take
        // writes or reads is HAProxy's question to the REST API, not swarm's.
        healthcheck: Some(db_healthcheck(
            spec,
            vec![
                "CMD".into(),
                "bash".into(),
                "-c".into(),
                format!(
                    "exec 3<>/dev/tcp/127.0.0.1/{REST_PORT} && printf 'GET /liveness HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"
                ),
            ],
        )),
        logging: Some(logging(spec)),
        deploy: Some(db_deploy(spec, db.node)),
        ..Default::default()
    }
}

fn etcd_service(spec: &ValidSpec, image: &str, dcs: &str, member: &DbService<'_>) -> st::Service {
    let s = spec.spec();
    let peers: Vec<String> =
        spec.dcs_services().iter().map(|e| format!("{}=http://{}:{ETCD_PEER_PORT}", e.name, e.name)).collect();
    let name = &member.name;
    let environment = BTreeMap::from([
        ("ETCD_NAME".to_owned(), name.clone()),
        ("ETCD_DATA_DIR".to_owned(), ETCD_DATA_DIR.to_owned()),
        ("ETCD_LISTEN_CLIENT_URLS".to_owned(), format!("http://0.0.0.0:{ETCD_CLIENT_PORT}")),
        ("ETCD_ADVERTISE_CLIENT_URLS".to_owned(), format!("http://{name}:{ETCD_CLIENT_PORT}")),
        ("ETCD_LISTEN_PEER_URLS".to_owned(), format!("http://0.0.0.0:{ETCD_PEER_PORT}")),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS".to_owned(), format!("http://{name}:{ETCD_PEER_PORT}")),
        ("ETCD_INITIAL_CLUSTER".to_owned(), peers.join(",")),
        // Read only on the first start: a restarted task finds its data
        // directory on its volume and rejoins as the same member.
        ("ETCD_INITIAL_CLUSTER_STATE".to_owned(), "new".to_owned()),
        ("ETCD_INITIAL_CLUSTER_TOKEN".to_owned(), format!("{}-etcd", s.stack.get())),
        // Patroni renews its lease every loop: keep one hour of history only.
        ("ETCD_AUTO_COMPACTION_MODE".to_owned(), "periodic".to_owned()),
        ("ETCD_AUTO_COMPACTION_RETENTION".to_owned(), "1h".to_owned()),
    ]);
    st::Service {
        image: image.to_owned(),
        hostname: Some(name.clone()),
        entrypoint: None,
        init: None,
        command: Some(vec![ETCD_BINARY.into()]),
        environment,
        secrets: Vec::new(),
        configs: Vec::new(),
        volumes: vec![st::Mount {
            kind: "volume".into(),
            source: Some(member.volume.clone()),
            target: ETCD_MOUNT.into(),
            tmpfs: None,
        }],
        // Only the members reach etcd: its own network, never published.
        networks: vec![dcs.to_owned()],
        ports: Vec::new(),
        cap_drop: vec!["ALL".into()],
        cap_add: Vec::new(),
        stop_signal: Some("SIGTERM".into()),
        stop_grace_period: Some("30s".into()),
        // No container healthcheck: swarm lists a task in DNS only once it
        // is healthy, and members of a forming cluster must resolve each
        // other before any of them can be.
        healthcheck: None,
        logging: Some(logging(spec)),
        deploy: Some(pinned_task(
            member.node,
            resources(&Default::default(), 1.0, "512m", 0.1, "128m"),
            restart(&s.postgres.restart),
            update(&s.postgres.update),
        )),
        ..Default::default()
    }
}

/// Block YAML with every string double-quoted (JSON escapes, which YAML's
/// double-quoted style shares). Patroni reads its file with PyYAML, a YAML
/// 1.1 parser: a plain `on`, `off`, `yes` or `1:30` would come back as a
/// boolean or a number, so no string is ever left plain.
fn yaml_quoted(value: &serde_yaml_ng::Value) -> String {
    use serde_yaml_ng::Value as V;
    fn scalar(v: &V) -> Option<String> {
        match v {
            V::Null => Some("null".into()),
            V::Bool(b) => Some(b.to_string()),
            V::Number(n) => Some(n.to_string()),
            V::String(s) => Some(serde_json::to_string(s).expect("a string serializes")),
            _ => None,
        }
    }
    fn key(k: &V) -> String {
        match k {
            V::String(s)
                if !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
                    && !s.starts_with('-') =>
            {
                s.clone()
            }
            other => scalar(other).unwrap_or_default(),
        }
    }
    fn walk(v: &V, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match v {
            V::Mapping(m) => {
                for (k, v) in m {
                    match scalar(v) {
                        Some(s) => out.push_str(&format!("{pad}{}: {s}\n", key(k))),
                        None if matches!(v, V::Sequence(q) if q.is_empty()) => {
                            out.push_str(&format!("{pad}{}: []\n", key(k)))
                        }
                        None if matches!(v, V::Mapping(m) if m.is_empty()) => {
                            out.push_str(&format!("{pad}{}: {{}}\n", key(k)))
                        }
                        None => {
                            out.push_str(&format!("{pad}{}:\n", key(k)));
                            walk(v, indent + 2, out);
                        }
                    }
                }
            }
            V::Sequence(q) => {
                for item in q {
                    match (scalar(item), item) {
                        (Some(s), _) => out.push_str(&format!("{pad}- {s}\n")),
                        (None, V::Mapping(m)) if m.len() == 1 => {
                            let (k, v) = m.iter().next().expect("one entry");
                            match scalar(v) {
                                Some(s) => out.push_str(&format!("{pad}- {}: {s}\n", key(k))),
                                None => {
                                    out.push_str(&format!("{pad}- {}:\n", key(k)));
                                    walk(v, indent + 4, out);
                                }
                            }
                        }
                        (None, other) => {
                            out.push_str(&format!("{pad}-\n"));
                            walk(other, indent + 2, out);
                        }
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", scalar(other).unwrap_or_default())),
        }
    }
    let mut out = String::new();
    walk(value, 0, &mut out);
    out
}
