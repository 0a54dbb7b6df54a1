//! The compiled cluster on real HAProxy 2.6 and PostgreSQL 15 (loopback):
//! routing by listener, health checks, stats authentication, replica and
//! primary loss and return, and the replication set up by the emitted
//! scripts. Prints a report of detection times and failed client queries.
#![allow(clippy::print_stdout)] // the report is part of what this test shows

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{
    Cluster, PRIMARY, REPLICA, STATS_USER, in_recovery, measure, sample, servers, sql, stats_csv, stats_get,
    wait_child, wait_for,
};
use support::*;

const EXAMPLE: &str = include_str!("../examples/ha-postgres.toml");

#[test]
fn the_compiled_cluster_routes_checks_and_heals_on_real_haproxy_and_postgresql() {
    let mut c = Cluster::start(EXAMPLE);
    let mut report = Vec::new();

    // Only server addresses, DNS resolution and ports differ from the compiled file.
    let compiled: BTreeSet<&str> = c.compiled_cfg.lines().collect();
    for line in c.local_cfg.lines().filter(|l| !compiled.contains(l)) {
        let t = line.trim_start();
        assert!(t.starts_with("server ") || t.starts_with("bind "), "unexpected change: {line}");
    }
    for line in c.compiled_cfg.lines().filter(|l| !c.local_cfg.lines().any(|x| x == *l)) {
        let t = line.trim_start();
        assert!(
            t.starts_with("server-template ")
                || t.starts_with("bind ")
                || t.starts_with("resolvers ")
                || c.compiled_cfg.contains("resolvers docker")
                    && (t.starts_with("nameserver")
                        || t.starts_with("resolve_retries")
                        || t.starts_with("timeout resolve")
                        || t.starts_with("timeout retry")
                        || t.starts_with("hold ")
                        || t.starts_with("accepted_payload_size")
                        || t.starts_with("# Docker's")),
            "unexpected removal: {line}"
        );
    }

    // The servers run with their service's compiled command-line settings.
    for pg in [&c.primary, &c.replica] {
        let from_command: BTreeSet<String> = sql(pg.port, "select name from pg_settings where source = 'command line'")
            .expect("pg_settings")
            .lines()
            .map(str::to_owned)
            .collect();
        for setting in c.site.settings(&pg.service).iter().filter(|a| *a != "-c") {
            let name = setting.split_once('=').expect("name=value").0;
            assert!(from_command.contains(name), "{}: {name} is set from the command line", pg.service);
        }
    }
    assert_eq!(sql(c.replica.port, "show cluster_name").expect("cluster_name"), REPLICA);
    assert_eq!(sql(c.primary.port, "show cluster_name").expect("cluster_name"), PRIMARY);
    // Clients from allowed networks (the default includes loopback) get through.
    assert!(c.compiled_cfg.contains("tcp-request connection reject unless db_clients"));

    // 1. Writes reach the primary, reads the replica; a write is read back.
    assert_eq!(sql(c.write_port, "select pg_is_in_recovery()").expect("write listener"), "f");
    assert_eq!(sql(c.read_port, "select pg_is_in_recovery()").expect("read listener"), "t");
    sql(c.write_port, "create table orders (id int primary key, note text)").expect("create");
    sql(c.write_port, "insert into orders values (1, 'through the write listener')").expect("insert");
    let (t, _) = measure("the row through :read", Duration::from_secs(10), || {
        Ok(sql(c.read_port, "select note from orders where id = 1").is_ok_and(|n| n == "through the write listener"))
    });
    report.push(format!("row written through :write visible through :read after {t:?}"));

    // 2. Stats: every server UP, with the pgsql check (L7OK against SCRAM PostgreSQL).
    wait_for("all servers UP", Duration::from_secs(20), || {
        let (code, csv) = stats_csv(c.stats_port, Some(STATS_USER));
        code == 200
            && ["postgres_write", "postgres_read"].iter().all(|p| servers(&csv, p).values().all(|(s, _)| s == "UP"))
    });
    let (_, csv) = stats_csv(c.stats_port, Some(STATS_USER));
    let write = servers(&csv, "postgres_write");
    let read = servers(&csv, "postgres_read");
    assert_eq!(write.keys().collect::<Vec<_>>(), ["pg-primary-1"], "the write listener has the primary only");
    assert_eq!(read.keys().collect::<Vec<_>>(), ["pg-primary-1", "pg-replica-1-1"]);
    for (name, (status, check)) in write.iter().chain(&read) {
        assert_eq!(status, "UP", "{name}");
        assert_eq!(check, "L7OK", "{name}: option pgsql-check passes against scram-sha-256");
    }

    // 3. The stats page refuses no credentials and wrong ones.
    assert_eq!(stats_csv(c.stats_port, None).0, 401);
    assert_eq!(stats_csv(c.stats_port, Some(("admin", "wrong"))).0, 401);
    assert_eq!(stats_csv(c.stats_port, Some(("nobody", "test"))).0, 401);

    // 6. Replication as the emitted init script set it up.
    let repl =
        sql(c.primary.port, "select usename || '|' || application_name || '|' || state from pg_stat_replication")
            .expect("pg_stat_replication");
    assert_eq!(repl, format!("replicator|{REPLICA}|streaming"));
    assert_eq!(
        sql(c.primary.port, "select rolreplication from pg_roles where rolname = 'replicator'").expect("role"),
        "t"
    );
    let hba = std::fs::read_to_string(c.primary.data.join("pg_hba.conf")).expect("hba");
    assert!(c.healthcheck(PRIMARY).healthy() && c.healthcheck(REPLICA).healthy(), "both healthy while streaming");
    assert!(hba.contains("host replication replicator all scram-sha-256"));
    let conninfo = sql(c.replica.port, "show primary_conninfo").expect("conninfo");
    assert!(
        conninfo.contains("user=replicator") && !conninfo.contains("Repl:pw"),
        "the replica uses the role, and no password sits in its conninfo"
    );

    // 4. Replica down: reads move to the primary (backup); back: reads return.
    c.replica.stop();
    let (down, failed) =
        measure("reads on the primary", Duration::from_secs(40), || in_recovery(c.read_port).map(|r| !r));
    report.push(format!("replica down: reads on the primary after {down:?}, {failed} failed read queries"));
    c.restart_replica();
    let (up, failed) = measure("reads on the replica", Duration::from_secs(40), || in_recovery(c.read_port));
    report.push(format!("replica back: reads on the replica again after {up:?}, {failed} failed read queries"));

    // 5. Primary down: writes stop, sessions are cut, nothing lands on the replica.
    let mut session = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", c.write_port.to_string())
        .env("PGUSER", support::cluster::SUPERUSER)
        .env("PGDATABASE", "app")
        .env("PGPASSWORD", support::cluster::PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("a long-lived write session");
    let mut stdin = session.stdin.take().expect("stdin");
    writeln!(stdin, "insert into orders values (2, 'before');").expect("write");
    stdin.flush().expect("flush");
    wait_for("the session's write", Duration::from_secs(10), || {
        sql(c.write_port, "select count(*) from orders where id = 2").is_ok_and(|n| n == "1")
    });
    let rows_before = sql(c.read_port, "select count(*) from orders").expect("count");

    c.primary.stop();
    let stopped = Instant::now();
    let mut attempts = 0u32;
    let (down, _) = measure("the write server DOWN", Duration::from_secs(40), || {
        attempts += 1;
        let r = sql(c.write_port, &format!("insert into orders values ({}, 'during outage')", 1000 + attempts));
        assert!(r.is_err(), "a write was accepted while the primary was down");
        let (_, csv) = stats_csv(c.stats_port, Some(STATS_USER));
        Ok(servers(&csv, "postgres_write").get("pg-primary-1").is_some_and(|(s, _)| s.starts_with("DOWN")))
    });
    report
        .push(format!("primary down: write server marked DOWN after {down:?}; {attempts} write attempts, all refused"));
    let _ = writeln!(stdin, "insert into orders values (3, 'after the primary left');");
    let _ = stdin.flush();
    let status = wait_child(&mut session, Duration::from_secs(10));
    assert_eq!(status, Some(false), "the existing write session was cut");
    assert_eq!(in_recovery(c.read_port), Ok(true), "reads keep working on the replica");
    assert_eq!(
        sql(c.read_port, "select count(*) from orders where note = 'during outage'").expect("count"),
        "0",
        "no write landed anywhere"
    );

    c.restart_primary();
    let (up, failed) = measure("a write accepted", Duration::from_secs(40), || {
        Ok(sql(c.write_port, "insert into orders values (4, 'after the primary came back')").is_ok())
    });
    report.push(format!(
        "primary back: writes accepted {up:?} after restart ({:?} after it stopped), {failed} failed writes, HAProxy not restarted",
        stopped.elapsed()
    ));
    assert_eq!(sql(c.write_port, "select pg_is_in_recovery()").expect("write"), "f");
    let (t, _) = measure("new rows through :read", Duration::from_secs(30), || {
        Ok(sql(c.read_port, "select count(*) from orders")
            .is_ok_and(|n| n.parse::<u32>().unwrap_or(0) > rows_before.parse::<u32>().unwrap_or(0)))
    });
    report.push(format!("replica streaming again: new primary writes visible through :read after {t:?}"));

    println!("\n=== compiled cluster on HAProxy 2.6 + PostgreSQL 15 (inter 3s, fall 3, rise 2) ===");
    for line in &report {
        println!("  {line}");
    }
}

#[test]
fn the_emitted_files_are_the_compiled_model() {
    // The cluster tests run what the binary wrote; this ties it to the library's model.
    let dir = tempfile::tempdir().expect("temp dir");
    let run = bin().args(["build", "examples/ha-postgres.toml", "-o"]).arg(dir.path()).output().expect("runs");
    assert!(run.status.success(), "{}", text(&run.stderr));
    let spec = hacompile_spec::load(&hacompile_spec::SourceFile::new("examples/ha-postgres.toml", EXAMPLE))
        .expect("valid spec");
    let lock = hacompile_image::LockFile::parse(include_str!("../examples/hacompile.lock")).expect("lock");
    let compiled = hacompile_compile::compile(&spec, &lock).expect("compiles");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("written");
    assert_eq!(compiled.haproxy.render(), read("haproxy.cfg"));
    let stack: hacompile_stack::StackFile = serde_yaml_ng::from_str(&read("docker-stack.yml")).expect("model");
    assert_eq!(stack, compiled.stack);
}

#[test]
fn the_tcp_check_reports_l4ok() {
    let spec = EXAMPLE.replace("check = \"pgsql\"", "check = \"tcp\"");
    let c = Cluster::start(&spec);
    wait_for("all servers UP with L4OK", Duration::from_secs(20), || {
        let (code, csv) = stats_csv(c.stats_port, Some(STATS_USER));
        code == 200
            && ["postgres_write", "postgres_read"]
                .iter()
                .all(|p| servers(&csv, p).values().all(|(s, k)| s == "UP" && k == "L4OK"))
    });
    assert_eq!(sql(c.write_port, "select pg_is_in_recovery()").expect("write"), "f");
    assert_eq!(sql(c.read_port, "select pg_is_in_recovery()").expect("read"), "t");
}

#[test]
fn the_bitnami_flavor_uses_exactly_the_variables_the_image_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = bin().args(["build", "examples/bitnami.toml", "-o"]).arg(dir.path()).output().expect("runs");
    assert!(run.status.success());
    let stack: hacompile_stack::StackFile =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.path().join("docker-stack.yml")).expect("read"))
            .expect("model");
    // Bitnami's documented names (REFERENCE.md); every credential through `_FILE`.
    let known: BTreeSet<&str> = [
        "POSTGRESQL_REPLICATION_MODE",
        "POSTGRESQL_MASTER_HOST",
        "POSTGRESQL_MASTER_PORT_NUMBER",
        "POSTGRESQL_REPLICATION_USER",
        "POSTGRESQL_REPLICATION_PASSWORD_FILE",
        "POSTGRESQL_USERNAME_FILE",
        "POSTGRESQL_PASSWORD_FILE",
        "POSTGRESQL_DATABASE",
        // Listed in postgresql-env.sh (bitnami/containers, bitnami/postgresql/17/debian-12).
        "POSTGRESQL_MAX_CONNECTIONS",
    ]
    .into();
    for (name, svc) in stack.services.iter().filter(|(n, _)| n.starts_with("pg-")) {
        let mounted: BTreeSet<String> = svc.secrets.iter().map(|s| format!("/run/secrets/{}", s.target)).collect();
        for (key, value) in &svc.environment {
            assert!(known.contains(key.as_str()), "{name}: {key} is not a variable the Bitnami image reads");
            if key.ends_with("_FILE") {
                assert!(mounted.contains(value), "{name}: {key} points at a mounted secret ({value})");
            }
            assert!(!key.contains("PASSWORD") || key.ends_with("_FILE"), "{name}: {key} carries a credential");
        }
        assert_eq!(svc.volumes[0].target, "/bitnami/postgresql");
        assert!(svc.secrets.iter().all(|s| s.uid == "1001"), "{name}: secrets readable by UID 1001");
    }
    let replica = &stack.services["pg-replica-1"].environment;
    assert_eq!(replica["POSTGRESQL_REPLICATION_MODE"], "slave");
    assert_eq!(replica["POSTGRESQL_MASTER_HOST"], "pg-primary");
    assert_eq!(stack.services["pg-primary"].environment["POSTGRESQL_REPLICATION_MODE"], "master");
}

