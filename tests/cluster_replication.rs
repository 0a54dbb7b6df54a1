//! Replication failures on real PostgreSQL 15 and HAProxy 2.6 (loopback),
//! run through the compiled stack's settings, environment, entrypoint and
//! healthcheck: a replica down longer than `wal_keep_size`, a primary
//! volume recreated under a replica, a replica that cannot stream while the
//! primary is up, a slow base backup, and reads returning to a replica.
//! Each test prints what it measured.
#![allow(clippy::print_stdout)] // the figures are part of what these tests show

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{
    Cluster, REPLICA, in_recovery, log_lines, measure, psql, replication, sql, streaming, wait_child, wait_for,
    write_wal,
};

const EXAMPLE: &str = include_str!("../examples/ha-postgres.toml");
/// Small, so that a few rounds of WAL outgrow it.
const WAL_KEEP: &str = "wal_keep_size = \"32m\"";
const WAL_KEEP_BYTES: u64 = 32 * 1024 * 1024;

/// The example with extra `[postgres]` keys.
fn with_postgres(keys: &[&str]) -> String {
    let anchor = "stop_grace_period = \"120s\"\n";
    assert!(EXAMPLE.contains(anchor));
    EXAMPLE.replace(anchor, &format!("{anchor}{}\n", keys.join("\n")))
}

fn report(title: &str, lines: &[String]) {
    println!("\n=== {title} ===");
    for l in lines {
        println!("  {l}");
    }
}

fn rows(port: u16) -> Result<String, String> {
    sql(port, "select count(*) from wal_filler")
}

/// The compiled healthcheck's interval and retries of a service.
fn check_timing(c: &Cluster, service: &str) -> (Duration, u32) {
    let hc = c.site.service(service).healthcheck.as_ref().expect("healthcheck");
    let secs = hc.interval.trim_end_matches('s').parse::<u64>().expect("an interval in seconds");
    (Duration::from_secs(secs), hc.retries)
}

#[test]
fn a_replica_down_longer_than_wal_keep_size_catches_up_through_its_slot() {
    let mut c = Cluster::start(&with_postgres(&[WAL_KEEP]));
    let mut figures = Vec::new();
    c.replica.stop();
    let written = write_wal(c.primary.port, 4 * WAL_KEEP_BYTES);
    figures.push(format!("replica stopped; {} MB of WAL written (wal_keep_size 32 MB)", written >> 20));

    // A marker the healthcheck could not fill (a full disk) stops nothing.
    let marker = c.replica.data.with_extension("hacompile-not-streaming");
    std::fs::write(&marker, "").expect("write");
    let restarted = Instant::now();
    c.restart_replica();
    let log = c.replica.log_text();
    assert!(!log.contains("syntax error"), "the entrypoint read the marker:\n{}", log_lines(&log, "syntax error"));
    assert!(!log.contains("copying the primary again"), "no new copy: the slot kept the WAL");
    let want = rows(c.primary.port).expect("rows");
    let caught_up = Duration::from_secs(60);
    let replica_port = c.replica.port;
    let log = c.replica.log.clone();
    let (t, _) = measure("the replica caught up", caught_up, || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !log.contains("has already been removed"),
            "the replica lost the WAL it needed:\n{}",
            log_lines(&log, "has already been removed")
        );
        Ok(rows(replica_port).is_ok_and(|n| n == want))
    });
    assert_eq!(rows(c.read_port).expect("through :read"), want, "reads through HAProxy see every row");
    figures.push(format!(
        "replica restarted: caught up {:?} after its restart ({t:?} after it accepted connections)",
        restarted.elapsed()
    ));

    wait_for("the replica streaming", Duration::from_secs(20), || {
        replication(c.primary.port) == format!("{REPLICA}|streaming")
    });
    let slot = sql(c.primary.port, "select slot_name || '|' || slot_type || '|' || active from pg_replication_slots")
        .expect("slots");
    assert_eq!(slot, "pg_replica_1|physical|true", "the replica's slot, in use");
    let used = sql(
        c.primary.port,
        "select count(*) from pg_replication_slots s join pg_stat_replication r on r.pid = s.active_pid \
         where r.application_name = 'pg-replica-1'",
    )
    .expect("slot user");
    assert_eq!(used, "1", "the slot is held by the replica's walsender");
    assert!(c.healthcheck(REPLICA).healthy());
    report("replica down past wal_keep_size, replication slot", &figures);
}

