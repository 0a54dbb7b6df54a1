//! Metrics with real parts: Debian's `prometheus-postgres-exporter` run per
//! database server with the compiled exporter services' environment and
//! command, against the compiled primary and replica (PostgreSQL 15, set up
//! by the emitted scripts), and HAProxy 2.6's /metrics on the compiled
//! haproxy.cfg. Prints the figures it read.
#![allow(clippy::print_stdout)] // the figures are part of what this test shows

mod support;

use std::time::{Duration, Instant};

use support::cluster::{Cluster, PRIMARY, REPLICA, STATS_USER, sample, sql, stats_get, wait_for, write_wal};
use support::exporter::Exporter;

const EXAMPLE: &str = include_str!("../examples/ha-postgres.toml");
const MONITOR: &str = "hacompile_monitor";

/// The example with an exporter.
fn spec() -> String {
    let secrets = "[secrets.haproxy_stats_users]\n";
    let replication = "password = { secret = \"replication_password\" }\n";
    assert!(EXAMPLE.contains(secrets) && EXAMPLE.contains(replication));
    EXAMPLE.replacen(secrets, &format!("{secrets}[secrets.monitor_password]\n"), 1).replacen(
        replication,
        &format!(
            "{replication}\n[postgres.exporter]\nimage = \"quay.io/prometheuscommunity/postgres-exporter:v0.16.0\"\npassword = {{ secret = \"monitor_password\" }}\n"
        ),
        1,
    )
}

