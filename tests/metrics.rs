//! Metrics with real parts: Debian's `prometheus-postgres-exporter` run per
//! database server with the compiled exporter services' environment and
//! command, against the compiled primary and replica (PostgreSQL 15, set up
//! by the emitted scripts), and HAProxy 2.6's /metrics on the compiled
//! haproxy.cfg. Prints the figures it read.
#![allow(clippy::print_stdout)] // the figures are part of what this test shows

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, PRIMARY, REPLICA, STATS_USER, sample, sql, stats_get, wait_for, write_wal};
use support::exporter::Exporter;
use support::patroni::Patroni;
use support::text;

const EXAMPLE: &str = include_str!("../examples/ha-postgres.toml");
const MONITOR: &str = "hacompile_monitor";
const PATRONI_EXAMPLE: &str = include_str!("../examples/ha-patroni.toml");
/// What the role query answers for a role with LOGIN and no other attribute.
const LOGIN_ONLY: &str = "f|f|f|f|f|t";
const ATTRIBUTES: &str = "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin \
                          from pg_roles where rolname = 'hacompile_monitor'";
const GRANTED: &str = "select string_agg(g.rolname, ',' order by g.rolname) from pg_auth_members m \
                       join pg_roles g on g.oid = m.roleid join pg_roles u on u.oid = m.member \
                       where u.rolname = 'hacompile_monitor'";
/// A password postgres_exporter 0.11 cannot parse (the space), and then logs.
const LEAKY_PASSWORD: &str = "Leaky pw for tests";

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
    let at = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let primary = Exporter::start(&c.site, &format!("{PRIMARY}-exporter"), at(c.primary.port));
    let replica = Exporter::start(&c.site, &format!("{REPLICA}-exporter"), at(c.replica.port));
    assert_eq!(primary.env.get("DATA_SOURCE_USER").map(String::as_str), Some(MONITOR), "the monitoring role");
    assert!(!primary.env.contains_key("DATA_SOURCE_NAME"), "no connection string with a password");

    // Up, as the monitoring role, which has nothing but LOGIN and pg_monitor.
    let (p, r) = (scrape(&primary), scrape(&replica));
    assert_eq!(plain(&p, "pg_up"), Some(1.0), "the primary's exporter connects:\n{}", primary.log(&c.site));
    assert_eq!(plain(&r, "pg_up"), Some(1.0), "the replica's exporter connects:\n{}", replica.log(&c.site));
    for port in [c.primary.port, c.replica.port] {
        assert_eq!(sql(port, ATTRIBUTES).as_deref(), Ok(LOGIN_ONLY), "LOGIN only, no other attribute");
    }
    assert_eq!(sql(c.primary.port, GRANTED).as_deref(), Ok("pg_monitor"), "member of pg_monitor only");
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

/// A server that accepts connections and then says nothing (as a swarm
/// service's address does while no task is behind it, or a node that went
/// away): the compiled exporter still answers a scrape, with `pg_up 0`,
/// because its connection string bounds the connection (`connect_timeout`).
/// Without it a scrape hangs until TCP gives up, minutes later, and
/// Prometheus sees a failed scrape instead of a database that is down.
#[test]
fn a_server_that_never_answers_is_pg_up_0_not_a_hung_scrape() {
    let (_root, site) = support::cluster::compile(&spec());
    // Never accepts: the kernel completes the handshakes into its backlog.
    let silent = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let std::net::SocketAddr::V4(addr) = silent.local_addr().expect("address") else { unreachable!("IPv4") };
    let uri = &site.service(&format!("{PRIMARY}-exporter")).environment["DATA_SOURCE_URI"];
    assert!(uri.contains("connect_timeout="), "the connection is bounded: {uri}");
    let started = Instant::now();
    // Waits (20 s at most) until a scrape (curl, 10 s at most) answers.
    let exporter = Exporter::start(&site, &format!("{PRIMARY}-exporter"), addr);
    let first = started.elapsed();
    let scraped = Instant::now();
    let metrics = scrape(&exporter);
    assert_eq!(plain(&metrics, "pg_up"), Some(0.0), "the silent server is down:\n{}", exporter.log(&site));
    println!(
        "a silent server: the first answer {:.1} s after the exporter started; a scrape: pg_up 0 in {:.1} s",
        first.as_secs_f64(),
        scraped.elapsed().as_secs_f64()
    );
}