#[test]
fn a_replica_refuses_a_primary_from_another_cluster() {
    let mut c = Cluster::start(EXAMPLE);
    let mut figures = Vec::new();
    let (interval, retries) = check_timing(&c, REPLICA);
    sql(c.write_port, "create table origin (note text); insert into origin values ('the old cluster')").expect("write");
    wait_for("the row on the replica", Duration::from_secs(10), || {
        sql(c.replica.port, "select count(*) from origin").is_ok_and(|n| n == "1")
    });
    let old_id = sql(c.primary.port, "select system_identifier from pg_control_system()").expect("id");

    // The primary's volume is recreated (same service, same address) while
    // the replica could not be asked (a partition: see the next test for
    // when it can), the replica keeps running: the primary is up and the
    // replica cannot stream.
    c.recreate_primary_unasked();
    let new_id = sql(c.primary.port, "select system_identifier from pg_control_system()").expect("id");
    assert_ne!(old_id, new_id, "a new cluster");
    let detected = until_unhealthy_not_streaming(&c, "the replica's healthcheck unhealthy");
    figures.push(format!(
        "primary recreated: the replica's healthcheck unhealthy {detected:?} after the new primary answered \
         (swarm: unhealthy after {retries} failed checks {interval:?} apart, so within {:?})",
        interval * (retries + 1)
    ));

    // Restarted (swarm replaces the unhealthy task), it refuses to start.
    c.replica.stop();
    c.spawn_replica();
    let replica_port = c.replica.port;
    let start = Instant::now();
    let mut served = false;
    let mut status = None;
    while start.elapsed() < Duration::from_secs(30) && status.is_none() {
        served |= sql(replica_port, "select 1").is_ok();
        status = c.replica.wait_exit(Duration::from_millis(200));
    }
    let log = c.replica.log_text();
    let status = status.unwrap_or_else(|| {
        panic!("the replica still runs 30 s after its restart next to another cluster:\n{}", log_lines(&log, ""))
    });
    assert!(!status.success(), "it exits non-zero");
    assert!(!served, "it never served");
    let line = log_lines(&log, "refusing to start");
    assert!(line.contains(&new_id) && line.contains(&old_id), "says which clusters: {line}");
    figures.push(format!("restarted: exits with {status} after {:?}: {line}", start.elapsed()));
    report("primary from another cluster", &figures);
}

/// The primary's volume is lost (removed, recreated, or its task on a node
/// without it) while the replica holds the data: the primary's entrypoint
/// asks the replica and refuses to create a new, empty cluster, so no write
/// goes to an empty database; the replica keeps serving the data.
#[test]
fn a_primary_whose_volume_was_lost_refuses_a_new_cluster_while_a_replica_holds_the_data() {
    let mut c = Cluster::start(EXAMPLE);
    sql(c.write_port, "create table kept (n int); insert into kept select generate_series(1, 100)").expect("write");
    wait_for("the rows on the replica", Duration::from_secs(10), || {
        sql(c.replica.port, "select count(*) from kept").is_ok_and(|n| n == "100")
    });
    let id = sql(c.primary.port, "select system_identifier from pg_control_system()").expect("id");

    let start = Instant::now();
    let log = c.recreate_primary().expect_err("the primary refuses to start on an empty volume");
    let took = start.elapsed();
    let line = log_lines(&log, "refusing to create a new, empty cluster");
    assert!(line.contains(&id), "it names the replica's cluster: {log}");
    assert!(line.contains("manual failover"), "it says what to do: {log}");
    assert!(!log.contains("postgres_password") && !log.contains("replication_password"), "{log}");
    assert!(sql(c.write_port, "select 1").is_err(), "no primary behind the write port");
    assert_eq!(sql(c.read_port, "select count(*) from kept").as_deref(), Ok("100"), "reads go on, all rows");
    assert!(c.healthcheck(REPLICA).healthy(), "the replica stays healthy with its primary unreachable");
    report("primary volume lost", &[format!("the primary refused in {took:?}: {line}")]);

    // With the replica down too, nothing can be asked: a new cluster starts
    // (and the replica refuses it when it returns: the previous test).
    c.replica.stop();
    c.recreate_primary().expect("no replica answers: a first deploy");
    assert_ne!(sql(c.primary.port, "select system_identifier from pg_control_system()").expect("id"), id);
}

