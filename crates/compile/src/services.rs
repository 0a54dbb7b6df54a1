//! The stack model: services, network, volumes, secrets, configs.
//!
//! Every hardened choice is written out, even where it equals a swarm
//! default, so a reader (and a linter) sees the policy in the file.

use std::collections::BTreeMap;

use hacompile_spec::values::parse_bytes;
use hacompile_spec::{
    DbService, FailureAction, Flavor, HAPROXY_HEALTH_PORT, Resources, RestartPolicy, Sp, UpdatePolicy, ValidSpec,
};
use hacompile_stack as st;
use indexmap::IndexMap;

use crate::names::*;
use crate::{OutputFile, PinnedImages, content_hash};

/// Per-flavor facts of the PostgreSQL image.
pub(crate) struct ImageFacts {
    pub uid: &'static str,
    /// What the entrypoint needs once every capability is dropped.
    pub capabilities: &'static [&'static str],
    pub data_mount: &'static str,
    pub pgdata: Option<&'static str>,
}

pub(crate) fn facts(flavor: Flavor) -> ImageFacts {
    match flavor {
        // A subdirectory of the mount, as the image docs advise, so initdb
        // never meets the volume's lost+found. The entrypoint starts as
        // root (chown/chmod of the data directory), then gosu to postgres.
        Flavor::Official => ImageFacts {
            uid: "999",
            capabilities: &["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
            data_mount: "/var/lib/postgresql/data",
            pgdata: Some("/var/lib/postgresql/data/pgdata"),
        },
        // Runs as UID 1001 throughout: needs none.
        Flavor::Bitnami => {
            ImageFacts { uid: "1001", capabilities: &[], data_mount: "/bitnami/postgresql", pgdata: None }
        }
    }
}

pub(crate) const CFG_KEY_HAPROXY: &str = "haproxy_cfg";
/// 0o400, 0o440, 0o555 as the decimal numbers YAML carries.
const MODE_0400: u32 = 0o400;
const MODE_0440: u32 = 0o440;

pub fn stack(spec: &ValidSpec, images: &PinnedImages, companions: &[OutputFile]) -> st::StackFile {
    let s = spec.spec();
    let stack_name = s.stack.get();
    let network = s.network.name.get().clone();

    let mut configs = IndexMap::new();
    for file in companions.iter().filter(|f| !f.config_key.is_empty()) {
        configs.insert(
            file.config_key.to_owned(),
            st::Config {
                name: format!("{stack_name}_{}_{}", file.config_key, content_hash(&file.contents)),
                file: format!("./{}", file.name),
            },
        );
    }

    let mut services = IndexMap::new();
    services.insert(HAPROXY_SERVICE.to_owned(), haproxy_service(spec, images, &network));
    let topology = crate::topology::of(spec);
    services.extend(topology.services(spec, images, &network));
    services.extend(crate::metrics::services(spec, images, &network));

    let mut networks = IndexMap::new();
    let mut driver_opts = BTreeMap::new();
    if s.network.encrypted {
        driver_opts.insert("encrypted".to_owned(), "true".to_owned());
    }
    for name in std::iter::once(network).chain(topology.extra_networks(spec)) {
        networks.insert(
            name,
            st::Network { driver: "overlay".into(), driver_opts: driver_opts.clone(), attachable: false },
        );
    }

    let volumes = spec
        .db_services()
        .into_iter()
        .chain(spec.dcs_services())
        .map(|db| (db.volume, st::Volume { driver: "local".into(), ..Default::default() }))
        .chain(crate::backup::volume(spec))
        .collect();

    let secrets = s
        .secrets
        .iter()
        .map(|(name, decl)| {
            let secret = if decl.external {
                st::Secret { external: Some(true), file: None }
            } else {
                st::Secret { external: None, file: decl.file.as_ref().map(|f| f.get().clone()) }
            };
            (name.get().clone(), secret)
        })
        .collect();

    st::StackFile { version: st::STACK_VERSION.into(), services, networks, volumes, secrets, configs }
}

pub(crate) fn logging(spec: &ValidSpec) -> st::Logging {
    let l = &spec.spec().logging;
    let options = BTreeMap::from([
        ("max-size".to_owned(), l.max_size.get().clone()),
        ("max-file".to_owned(), l.max_file.get().to_string()),
    ]);
    st::Logging { driver: "json-file".into(), options }
}

fn cpus(v: f64) -> String {
    // f64's Display never uses an exponent for these magnitudes: 2 -> "2", 0.5 -> "0.5".
    format!("{v}")
}

/// Limits and reservations, with the role's defaults where the spec is
/// silent; a default reservation never exceeds a limit the user lowered.
pub(crate) fn resources(
    r: &Resources,
    default_cpus: f64,
    default_memory: &str,
    default_reserve_cpus: f64,
    default_reserve_memory: &str,
) -> st::Resources {
    let limit_cpus = r.cpus.as_ref().map_or(default_cpus, |c| *c.get());
    let limit_memory = r.memory.as_ref().map_or(default_memory.to_owned(), |m| m.get().clone());
    let reserve_cpus = r.reserve_cpus.as_ref().map_or(default_reserve_cpus.min(limit_cpus), |c| *c.get());
    let reserve_memory = match &r.reserve_memory {
        Some(m) => m.get().clone(),
        None => {
            let limit = parse_bytes(&limit_memory).expect("sizes were validated");
            let default = parse_bytes(default_reserve_memory).expect("default is a size");
            if default <= limit { default_reserve_memory.to_owned() } else { limit_memory.clone() }
        }
    };
    st::Resources {
        limits: st::ResourceSet { cpus: cpus(limit_cpus), memory: limit_memory },
        reservations: st::ResourceSet { cpus: cpus(reserve_cpus), memory: reserve_memory },
    }
}

pub(crate) fn restart(r: &RestartPolicy) -> st::RestartPolicy {
    st::RestartPolicy {
        // Whatever the exit: a server that stopped cleanly is as absent as one
        // that crashed. Never abandoned: validation keeps `max_attempts` at 0.
        condition: "any".into(),
        delay: r.delay.get().clone(),
        max_attempts: *r.max_attempts,
        window: r.window.get().clone(),
    }
}

/// Update and rollback both one task at a time, `stop-first`.
pub(crate) fn update(u: &UpdatePolicy) -> (st::UpdateConfig, st::UpdateConfig) {
    let failure_action = match u.failure_action {
        FailureAction::Rollback => "rollback",
        FailureAction::Pause => "pause",
    };
    let update = st::UpdateConfig {
        parallelism: 1,
        delay: u.delay.get().clone(),
        failure_action: failure_action.into(),
        monitor: u.monitor.get().clone(),
        max_failure_ratio: 0.0,
        order: "stop-first".into(),
    };
    let rollback = st::UpdateConfig { failure_action: "pause".into(), ..update.clone() };
    (update, rollback)
}

pub(crate) fn secret(name: &Sp<String>, uid: &str) -> st::FileRef {
    st::FileRef {
        source: name.get().clone(),
        target: name.get().clone(),
        uid: uid.into(),
        gid: uid.into(),
        mode: MODE_0400,
    }
}

fn haproxy_service(spec: &ValidSpec, images: &PinnedImages, network: &str) -> st::Service {
    let hp = &spec.spec().haproxy;
    let mut command = vec!["haproxy".to_owned(), "-f".to_owned(), HAPROXY_CFG_PATH.to_owned()];
    let mut secrets = Vec::new();
    let host_port = |port: u16| st::Port { target: port, published: port, protocol: "tcp".into(), mode: "host".into() };
    let mut ports = vec![host_port(*hp.write_port.get()), host_port(*hp.read_port.get())];
    if let Some(stats) = &hp.stats {
        // HAProxy reads the userlist (crypt hashes) as a second config file.
        command.extend(["-f".to_owned(), secret_path(stats.users.secret.get())]);
        secrets.push(secret(&stats.users.secret, HAPROXY_UID));
        ports.push(host_port(*stats.port.get()));
    }
    let (update_config, rollback_config) = update(&hp.update);
    st::Service {
        image: images.haproxy.clone(),
        command: Some(command),
        secrets,
        configs: vec![st::FileRef {
            source: CFG_KEY_HAPROXY.into(),
            target: HAPROXY_CFG_PATH.into(),
            uid: HAPROXY_UID.into(),
            gid: HAPROXY_UID.into(),
            mode: MODE_0440,
        }],
        networks: vec![network.to_owned()],
        ports,
        // The official image runs HAProxy as UID 99 and its binary carries no
        // file capability: it never holds one, and needs none for ports >= 1024
        // (validation refuses lower ones).
        cap_drop: vec!["ALL".into()],
        cap_add: Vec::new(),
        // SIGUSR1 is HAProxy's soft stop and the official image's STOPSIGNAL;
        // said here too for images that declare another. Under the image's
        // entrypoint PID 1 is the `-W` master, which passes it to the workers;
        // `hard-stop-after` ends the soft stop before swarm's kill.
        stop_signal: Some("SIGUSR1".into()),
        stop_grace_period: Some(format!("{}s", HAPROXY_STOP_GRACE_MS / 1000)),
        healthcheck: Some(st::Healthcheck {
            test: vec![
                "CMD".into(),
                "bash".into(),
                "-c".into(),
                format!("exec 3<>/dev/tcp/127.0.0.1/{HAPROXY_HEALTH_PORT}"),
            ],
            interval: "10s".into(),
            timeout: "3s".into(),
            retries: 3,
            start_period: "10s".into(),
        }),
        logging: Some(logging(spec)),
        deploy: Some(st::Deploy {
            mode: "global".into(),
            replicas: None,
            endpoint_mode: None,
            labels: crate::metrics::haproxy_labels(spec),
            placement: (!hp.constraints.is_empty()).then(|| st::Placement {
                constraints: hp.constraints.iter().map(|c| c.get().clone()).collect(),
                max_replicas_per_node: None,
            }),
            resources: resources(&hp.resources, 1.0, "256m", 0.1, "64m"),
            restart_policy: restart(&hp.restart),
            update_config,
            rollback_config,
        }),
        ..Default::default()
    }
}

/// `-c name=value` settings of a server, in a fixed order: what hacompile
/// owns, the memory defaults derived from the limit, then the spec's own
/// `[postgres.parameters]` (sorted).
pub fn server_settings(spec: &ValidSpec, db: &DbService<'_>) -> Vec<(String, String)> {
    let pg = &spec.spec().postgres;
    let mb = |size: &str| (parse_bytes(size).expect("sizes were validated") / (1024 * 1024)).max(1);
    let mut out: Vec<(String, String)> = vec![
        ("max_connections".into(), pg.max_connections.to_string()),
        ("max_wal_senders".into(), spec.wal_senders().to_string()),
        ("max_replication_slots".into(), spec.wal_senders().to_string()),
        ("hot_standby_feedback".into(), if *pg.hot_standby_feedback.get() { "on" } else { "off" }.into()),
        // A walreceiver reports cluster_name as its application_name, so
        // pg_stat_replication names each replica.
        ("cluster_name".into(), db.name.clone()),
    ];
    if pg.flavor == Flavor::Official {
        out.extend(crate::backup::server_settings(spec));
        out.push(("wal_keep_size".into(), format!("{}MB", mb(&pg.wal_keep_size))));
        if spec.replication_slots() {
            out.push(("max_slot_wal_keep_size".into(), format!("{}MB", mb(&pg.max_slot_wal_keep_size))));
        }
    }
    let memory = pg.resources.memory.as_ref().map_or("2g".to_owned(), |m| m.get().clone());
    let limit_mb = mb(&memory);
    let user: BTreeMap<&str, String> =
        pg.parameters.iter().map(|(k, v)| (k.get().as_str(), v.get().to_string())).collect();
    for (name, default) in
        [("shared_buffers", format!("{}MB", limit_mb / 4)), ("effective_cache_size", format!("{}MB", limit_mb * 3 / 4))]
    {
        if !user.contains_key(name) {
            out.push((name.into(), default));
        }
    }
    out.extend(user.into_iter().map(|(k, v)| (k.to_owned(), v)));
    out
}

/// The size of /dev/shm: the spec's, or a quarter of the memory limit.
pub fn shm_bytes(spec: &ValidSpec) -> u64 {
    let pg = &spec.spec().postgres;
    match &pg.shm_size {
        Some(s) => parse_bytes(s).expect("sizes were validated"),
        None => {
            let memory = pg.resources.memory.as_ref().map_or("2g".to_owned(), |m| m.get().clone());
            (parse_bytes(&memory).expect("sizes were validated") / 4).max(64 * 1024 * 1024)
        }
    }
}

/// A database service's mounts: its own data volume, and a tmpfs at
/// /dev/shm (parallel queries' shared memory; swarm gives 64 MB and stacks
/// cannot set `shm_size`), then any others.
pub(crate) fn db_mounts(spec: &ValidSpec, volume: &str, data_mount: &str, extra: Vec<st::Mount>) -> Vec<st::Mount> {
    let mut mounts = vec![
        st::Mount { kind: "volume".into(), source: Some(volume.to_owned()), target: data_mount.into(), tmpfs: None },
        st::Mount {
            kind: "tmpfs".into(),
            source: None,
            target: "/dev/shm".into(),
            tmpfs: Some(st::Tmpfs { size: shm_bytes(spec) }),
        },
    ];
    mounts.extend(extra);
    mounts
}

/// One task that owns its data: replicated 1, on the nodes its constraints
/// name, never two on a node, reached by its tasks' addresses (no VIP:
/// clients reach the task directly, and IPVS never drops an idle connection
/// after 900 s).
pub(crate) fn pinned_task(
    node: &hacompile_spec::DbNode,
    resources: st::Resources,
    restart_policy: st::RestartPolicy,
    (update_config, rollback_config): (st::UpdateConfig, st::UpdateConfig),
) -> st::Deploy {
    st::Deploy {
        mode: "replicated".into(),
        replicas: Some(1),
        endpoint_mode: Some("dnsrr".into()),
        labels: BTreeMap::new(),
        placement: Some(st::Placement {
            constraints: node.constraints.iter().map(|c| c.get().clone()).collect(),
            max_replicas_per_node: Some(1),
        }),
        resources,
        restart_policy,
        update_config,
        rollback_config,
    }
}

/// A database service's healthcheck: its test with the spec's timing.
pub(crate) fn db_healthcheck(spec: &ValidSpec, test: Vec<String>) -> st::Healthcheck {
    let h = &spec.spec().postgres.healthcheck;
    st::Healthcheck {
        test,
        interval: h.interval.get().clone(),
        timeout: h.timeout.get().clone(),
        retries: *h.retries,
        start_period: h.start_period.get().clone(),
    }
}

/// A database service's deploy section: one task on its node, with the
/// `[postgres]` resources, restart and update policies.
pub(crate) fn db_deploy(spec: &ValidSpec, node: &hacompile_spec::DbNode) -> st::Deploy {
    let pg = &spec.spec().postgres;
    pinned_task(node, resources(&pg.resources, 2.0, "2g", 0.5, "1g"), restart(&pg.restart), update(&pg.update))
}
