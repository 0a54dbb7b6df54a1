//! The haproxy.cfg model: route by service, not by a check.
//!
//! A check (TCP or `pgsql-check`) cannot tell a primary from a replica, so
//! the write listener's only servers are the primary service's tasks, and the
//! read listener has the replicas with the primary as `backup`. Servers come
//! from Docker's DNS at run time (`server-template` over `tasks.<service>`,
//! `init-addr none`), so HAProxy starts while a database task is down
//! instead of crash-looping.

use hacompile_haproxy::{
    Config, Directive as D, HoldKind, Mode, Section, SectionKind, ServerOptions, Time, TimeoutKind as T,
};
use hacompile_spec::values::parse_duration;
use hacompile_spec::{CheckKind, HAPROXY_HEALTH_PORT, METRICS_PATH, Sp, ValidSpec};

use crate::names::*;

fn time(v: &Sp<String>) -> Time {
    Time(parse_duration(v).expect("durations were validated"))
}

/// Listener names, used by tests and the harness that runs the config.
pub const WRITE_LISTENER: &str = "postgres_write";
pub const READ_LISTENER: &str = "postgres_read";
pub const STATS_LISTENER: &str = "stats";
pub const HEALTH_FRONTEND: &str = "healthz";
/// Networks on one `acl ... src` line: HAProxy stops reading a line after 64 words.
const ACL_NETWORKS_PER_LINE: usize = 32;

/// A server found through Docker's DNS at run time, checked.
pub(crate) fn dynamic_server(backup: bool) -> ServerOptions {
    ServerOptions {
        check: true,
        backup,
        resolvers: Some(RESOLVERS.into()),
        init_addr: vec!["none".into()],
        resolve_prefer_ipv4: true,
        ..Default::default()
    }
}