#[test]
fn a_replica_that_lost_its_wal_is_unhealthy_and_copies_the_primary_again() {
    // Without slots the primary keeps only wal_keep_size for a replica that is away.
    let spec = with_postgres(&[WAL_KEEP, "replication_slots = false"]);
    // Swarm's timing scaled down ten times: the compiled healthcheck runs
    // every `interval`, the task is replaced after `retries` failures and
    // `restart_policy.delay`, and the entrypoint copies again once the
    // replica has not streamed for HACOMPILE_RECOPY_AFTER (default 30 s).
    const SCALE: u32 = 10;
    let recopy_after = Duration::from_secs(30) / SCALE;
    let mut c = Cluster::start_with(
        &spec,
        BTreeMap::from([("HACOMPILE_RECOPY_AFTER".into(), recopy_after.as_secs().to_string())]),
    );
    let mut figures = Vec::new();
    let (interval, retries) = check_timing(&c, REPLICA);
    let policy = &c.site.service(REPLICA).deploy.as_ref().expect("deploy").restart_policy;
    let delay = Duration::from_secs(policy.delay.trim_end_matches('s').parse().expect("a delay in seconds"));
    let (interval, delay) = (interval / SCALE, delay / SCALE);

    c.replica.stop();
    let written = write_wal(c.primary.port, 4 * WAL_KEEP_BYTES);
    c.restart_replica();
    let started = Instant::now();
    wait_for("the replica to find its WAL gone", Duration::from_secs(20), || {
        c.replica.log_text().contains("has already been removed")
    });
    // The healthcheck, run as swarm runs it, until swarm would call it unhealthy.
    let mut failures = 0;
    let mut last = None;
    for _ in 0..60 {
        let h = c.healthcheck(REPLICA);
        failures = if h.healthy() { 0 } else { failures + 1 };
        last = Some(h);
        if failures == retries {
            break;
        }
        std::thread::sleep(interval);
    }
    let h = last.expect("checked");
    assert_eq!(failures, retries, "never unhealthy {retries} times in a row; last: {h:?}");
    assert!(h.output.contains("not streaming"), "says why: {}", h.output);
    let unhealthy = started.elapsed();
    figures.push(format!(
        "{} MB of WAL written while the replica was away (wal_keep_size 32 MB, no slot); restarted, it cannot \
         stream; unhealthy ({retries} failed checks, {interval:?} apart) after {unhealthy:?}",
        written >> 20
    ));

    // Swarm replaces the task after its restart delay.
    c.replica.stop();
    std::thread::sleep(delay);
    let restarted = Instant::now();
    c.restart_replica();
    let log = c.replica.log_text();
    assert!(
        log.contains("copying the primary again"),
        "the new task copies the primary (it had not streamed for {:?}, past HACOMPILE_RECOPY_AFTER={recopy_after:?})",
        unhealthy + delay
    );
    wait_for("the replica streaming again", Duration::from_secs(30), || {
        replication(c.primary.port) == format!("{REPLICA}|streaming")
    });
    let want = rows(c.primary.port).expect("rows");
    wait_for("every row through :read", Duration::from_secs(20), || rows(c.read_port).is_ok_and(|n| n == want));
    let h = c.healthcheck(REPLICA);
    assert!(h.healthy(), "{h:?}");
    assert!(!c.replica.data.with_extension("hacompile-not-streaming").exists(), "the marker is gone");
    figures
        .push(format!("the replaced task copied the primary and streams {:?} after it started", restarted.elapsed()));
    report("replica whose WAL is gone (no slot)", &figures);
}