/// Patroni: the first leader's post-bootstrap creates the same role, and
/// every member's exporter connects with it, the leader serving each
/// standby's lag and the standbys theirs.
#[test]
fn patroni_creates_the_monitoring_role_at_bootstrap_and_every_members_exporter_connects() {
    let p = Patroni::start(PATRONI_EXAMPLE);
    let leader = p.leader().expect("a leader");
    assert_eq!(p.members[leader].sql(ATTRIBUTES).as_deref(), Ok(LOGIN_ONLY), "LOGIN only, no other attribute");
    assert_eq!(p.members[leader].sql(GRANTED).as_deref(), Ok("pg_monitor"), "member of pg_monitor only");
    let exporters: Vec<Exporter> = p
        .members
        .iter()
        .map(|m| Exporter::start(&p.site, &format!("{}-exporter", m.name), SocketAddrV4::new(m.ip, m.pg_port)))
        .collect();
    for (i, e) in exporters.iter().enumerate() {
        let m = scrape(e);
        assert_eq!(plain(&m, "pg_up"), Some(1.0), "{} connects:\n{}", e.service, e.log(&p.site));
        let replica = if i == leader { 0.0 } else { 1.0 };
        assert_eq!(sample(&m, "pg_replica_is_replica", &[]), Some(replica), "{}", e.service);
    }
    let on_leader = scrape(&exporters[leader]);
    for (i, m) in p.members.iter().enumerate().filter(|(i, _)| *i != leader) {
        let standby = format!("application_name=\"{}\"", m.name);
        wait_for("the standby's lag series on the leader", Duration::from_secs(30), || {
            sample(&scrape(&exporters[leader]), "pg_stat_replication_pg_wal_lsn_diff", &[&standby]).is_some()
        });
        assert!(sample(&on_leader, "pg_standby_replay_lag_seconds", &[&standby]).is_some(), "member {i}");
    }
}