/// The spec may turn statement logging on; the init script's statements
/// carry the replication password and must never reach the log.
#[test]
fn statement_logging_never_logs_the_replication_password() {
    let spec = EXAMPLE.replacen(
        "[postgres.replication]",
        "[postgres.parameters]\nlog_statement = \"all\"\nlog_min_duration_statement = 0\n\n[postgres.replication]",
        1,
    );
    let c = Cluster::start(&spec);
    assert_eq!(sql(c.primary.port, "show log_statement").expect("show"), "all", "the spec's setting is applied");
    sql(c.primary.port, "select 'a logged statement'").expect("query");
    let log = std::fs::read_to_string(&c.primary.log).expect("primary log");
    assert!(log.contains("a logged statement"), "statements are logged:\n{log}");
    // Quoted as a literal the password's backslash is doubled: look for a part without one.
    let password = support::cluster::REPL_PASSWORD;
    let part = password.split('\\').next().expect("a part");
    assert!(part.len() >= 6, "a distinctive part of the password");
    assert!(log.contains("statement:"), "statements are logged:\n{log}");
    assert!(!log.contains(part), "the replication password is in the primary's log:\n{log}");
}

/// HAProxy's built-in Prometheus exporter on the stats listener: behind the
/// same authentication, and its figures follow the servers (a replica that
/// stops is DOWN in the metrics, and UP again when it returns).
#[test]
fn prometheus_metrics_are_served_behind_the_stats_auth_and_follow_the_servers() {
    let mut c = Cluster::start(EXAMPLE);
    let (code, _) = stats_get(c.stats_port, "/metrics", None);
    assert_eq!(code, 401, "no credentials, no metrics");
    let (code, _) = stats_get(c.stats_port, "/metrics", Some((STATS_USER.0, "wrong")));
    assert_eq!(code, 401, "wrong credentials, no metrics");
    let up = |c: &Cluster, server: &str| {
        let (code, body) = stats_get(c.stats_port, "/metrics", Some(STATS_USER));
        assert_eq!(code, 200);
        sample(
            &body,
            "haproxy_server_status",
            &["proxy=\"postgres_read\"", &format!("server=\"{server}\""), "state=\"UP\""],
        )
    };
    let replica_server = format!("{REPLICA}-1");
    wait_for("the replica UP in the metrics", Duration::from_secs(30), || up(&c, &replica_server) == Some(1.0));
    let (_, body) = stats_get(c.stats_port, "/metrics", Some(STATS_USER));
    for name in
        ["haproxy_backend_active_servers", "haproxy_server_current_sessions", "haproxy_frontend_connections_total"]
    {
        assert!(body.lines().any(|l| l.starts_with(name)), "{name} is exported");
    }
    assert_eq!(
        sample(&body, "haproxy_backend_active_servers", &["proxy=\"postgres_write\""]),
        Some(1.0),
        "the write listener has its primary"
    );
    c.replica.stop();
    wait_for("the replica DOWN in the metrics", Duration::from_secs(40), || up(&c, &replica_server) == Some(0.0));
    c.restart_replica();
    wait_for("the replica UP again", Duration::from_secs(60), || up(&c, &replica_server) == Some(1.0));
}

/// The healthcheck runs every few seconds for the life of the cluster: it
/// must not leave a line in the server's log each time. Docker runs it as
/// the container's user (root in the official image); a `pg_isready`
/// without `-U` logged `FATAL: role "root" does not exist` on every check
/// (seen on the swarm run: every 2.5 s on the primary), noise that hides
/// real errors and trips log alerts.
#[test]
fn the_healthcheck_leaves_no_error_in_the_server_logs() {
    let c = Cluster::start(EXAMPLE);
    let before = (c.primary.log_text().len(), c.replica.log_text().len());
    for _ in 0..3 {
        assert!(c.healthcheck(PRIMARY).healthy(), "the primary is healthy");
        assert!(c.healthcheck(REPLICA).healthy(), "the replica is healthy");
    }
    for (pg, from) in [(&c.primary, before.0), (&c.replica, before.1)] {
        let log = pg.log_text();
        let new: Vec<&str> = log[from..].lines().filter(|l| l.contains("FATAL") || l.contains("ERROR")).collect();
        assert!(new.is_empty(), "{}: the healthchecks logged:\n{}", pg.service, new.join("\n"));
    }
}