#[test]
fn a_rotated_replication_password_makes_the_replica_unhealthy_until_it_has_the_new_one() {
    let mut c = Cluster::start(EXAMPLE);
    let mut figures = Vec::new();
    let new_password = "rotated:Pw\\2";
    sql(c.primary.port, &format!("alter role replicator password '{}'", new_password.replace('\'', "''")))
        .expect("rotate");
    // An established stream outlives a password change; its next connection does not.
    sql(c.primary.port, "select pg_terminate_backend(pid) from pg_stat_replication").expect("terminate");
    let detected = until_unhealthy_not_streaming(&c, "the replica's healthcheck unhealthy");
    assert!(c.replica.log_text().contains("password authentication failed"), "the cause, in the replica's log");
    assert_eq!(in_recovery(c.replica.port), Ok(true), "the replica itself still answers");
    figures.push(format!(
        "replication password rotated on the primary: replica's healthcheck unhealthy after {detected:?}"
    ));

    // Swarm replaces the task, which still has the old secret. Its volume
    // holds what a copy killed with an earlier task left: a staging
    // directory and a pid file whose number, in the new task's pid
    // namespace, belongs to a live process (here: this test's).
    c.replica.stop();
    let staging = c.replica.data.with_extension("hacompile-basebackup");
    std::fs::create_dir_all(staging.join("base")).expect("mkdir");
    std::fs::write(staging.with_extension("hacompile-basebackup.pid"), format!("{}\n", std::process::id()))
        .expect("write");
    support::cluster::chown_postgres(&staging);
    c.restart_replica();
    let detected = until_unhealthy_not_streaming(&c, "the replaced task's healthcheck unhealthy");
    figures.push(format!(
        "replaced with the old secret and a killed copy's leftovers on its volume: unhealthy after {detected:?}"
    ));

    // The secret is rotated too; the replaced task writes its pgpass from it.
    std::fs::write(c.site.secrets.join("replication_password"), format!("{new_password}\n")).expect("write");
    c.replica.stop();
    let restarted = Instant::now();
    c.restart_replica();
    wait_for("the replica streaming with the new password", Duration::from_secs(30), || streaming(c.primary.port) == 1);
    assert!(c.healthcheck(REPLICA).healthy());
    figures.push(format!("with the new secret: streaming {:?} after the restart", restarted.elapsed()));
    report("rotated replication password", &figures);
}

