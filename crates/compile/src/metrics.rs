//! Metrics: a `postgres_exporter` beside every database service (both
//! topologies: it only needs the service's DNS name), and the deploy labels
//! Prometheus' Docker Swarm discovery (`dockerswarm_sd_configs`, role
//! `tasks`) reads to find what to scrape: on the exporters and, when its
//! built-in exporter is on, on HAProxy.

use std::collections::BTreeMap;

use hacompile_spec::{DbService, METRICS_PATH, POSTGRES_PORT, ValidSpec};
use hacompile_stack as st;

use crate::names::{EXPORTER_QUERIES, secret_path};
use crate::services::{logging, resources, restart, secret, update};
use crate::{OutputFile, PinnedImages};

/// Deploy labels Prometheus' relabelling keys on.
pub const LABEL_SCRAPE: &str = "prometheus.io/scrape";
pub const LABEL_PORT: &str = "prometheus.io/port";
pub const LABEL_PATH: &str = "prometheus.io/path";
pub const LABEL_JOB: &str = "prometheus.io/job";
/// On an exporter: the database service it watches.
pub const LABEL_DATABASE: &str = "hacompile.database";
pub const JOB_POSTGRES: &str = "postgres";
pub const JOB_HAPROXY: &str = "haproxy";

/// The official image's user, `nobody`, said in the stack too.
const EXPORTER_USER: &str = "65534:65534";
const EXPORTER_UID: &str = "65534";
/// Seconds each connection attempt may take (the exporter may try twice in
/// one scrape).
const EXPORTER_CONNECT_TIMEOUT_SECS: u32 = 3;
/// The database every server has; `pg_stat_*` views cover the others.
const EXPORTER_DATABASE: &str = "postgres";

/// Replication lag in seconds, as queries the exporter runs on every scrape.
pub const QUERIES: &str = include_str!("../scripts/postgres-exporter-queries.yaml");
const CFG_KEY_QUERIES: &str = "pg_exporter_queries";
const QUERIES_PATH: &str = "/etc/postgres_exporter/queries.yaml";
const MODE_0440: u32 = 0o440;

/// The exporters' queries file, with `[postgres.exporter]`.
pub(crate) fn companions(spec: &ValidSpec) -> Vec<OutputFile> {
    match spec.exporter() {
        Some(_) => vec![OutputFile::config(EXPORTER_QUERIES, CFG_KEY_QUERIES, QUERIES, false)],
        None => Vec::new(),
    }
}

/// The exporter service watching a database service.
pub fn exporter_name(db: &str) -> String {
    format!("{db}-exporter")
}

pub(crate) fn scrape_labels(job: &str, port: u16) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_SCRAPE.to_owned(), "true".to_owned()),
        (LABEL_PORT.to_owned(), port.to_string()),
        (LABEL_PATH.to_owned(), METRICS_PATH.to_owned()),
        (LABEL_JOB.to_owned(), job.to_owned()),
    ])
}

/// HAProxy's labels: its `/metrics` on the stats listener, when on.
pub(crate) fn haproxy_labels(spec: &ValidSpec) -> BTreeMap<String, String> {
    match &spec.spec().haproxy.stats {
        Some(stats) if *stats.metrics.get() => scrape_labels(JOB_HAPROXY, *stats.port.get()),
        _ => BTreeMap::new(),
    }
}

/// One exporter per database service, in the database services' order.
pub(crate) fn services(spec: &ValidSpec, images: &PinnedImages, network: &str) -> Vec<(String, st::Service)> {
    let (Some(e), Some(image)) = (spec.exporter(), &images.exporter) else { return Vec::new() };
    spec.db_services()
        .iter()
        .map(|db| (exporter_name(&db.name), exporter_service(spec, e, image, network, db)))
        .collect()
}

fn exporter_service(
    spec: &ValidSpec,
    e: &hacompile_spec::Exporter,
    image: &str,
    network: &str,
    db: &DbService<'_>,
) -> st::Service {
    let pg = &spec.spec().postgres;
    let port = *e.port.get();
    // The user by name and the password from its secret file: the exporter
    // builds the URL itself, so no credential is in the stack. The cluster
    // serves no TLS (its traffic rides the overlay, encrypted unless the
    // spec says otherwise), and the exporter's driver would default to
    // `sslmode=require`. `connect_timeout` bounds each connection: a server
    // that never answers (its service's address with no task behind it, a
    // node gone) is `pg_up 0` within Prometheus' default 10 s scrape
    // timeout, not a scrape that hangs until TCP gives up.
    let environment = BTreeMap::from([
        (
            "DATA_SOURCE_URI".to_owned(),
            format!(
                "{}:{POSTGRES_PORT}/{EXPORTER_DATABASE}?sslmode=disable&connect_timeout={EXPORTER_CONNECT_TIMEOUT_SECS}",
                db.name
            ),
        ),
        ("DATA_SOURCE_USER".to_owned(), e.user.get().clone()),
        ("DATA_SOURCE_PASS_FILE".to_owned(), secret_path(e.password.secret.get())),
    ]);
    let mut labels = scrape_labels(JOB_POSTGRES, port);
    labels.insert(LABEL_DATABASE.to_owned(), db.name.clone());
    let (update_config, rollback_config) = update(&pg.update);
    st::Service {
        image: image.to_owned(),
        user: Some(EXPORTER_USER.into()),
        command: Some(vec![format!("--web.listen-address=:{port}"), format!("--extend.query-path={QUERIES_PATH}")]),
        environment,
        secrets: vec![secret(&e.password.secret, EXPORTER_UID)],
        configs: vec![st::FileRef {
            source: CFG_KEY_QUERIES.into(),
            target: QUERIES_PATH.into(),
            uid: EXPORTER_UID.into(),
            gid: EXPORTER_UID.into(),
            mode: MODE_0440,
        }],
        networks: vec![network.to_owned()],
        cap_drop: vec!["ALL".into()],
        read_only: Some(true),
        stop_grace_period: Some("10s".into()),
        // Its own liveness only (the landing page): a database that is down
        // is what `pg_up 0` reports, not a reason to restart the exporter.
        // The official image is built on Prometheus' busybox image, whose
        // wget answers this.
        healthcheck: Some(st::Healthcheck {
            test: vec![
                "CMD".into(),
                "wget".into(),
                "-q".into(),
                "-O".into(),
                "/dev/null".into(),
                format!("http://127.0.0.1:{port}/"),
            ],
            interval: "30s".into(),
            timeout: "5s".into(),
            retries: 3,
            start_period: "10s".into(),
        }),
        logging: Some(logging(spec)),
        deploy: Some(st::Deploy {
            mode: "replicated".into(),
            replicas: Some(1),
            // Prometheus scrapes each task's address; nothing needs a VIP.
            endpoint_mode: Some("dnsrr".into()),
            labels,
            // Anywhere: on another node than its database, it reports the
            // database's loss (`pg_up 0`) instead of vanishing with it.
            placement: None,
            resources: resources(&e.resources, 0.25, "128m", 0.05, "32m"),
            restart_policy: restart(&pg.restart),
            update_config,
            rollback_config,
        }),
        ..Default::default()
    }
}