/// The role's password is checked before the init script creates anything:
/// one postgres_exporter 0.11 cannot parse would be logged whole by it (seen
/// below), so it is refused, without being shown.
#[test]
fn a_monitoring_password_the_exporter_would_log_is_refused_before_anything_is_created() {
    let (_root, site) = support::cluster::compile(&spec());
    let leaky = site.root.join("leaky_password");
    std::fs::write(&leaky, LEAKY_PASSWORD).expect("write");
    let env = |service: &str| -> Vec<(String, String)> {
        site.service(service)
            .environment
            .iter()
            .map(|(k, v)| {
                let v = match v.strip_prefix("/run/secrets/") {
                    Some("monitor_password") => leaky.to_str().expect("utf-8").to_owned(),
                    Some(name) => site.secrets.join(name).to_str().expect("utf-8").to_owned(),
                    None => v.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    };
    // Nothing listens here: a script that got as far as psql would fail there instead.
    let nowhere = site.root.join("no-server");
    std::fs::create_dir_all(&nowhere).expect("mkdir");
    let script = site.config_file(PRIMARY, "/docker-entrypoint-initdb.d/10-hacompile-replication.sh").expect("init");
    let out = Command::new("bash")
        .arg(&script)
        .env_clear()
        .envs(env(PRIMARY))
        .env("PATH", "/usr/lib/postgresql/15/bin:/usr/bin:/bin")
        .env("PGHOST", &nowhere)
        .output()
        .expect("bash");
    refused(&out, "the primary's init script");

    // Patroni's post-bootstrap, with the Patroni example's compiled member.
    let (_root, site) = support::cluster::compile(PATRONI_EXAMPLE);
    let leaky = site.root.join("leaky_password");
    std::fs::write(&leaky, LEAKY_PASSWORD).expect("write");
    let member = site.service("pg-1");
    let entrypoint = site
        .config_file("pg-1", member.entrypoint.as_ref().expect("an entrypoint").last().expect("its script"))
        .expect("the entrypoint beside the stack");
    let mut cmd = Command::new("bash");
    cmd.arg(&entrypoint).arg("post-bootstrap").arg(format!("host={} dbname=postgres", nowhere.display()));
    cmd.env_clear().env("PATH", "/usr/lib/postgresql/15/bin:/usr/bin:/bin");
    for (k, v) in &member.environment {
        let v = match v.strip_prefix("/run/secrets/") {
            Some("monitor_password") => leaky.to_str().expect("utf-8").to_owned(),
            Some(name) => site.secrets.join(name).to_str().expect("utf-8").to_owned(),
            None => v.clone(),
        };
        cmd.env(k, v);
    }
    refused(&cmd.output().expect("bash"), "Patroni's post-bootstrap");

    // Why: Debian's postgres_exporter 0.11 with such a password.
    let out = Command::new("timeout")
        .args(["10", support::exporter::EXPORTER_BIN, "--web.listen-address=127.0.0.1:0"])
        .env_clear()
        .env("DATA_SOURCE_URI", "127.0.0.1:1/postgres?sslmode=disable")
        .env("DATA_SOURCE_USER", MONITOR)
        .env("DATA_SOURCE_PASS_FILE", &leaky)
        .output()
        .expect("the exporter runs");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "postgres_exporter 0.11 refuses such a password:\n{}",
        said.replace("Leaky", "<password>")
    );
    assert!(
        said.contains("Leaky"),
        "and logs it (why the scripts refuse it):\n{}",
        said.replace("Leaky", "<password>")
    );
    println!(
        "postgres_exporter 0.11 with a space in the password: {}",
        said.trim().replace(LEAKY_PASSWORD, "<password>")
    );
}

fn refused(out: &std::process::Output, what: &str) {
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{what} accepted the password:\n{said}");
    assert!(said.contains("monitoring password"), "{what} says why:\n{said}");
    assert!(!said.contains("Leaky") && !said.contains("tests"), "{what} shows no part of it:\n{said}");
    assert!(!said.contains("psql") && !said.contains("connection"), "{what} stopped before psql:\n{said}");
}

/// The scrape configuration the README shows (docs/prometheus-dockerswarm.yml):
/// Prometheus' own checker accepts it, and every service label it keys on is
/// one the compiled stack carries, on the exporters and on HAProxy.
#[test]
fn the_documented_scrape_config_is_valid_and_keys_on_labels_the_stack_carries() {
    let (root, site) = support::cluster::compile(&spec());
    let doc = std::fs::read_to_string(format!("{}/docs/prometheus-dockerswarm.yml", support::ROOT)).expect("the doc");
    let password = root.path().join("metrics_password");
    std::fs::write(&password, "x").expect("write");
    let local = root.path().join("prometheus.yml");
    let doc_local = doc.replace("/run/secrets/haproxy_metrics_password", password.to_str().expect("utf-8"));
    std::fs::write(&local, doc_local).expect("write");
    let out =
        Command::new("promtool").arg("check").arg("config").arg(&local).output().expect("promtool (tests/setup.sh)");
    assert!(out.status.success(), "promtool check config:\n{}{}", text(&out.stdout), text(&out.stderr));
    // Prometheus names a service label `a.b/c` as `__meta_dockerswarm_service_label_a_b_c`.
    let meta = |label: &str| {
        let clean: String = label.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("__meta_dockerswarm_service_label_{clean}")
    };
    let mut carried = std::collections::BTreeSet::new();
    for (name, svc) in &site.stack.services {
        let labels = &svc.deploy.as_ref().expect("deploy").labels;
        if name.ends_with("-exporter") || name == "haproxy" {
            assert!(!labels.is_empty(), "{name} carries scrape labels");
        }
        carried.extend(labels.keys().map(|k| meta(k)));
    }
    let used: Vec<&str> = doc
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("__meta_dockerswarm_service_label_"))
        .collect();
    assert!(used.len() >= 4, "the config keys on the labels: {used:?}");
    for u in used {
        assert!(carried.contains(u), "{u} is not a label of the compiled stack: {carried:?}");
    }
    assert!(doc.contains(&format!("regex: {}_pg_net", "ha_db")), "the stack's network, as swarm names it");
}