#[test]
fn a_base_backup_that_outlasts_start_period_is_healthy_and_not_restarted() {
    let spec = EXAMPLE
        .replace("[postgres.replication]", "[postgres.healthcheck]\nstart_period = \"10s\"\n\n[postgres.replication]");
    let mut c = Cluster::start(&spec);
    let mut figures = Vec::new();
    let hc = c.site.service(REPLICA).healthcheck.clone().expect("healthcheck");
    let start_period = Duration::from_secs(hc.start_period.trim_end_matches('s').parse().expect("seconds"));
    assert_eq!(start_period, Duration::from_secs(10));
    let bytes: u64 = sql(c.primary.port, "select sum(pg_database_size(oid))::bigint from pg_database")
        .expect("size")
        .parse()
        .expect("a number");

    // A replica on a new node: an empty volume, a throttled first copy.
    c.replica.stop();
    std::fs::remove_dir_all(&c.replica.data).expect("rm");
    let rate_kb = 2048;
    c.replica_env.insert("HACOMPILE_BASEBACKUP_MAX_RATE".into(), format!("{rate_kb}k"));
    c.spawn_replica();
    let started = Instant::now();
    let staging = c.replica.data.with_extension("hacompile-basebackup");
    let mut checks = 0;
    let mut while_copying = Vec::new();
    while started.elapsed() < Duration::from_secs(120) && sql(c.replica.port, "select 1").is_err() {
        assert!(c.replica.running(), "the entrypoint stopped:\n{}", log_lines(&c.replica.log_text(), ""));
        let copying = staging.is_dir();
        let h = c.healthcheck(REPLICA);
        let isready = Command::new(format!("{}/pg_isready", support::cluster::PG_BIN))
            .args(["-q", "-h", "127.0.0.1", "-p", &c.replica.port.to_string()])
            .status()
            .expect("pg_isready");
        // A copy in progress: the entrypoint's staging directory, before and after the check.
        if copying && staging.is_dir() {
            checks += 1;
            assert!(h.healthy(), "the compiled healthcheck during the copy, {:?} in: {h:?}", started.elapsed());
            while_copying.push(isready.success());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let copied = started.elapsed();
    assert!(copied > start_period, "the copy took {copied:?}, not past start_period {start_period:?}");
    assert!(checks >= 5, "only {checks} checks during the copy");
    assert!(while_copying.iter().all(|ready| !ready), "pg_isready would have called it unhealthy");
    wait_for("the new replica streaming", Duration::from_secs(30), || streaming(c.primary.port) == 1);
    let log = c.replica.log_text();
    assert_eq!(log.matches("base backup from").count(), 2, "the first copy and this one, each once:\n{log}");
    assert!(!log.contains("attempt"), "no retried copy:\n{log}");
    figures.push(format!(
        "{} MB at --max-rate {rate_kb} kB/s: copied in {copied:?} (start_period {start_period:?}); {checks} \
         healthchecks during the copy, all healthy (pg_isready: all not ready)",
        bytes >> 20
    ));
    report("slow base backup", &figures);
}

#[test]
fn reads_return_to_a_replica_that_comes_back_and_sessions_on_the_primary_are_cut() {
    let mut c = Cluster::start(EXAMPLE);
    let mut figures = Vec::new();
    assert_eq!(in_recovery(c.read_port), Ok(true), "reads start on the replica");
    c.replica.stop();
    let (t, _) = measure("reads on the primary", Duration::from_secs(40), || in_recovery(c.read_port).map(|r| !r));
    figures.push(format!("replica stopped: reads on the primary (backup) after {t:?}"));

    // A read session opened meanwhile lands on the primary and stays open.
    let mut session = psql(c.read_port)
        .env("PGAPPNAME", "held-read")
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("a read session");
    let mut stdin = session.stdin.take().expect("stdin");
    writeln!(stdin, "select 1;").expect("write");
    stdin.flush().expect("flush");
    let primary_port = c.primary.port;
    let on_primary = || {
        sql(primary_port, "select count(*) from pg_stat_activity where application_name = 'held-read'")
            .unwrap_or_default()
    };
    wait_for("the held session on the primary", Duration::from_secs(10), || on_primary() == "1");

    let restarted = Instant::now();
    c.restart_replica();
    let (t, failed) = measure("reads on the replica", Duration::from_secs(40), || in_recovery(c.read_port));
    figures.push(format!("replica back: new reads on the replica after {t:?}, {failed} failed"));
    let (cut, _) = measure("the held session on the primary cut", Duration::from_secs(20), || Ok(on_primary() == "0"));
    let cut_at = restarted.elapsed();
    let _ = writeln!(stdin, "select 2;");
    let _ = stdin.flush();
    assert_eq!(wait_child(&mut session, Duration::from_secs(10)), Some(false), "the held session was cut");
    figures.push(format!(
        "the read session held on the primary was cut {cut_at:?} after the replica's restart \
         ({cut:?} after new reads reached the replica)"
    ));
    report("reads return to the replica", &figures);
}

/// Polls the replica's compiled healthcheck until it reports unhealthy
/// (bounded), and checks it says why; the time it took.
fn until_unhealthy_not_streaming(c: &Cluster, what: &str) -> Duration {
    let mut last = None;
    let (detected, _) = measure(what, Duration::from_secs(30), || {
        let h = c.healthcheck(REPLICA);
        let unhealthy = !h.healthy();
        last = Some(h);
        Ok(unhealthy)
    });
    let h = last.expect("checked");
    assert!(h.output.contains("not streaming"), "says why: {}", h.output);
    detected
}

/// A replica's answer as a PostgreSQL server would give it, from a fake on
/// loopback (a real server cannot be made to hang this way on demand).
#[derive(Clone, Copy)]
enum Answer {
    /// FATAL 57P03 at startup, as a replica that is starting up answers.
    StartingUp,
    /// Authentication ok, then the IDENTIFY_SYSTEM query is never answered.
    Hang,
}

/// Serves `answer` on a loopback port to every connection, for a minute.
fn fake_replica(answer: Answer) -> u16 {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(32) {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
                let read_message = |conn: &mut std::net::TcpStream| -> Option<Vec<u8>> {
                    let mut len = [0u8; 4];
                    conn.read_exact(&mut len).ok()?;
                    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4).min(1 << 16)];
                    conn.read_exact(&mut body).ok()?;
                    Some(body)
                };
                // SSL and GSS encryption requests are refused with `N`;
                // then comes the startup message.
                loop {
                    let Some(body) = read_message(&mut conn) else { return };
                    if body.len() == 4
                        && matches!(u32::from_be_bytes(body[..4].try_into().expect("4")), 80877103 | 80877104)
                    {
                        let _ = conn.write_all(b"N");
                        continue;
                    }
                    break;
                }
                match answer {
                    Answer::StartingUp => {
                        let mut fields = Vec::new();
                        for (k, v) in [
                            (b'S', "FATAL"),
                            (b'V', "FATAL"),
                            (b'C', "57P03"),
                            (b'M', "the database system is starting up"),
                        ] {
                            fields.push(k);
                            fields.extend_from_slice(v.as_bytes());
                            fields.push(0);
                        }
                        fields.push(0);
                        let mut msg = vec![b'E'];
                        msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                        msg.extend_from_slice(&fields);
                        let _ = conn.write_all(&msg);
                    }
                    Answer::Hang => {
                        let _ = conn.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0, b'Z', 0, 0, 0, 5, b'I']);
                        let mut sink = [0u8; 1024];
                        while conn.read(&mut sink).is_ok_and(|n| n > 0) {}
                    }
                }
            });
        }
    });
    port
}