/// A sample with no labels (`pg_up 1`).
fn plain(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn scrape(e: &Exporter) -> String {
    e.metrics().unwrap_or_else(|| panic!("{} serves /metrics", e.service))
}

/// The exporters of the compiled services, each as the monitoring role
/// the primary's init script created: up on both servers; the role has
/// LOGIN and pg_monitor and nothing else; sessions, lag in bytes (primary)
/// and in seconds (replica) are served and follow a replica whose replay
/// is paused; a replica that stops leaves the primary's replication series,
/// its exporter says `pg_up 0` and HAProxy's /metrics has it DOWN.
#[test]
fn the_compiled_exporters_serve_up_sessions_and_lag_and_follow_a_replica_that_stops() {
    let mut c = Cluster::start(&spec());
    let primary = Exporter::start(&c.site, &format!("{PRIMARY}-exporter"), c.primary.port);
    let replica = Exporter::start(&c.site, &format!("{REPLICA}-exporter"), c.replica.port);
    assert_eq!(primary.env.get("DATA_SOURCE_USER").map(String::as_str), Some(MONITOR), "the monitoring role");
    assert!(!primary.env.contains_key("DATA_SOURCE_NAME"), "no connection string with a password");

    // Up, as the monitoring role, which has nothing but LOGIN and pg_monitor.
    let (p, r) = (scrape(&primary), scrape(&replica));
    assert_eq!(plain(&p, "pg_up"), Some(1.0), "the primary's exporter connects:\n{}", primary.log(&c.site));
    assert_eq!(plain(&r, "pg_up"), Some(1.0), "the replica's exporter connects:\n{}", replica.log(&c.site));
    let attributes = "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin \
                      from pg_roles where rolname = 'hacompile_monitor'";
    for port in [c.primary.port, c.replica.port] {
        assert_eq!(sql(port, attributes).as_deref(), Ok("f|f|f|f|f|t"), "LOGIN only, no other attribute");
    }
    let granted = "select string_agg(g.rolname, ',' order by g.rolname) from pg_auth_members m \
                   join pg_roles g on g.oid = m.roleid join pg_roles u on u.oid = m.member \
                   where u.rolname = 'hacompile_monitor'";
    assert_eq!(sql(c.primary.port, granted).as_deref(), Ok("pg_monitor"), "member of pg_monitor only");
    let sessions = "select count(*) from pg_stat_activity where usename = 'hacompile_monitor'";
    assert!(sql(c.primary.port, sessions).is_ok_and(|n| n != "0"), "the exporter's session is the monitoring role's");

    // Sessions and replication, as a dashboard reads them.
    assert!(sample(&p, "pg_stat_activity_count", &["datname=\"postgres\""]).is_some(), "sessions per database");
    let standby = format!("application_name=\"{REPLICA}\"");
    let lag_bytes = |m: &str| sample(m, "pg_stat_replication_pg_wal_lsn_diff", &[&standby]);
    assert!(lag_bytes(&p).is_some(), "the primary serves the standby's lag in bytes");
    assert!(sample(&p, "pg_standby_replay_lag_seconds", &[&standby]).is_some(), "and in seconds");
    assert_eq!(sample(&p, "pg_replica_is_replica", &[]), Some(0.0));
    assert_eq!(sample(&r, "pg_replica_is_replica", &[]), Some(1.0));
    assert_eq!(sample(&r, "pg_replica_lag_seconds", &[]), Some(0.0), "a replica that replayed all it received");

    // The replica stops replaying: lag in bytes and seconds grow, then vanish when it resumes.
    let probe = "create table metrics_probe (at timestamptz); insert into metrics_probe values (now())";
    sql(c.primary.port, probe).expect("a first commit");
    wait_for("the replica to replay it", Duration::from_secs(30), || {
        sql(c.replica.port, "select count(*) from metrics_probe").is_ok_and(|n| n == "1")
    });
    sql(c.replica.port, "select pg_wal_replay_pause()").expect("pause replay");
    let written = write_wal(c.primary.port, 8 * 1024 * 1024);
    sql(c.primary.port, "insert into metrics_probe values (now())").expect("a commit to replay");
    wait_for("the primary's lag in bytes to pass what was written", Duration::from_secs(30), || {
        lag_bytes(&scrape(&primary)).is_some_and(|b| b >= written as f64)
    });
    std::thread::sleep(Duration::from_secs(2));
    let behind = sample(&scrape(&replica), "pg_replica_lag_seconds", &[]).expect("lag seconds");
    assert!(behind >= 1.0, "replay paused for 2 s after a commit: {behind} s behind");
    println!("paused replay: {} bytes written, replica {behind:.1} s behind", written);
    sql(c.replica.port, "select pg_wal_replay_resume()").expect("resume replay");
    wait_for("the lag to go back to 0", Duration::from_secs(60), || {
        lag_bytes(&scrape(&primary)) == Some(0.0)
            && sample(&scrape(&replica), "pg_replica_lag_seconds", &[]) == Some(0.0)
    });

    // The replica stops.
    let down = |c: &Cluster| {
        let (code, body) = stats_get(c.stats_port, "/metrics", Some(STATS_USER));
        assert_eq!(code, 200);
        sample(
            &body,
            "haproxy_server_status",
            &["proxy=\"postgres_read\"", &format!("server=\"{REPLICA}-1\""), "state=\"DOWN\""],
        )
    };
    wait_for("HAProxy to have the replica UP", Duration::from_secs(30), || down(&c) == Some(0.0));
    let stopped = Instant::now();
    c.replica.stop();
    wait_for("the replica's exporter to say pg_up 0", Duration::from_secs(30), || {
        plain(&scrape(&replica), "pg_up") == Some(0.0)
    });
    wait_for("the standby to leave the primary's replication series", Duration::from_secs(30), || {
        lag_bytes(&scrape(&primary)).is_none()
    });
    let p = scrape(&primary);
    assert_eq!(plain(&p, "pg_up"), Some(1.0), "the primary is still up");
    assert_eq!(
        sample(&p, "pg_replication_slots_active", &["slot_name=\"pg_replica_1\""]),
        Some(0.0),
        "its slot is kept, inactive"
    );
    wait_for("HAProxy's /metrics to have the replica DOWN", Duration::from_secs(40), || down(&c) == Some(1.0));
    println!("replica stopped: exporters and HAProxy agreed within {:.1} s", stopped.elapsed().as_secs_f64());
}