pub fn haproxy_config(spec: &ValidSpec) -> Config {
    let s = spec.spec();
    let hp = &s.haproxy;

    let global = Section {
        kind: SectionKind::Global,
        comment: None,
        directives: vec![
            D::Log { target: "stdout".into(), facility: "local0".into() },
            D::MaxConn(*hp.maxconn),
            // The service stops with SIGUSR1 (soft stop: no new connections);
            // long database sessions are closed by this deadline, before swarm's kill.
            D::HardStopAfter(Time(HAPROXY_STOP_GRACE_MS - HAPROXY_HARD_STOP_MARGIN_MS)),
        ],
    };

    // Docker's embedded DNS, re-asked every second; a vanished task is
    // dropped after `hold` so a dead IP is not kept for long.
    let resolvers = Section {
        kind: SectionKind::Resolvers(RESOLVERS.into()),
        comment: Some("Docker's embedded DNS: tasks.<service> has one A record per running task".into()),
        directives: vec![
            D::Nameserver { name: "dns".into(), address: DOCKER_DNS.into() },
            D::ResolveRetries(3),
            D::Timeout(T::Resolve, Time(1_000)),
            D::Timeout(T::Retry, Time(1_000)),
            D::Hold(HoldKind::Other, Time(10_000)),
            D::Hold(HoldKind::Refused, Time(10_000)),
            D::Hold(HoldKind::Nx, Time(10_000)),
            D::Hold(HoldKind::Timeout, Time(10_000)),
            D::Hold(HoldKind::Valid, Time(10_000)),
            D::Hold(HoldKind::Obsolete, Time(10_000)),
            D::AcceptedPayloadSize(8192),
        ],
    };

    let defaults = Section {
        kind: SectionKind::Defaults,
        comment: None,
        directives: vec![
            D::Mode(Mode::Tcp),
            D::LogGlobal,
            D::OptionDontLogNull,
            D::Retries(3),
            D::Timeout(T::Connect, time(&hp.timeouts.connect)),
            // Long, so pooled idle connections survive.
            D::Timeout(T::Client, time(&hp.timeouts.client)),
            D::Timeout(T::Server, time(&hp.timeouts.server)),
            D::Timeout(T::Check, time(&hp.timeouts.check)),
            // Clients beyond a server's `maxconn` wait here rather than fail.
            D::Timeout(T::Queue, time(&hp.timeouts.queue)),
            D::DefaultServer(ServerOptions {
                inter: Some(time(&hp.checks.interval)),
                fall: Some(*hp.checks.fall),
                rise: Some(*hp.checks.rise),
                shutdown_sessions_on_down: true,
                ..Default::default()
            }),
        ],
    };

    let check = match hp.check {
        CheckKind::Pgsql => Some(D::OptionPgsqlCheck { user: hp.check_user.get().clone() }),
        CheckKind::Tcp => None,
    };
    // Only the allowed client networks reach a database listener.
    let guard: Vec<D> = hp
        .allow_from
        .chunks(ACL_NETWORKS_PER_LINE)
        .map(|chunk| D::AclSrc { name: "db_clients".into(), networks: chunk.iter().map(|c| c.get().clone()).collect() })
        .chain([D::TcpRequestConnectionRejectUnless { acl: "db_clients".into() }])
        .collect();
    let listeners = crate::topology::of(spec).listeners(spec, &guard, check.as_ref());

    // The container healthcheck connects here; loopback only.
    let health = Section {
        kind: SectionKind::Frontend(HEALTH_FRONTEND.into()),
        comment: Some("Answers the container healthcheck; bound to loopback inside the container".into()),
        directives: vec![
            D::Bind { address: "127.0.0.1".into(), port: HAPROXY_HEALTH_PORT },
            D::Mode(Mode::Http),
            D::Timeout(T::Client, Time(5_000)),
            D::Timeout(T::HttpRequest, Time(5_000)),
            D::MonitorUri("/healthz".into()),
        ],
    };

    let mut sections = vec![global, resolvers, defaults];
    sections.extend(listeners);
    sections.push(health);
    if let Some(stats) = &hp.stats {
        sections.push(Section {
            kind: SectionKind::Listen(STATS_LISTENER.into()),
            comment: Some(format!(
                "Stats: allowed networks only, HTTP basic auth against the userlist `{STATS_USERLIST}` read from a Docker secret"
            )),
            directives: [
                D::Bind { address: String::new(), port: *stats.port.get() },
                D::Mode(Mode::Http),
                D::OptionHttpLog,
                D::Timeout(T::Client, Time(30_000)),
                D::Timeout(T::HttpRequest, Time(10_000)),
            ]
            .into_iter()
            // HAProxy reads at most 64 words on a line; lines declaring one
            // ACL name are OR-ed, so a long list becomes several lines.
            .chain(stats.allow_from.chunks(ACL_NETWORKS_PER_LINE).map(|chunk| D::AclSrc {
                name: "stats_allowed_net".into(),
                networks: chunk.iter().map(|c| c.get().clone()).collect(),
            }))
            .chain([
                D::AclHttpAuth { name: "stats_auth_ok".into(), userlist: STATS_USERLIST.into() },
                D::HttpRequestDenyUnless { acl: "stats_allowed_net".into() },
                D::HttpRequestAuthUnless { realm: "hacompile-stats".into(), acl: "stats_auth_ok".into() },
            ])
            // After the allow list and the authentication: Prometheus scrapes
            // with basic_auth, like a person opening the page.
            .chain(stats.metrics.get().then(|| D::PrometheusExporterAt(METRICS_PATH.into())))
            .chain([
                D::StatsEnable,
                D::StatsUri(stats.path.get().clone()),
                D::StatsRefresh(Time(10_000)),
                D::StatsHideVersion,
            ])
            .collect(),
        });
    }

    Config {
        header: vec![
            format!(
                "Generated by hacompile from {}. Do not edit: change the spec and build again.",
                spec.source().name()
            ),
            "Delivered to the proxies as a swarm config whose name carries a hash of this text.".into(),
        ],
        sections,
    }
}