/// Runs the emitted primary entrypoint on an empty data directory against
/// `replicas`, as the postgres user, `touch STARTED` in place of the
/// image's entrypoint. A hang guard kills it after 3 minutes.
fn primary_entrypoint(replicas: &str, extra: &[(&str, &str)]) -> (bool, std::process::Output) {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let password = dir.path().join("replication_password");
    std::fs::write(&password, "s3cr:et\\pw\n").expect("w");
    support::cluster::chown_postgres(dir.path());
    let started = dir.path().join("STARTED");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/compile/scripts/pg-primary-entrypoint.sh");
    let mut cmd = support::cluster::as_postgres("timeout");
    cmd.args(["180", "bash", script, "touch"])
        .arg(&started)
        .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", support::cluster::PG_BIN))
        .env("PGDATA", &data)
        .env("HACOMPILE_REPLICAS", replicas)
        .env("HACOMPILE_REPLICATION_USER", "replicator")
        .env("HACOMPILE_REPLICATION_PASSWORD_FILE", &password)
        .envs(extra.iter().copied());
    let out = cmd.output().expect("the entrypoint runs");
    assert_ne!(out.status.code(), Some(124), "the entrypoint hung: {}", String::from_utf8_lossy(&out.stderr));
    (started.exists(), out)
}

/// A replica that answers as a PostgreSQL server (so it holds a cluster)
/// but not the question (starting up, or hung after authentication) does
/// not let an empty primary start, and does not hold it for ever; one that
/// cannot be reached does not stop a first deploy.
#[test]
fn a_replica_that_answers_but_not_the_question_keeps_an_empty_primary_from_starting_in_bounded_time() {
    let fast = [("HACOMPILE_ASK_ATTEMPTS", "2"), ("HACOMPILE_ASK_TIMEOUT", "6")];
    for answer in [Answer::StartingUp, Answer::Hang] {
        let port = fake_replica(answer);
        let (started, out) = primary_entrypoint(&format!("127.0.0.1:{port}"), &fast);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!started && !out.status.success(), "an empty primary started beside a replica that answers: {log}");
        assert!(log.contains("refusing to create a new, empty cluster"), "{log}");
        assert!(!log.contains("s3cr"), "the password is not shown: {log}");
        println!("{log}");
    }
    // Nothing listens there: a first deploy goes on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (started, out) = primary_entrypoint(&format!("127.0.0.1:{closed}"), &fast);
    assert!(started, "{}", String::from_utf8_lossy(&out.stderr));
}
