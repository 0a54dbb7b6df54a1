//! Backups on real PostgreSQL 15 and pgBackRest 2.45 (loopback), run
//! through the compiled stack: the servers archive with the compiled
//! `archive_command` through the emitted wrapper and pgbackrest.conf (only
//! paths, socket and port localized), the emitted scheduler takes the full
//! backup, and the emitted restore mode brings a dropped table back to a
//! point in time in a fresh data directory. A replica down past
//! `wal_keep_size`, with no slot to hold WAL for it, catches up from the
//! archive through the compiled `restore_command`.
#![allow(clippy::print_stdout)] // the figures are part of what these tests show

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{Cluster, PG_BIN, PRIMARY, chown_postgres, log_lines, sql, wait_for, write_wal};
use support::text;

const EXAMPLE: &str = include_str!("../examples/ha-postgres-backup.toml");

/// The backup example with a local repository volume (no NFS on loopback),
/// a small `wal_keep_size` and no replication slots, so only the archive
/// can bring back a replica that fell behind.
fn spec() -> String {
    let anchor = "stop_grace_period = \"120s\"\n";
    assert!(EXAMPLE.contains(anchor));
    let nfs = "nfs = { address = \"10.0.0.5\", export = \"/export/pgbackrest\" }\n";
    assert!(EXAMPLE.contains(nfs));
    EXAMPLE.replace(anchor, &format!("{anchor}wal_keep_size = \"32m\"\nreplication_slots = false\n")).replace(nfs, "")
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}:\n{}{}", text(&o.stdout), text(&o.stderr));
    o
}

/// Waits until the primary's archiver has archived the segment holding the
/// current WAL position (after a switch). Failures before the scheduler's
/// first run created the stanza are retried by PostgreSQL, so only the end
/// state counts.
fn wait_archived(c: &Cluster) {
    let port = c.primary.port;
    let segment = sql(port, "select pg_walfile_name(pg_current_wal_lsn())").expect("segment");
    sql(port, "select pg_switch_wal()").expect("switch");
    let start = Instant::now();
    loop {
        let last = sql(port, "select coalesce(last_archived_wal, '') from pg_stat_archiver").unwrap_or_default();
        if last.len() == 24 && last.as_str() >= segment.as_str() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{segment} not archived in 60 s:\n{}",
            log_lines(&c.primary.log_text(), "archive")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A server this test started, stopped (fast shutdown) however the test ends.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

#[test]
fn a_dropped_table_comes_back_to_a_point_in_time_in_a_fresh_data_directory() {
    let c = Cluster::start(&spec());
    let port = c.primary.port;
    let mut figures = Vec::new();

    // The scheduler, one round: no backup recorded yet, so a full one is due.
    let started = Instant::now();
    let sched = c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]);
    ok(sched, "one round of the scheduler");
    figures.push(format!("first full backup by the scheduler: {:.1} s", started.elapsed().as_secs_f64()));
    let info = ok(c.pgbackrest(PRIMARY, &["info"], &[]), "pgbackrest info");
    let info = text(&info.stdout);
    assert!(info.contains("full backup:"), "a full backup is in the repository:\n{info}");
    assert!(info.contains("cipher: aes-256-cbc"), "the repository is encrypted:\n{info}");
    // Recorded: the next round finds nothing due.
    let again = ok(c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]), "second round");
    assert!(!text(&again.stderr).contains("starting a"), "nothing due after the recorded backup");
    // The replica's scheduler never backs up.
    let on_replica = ok(
        c.pgbackrest(
            support::cluster::REPLICA,
            &["scheduler"],
            &[("HACOMPILE_BACKUP_ROUNDS", "1"), ("HACOMPILE_BACKUP_STATE_DIR", "/tmp/hacompile-replica-state")],
        ),
        "the replica's scheduler",
    );
    assert!(!text(&on_replica.stderr).contains("starting a"), "a replica takes no backup");

    // Rows committed before the recorded time, rows after, then the mistake.
    sql(port, "create table orders (id int primary key, note text)").expect("create");
    sql(port, "insert into orders select g, 'before' from generate_series(1, 100) g").expect("insert");
    std::thread::sleep(Duration::from_millis(1100));
    let at = sql(port, "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00')")
        .expect("timestamp");
    std::thread::sleep(Duration::from_millis(1100));
    sql(port, "insert into orders select g, 'after' from generate_series(101, 150) g").expect("insert");
    sql(port, "drop table orders").expect("drop");
    wait_archived(&c);
    assert!(sql(port, "select count(*) from orders").is_err(), "the table is gone on the primary");

    // A non-empty target is refused, whatever it holds.
    let occupied = c.site.root.join("occupied");
    std::fs::create_dir_all(&occupied).expect("mkdir");
    std::fs::write(occupied.join("PG_VERSION"), "15\n").expect("write");
    chown_postgres(&occupied);
    let refused = c.pgbackrest(PRIMARY, &["restore-into", occupied.to_str().expect("utf-8"), "time", &at], &[]);
    assert!(!refused.status.success(), "a restore over data must fail");
    assert!(text(&refused.stderr).contains("not empty"), "{}", text(&refused.stderr));
    assert_eq!(std::fs::read_to_string(occupied.join("PG_VERSION")).expect("kept"), "15\n");

    // Restore to the recorded time into a fresh directory.
    let target = c.site.root.join("restored");
    std::fs::create_dir_all(&target).expect("mkdir");
    chown_postgres(&target);
    let data = target.join("pgdata");
    let started = Instant::now();
    ok(c.pgbackrest(PRIMARY, &["restore-into", data.to_str().expect("utf-8"), "time", &at], &[]), "restore-into");
    figures.push(format!("restore of the backup: {:.1} s", started.elapsed().as_secs_f64()));

    // Start it as the service would (its compiled settings, restore_command
    // through the wrapper), archiving off: a restored copy never writes into
    // the production repository.
    let restored_port = support::registry::free_port();
    let sock = target.join("sock");
    std::fs::create_dir_all(&sock).expect("mkdir");
    chown_postgres(&target);
    let mut env = c.site.env(&c.primary, port);
    env.insert("PGBACKREST_PG1_PATH".into(), data.to_str().expect("utf-8").into());
    let log = std::fs::File::create(target.join("postgres.log")).expect("log");
    chown_postgres(&target);
    let server = Command::new("setpriv")
        .args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
        .arg(format!("{PG_BIN}/postgres"))
        .args(c.site.settings(PRIMARY))
        .args(["-D", data.to_str().expect("utf-8"), "-p", &restored_port.to_string()])
        .args(["-k", sock.to_str().expect("utf-8"), "-c", "listen_addresses=127.0.0.1", "-c", "archive_mode=off"])
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres starts");
    let mut server = Stopped(server);
    let started = Instant::now();
    wait_for("the restored server to reach the target and promote", Duration::from_secs(120), || {
        assert!(server.0.try_wait().ok().flatten().is_none(), "the restored server exited");
        sql(restored_port, "select pg_is_in_recovery()").is_ok_and(|r| r == "f")
    });
    figures.push(format!("replay to the target and promotion: {:.1} s", started.elapsed().as_secs_f64()));
    let rows = sql(
        restored_port,
        "select count(*) || '|' || max(id) || '|' || count(*) filter (where note = 'after') from orders",
    );
    drop(server);
    let plog = std::fs::read_to_string(target.join("postgres.log")).unwrap_or_default();
    let rows = rows.unwrap_or_else(|e| panic!("{e}\n{}", log_lines(&plog, "")));
    assert_eq!(rows, "100|100|0", "exactly the rows committed before {at}");
    assert!(plog.contains("recovery stopping before commit"), "recovery stopped at the target:\n{plog}");

    println!("\n=== point-in-time restore (posix repository, encrypted) ===");
    for f in figures {
        println!("  {f}");
    }
}

#[test]
fn a_replica_down_past_wal_keep_size_catches_up_from_the_archive() {
    let mut c = Cluster::start(&spec());
    let port = c.primary.port;
    // A base backup and the stanza first, as the scheduler makes them.
    ok(c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]), "the first backup");
    c.replica.stop();
    let written = write_wal(port, 4 * 32 * 1024 * 1024);
    wait_archived(&c);
    let want = sql(port, "select count(*) from wal_filler").expect("rows");
    let started = Instant::now();
    c.restart_replica();
    let replica_port = c.replica.port;
    wait_for("the replica to have every row", Duration::from_secs(120), || {
        sql(replica_port, "select count(*) from wal_filler").is_ok_and(|n| n == want)
    });
    let took = started.elapsed();
    let log = c.replica.log_text();
    assert!(
        log.contains("from archive"),
        "the replica replayed archived WAL (restored log file ... from archive):\n{}",
        log_lines(&log, "")
    );
    assert!(!log.contains("copying the primary again"), "no new copy of the primary");
    println!("\n=== replica catch-up from the archive ===");
    println!("  {} MB of WAL written while it was down (wal_keep_size 32 MB, no slot)", written >> 20);
    println!("  caught up in {:.1} s", took.as_secs_f64());
}

/// `[backup]` mistakes are refused with a code and a span on what is wrong.
#[test]
fn backup_mistakes_are_refused_where_they_are_written() {
    let refused = |from: &str, to: &str, code: &str, at: &str| {
        assert!(EXAMPLE.contains(from), "{from}");
        let text = EXAMPLE.replace(from, to);
        let source = hacompile_spec::SourceFile::new("spec.toml", text.clone());
        let errors = hacompile_spec::load(&source).expect_err(to);
        let hit = errors
            .diagnostics
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{to}: no {code} in {:?}", errors.diagnostics));
        assert!(text[hit.span.clone()].contains(at), "{to}: span {:?} not at `{at}`", hit.span);
    };
    refused("cipher_pass = { secret = \"backup_cipher_pass\" }\n", "", "spec::backup", "[backup]");
    refused("volume = \"pgbackrest-repo\"", "volume = \"pg-primary-data\"", "spec::shared-volume", "pg-primary-data");
    refused("full = \"sun 01:00\"", "full = \"sunday 01:00\"", "spec::backup", "sunday");
    refused("retention_full = 2", "retention_full = 0", "spec::backup", "0");
    refused("type = \"posix\"", "type = \"s3\"", "spec::backup", "pgbackrest-repo"); // `volume` is not for s3
    refused("compress_level = 3", "compress_level = 22", "spec::backup", "22");
    // Unencrypted is allowed only when said.
    let text = EXAMPLE.replace("cipher_pass = { secret = \"backup_cipher_pass\" }\n", "encrypt = false\n");
    hacompile_spec::load(&hacompile_spec::SourceFile::new("spec.toml", text)).expect("encrypt = false is valid");
}

/// A stanza-create killed mid-write (the container's SIGKILL, a lost node)
/// leaves pgBackRest's temp file in a stanza directory without its info
/// file: stanza-create then refused the directory for ever ("archive
/// directory not empty"), so no backup was ever taken and nothing archived.
/// Found on the swarm (tests/swarm/run.sh kills the primary during its first
/// backup). The scheduler clears such a leftover, and only that.
#[test]
fn a_stanza_create_killed_mid_write_does_not_wedge_the_repository() {
    let c = Cluster::start(&spec());
    let stanza_dir = c.site.root.join("repo/archive/ha_db");
    std::fs::create_dir_all(&stanza_dir).expect("mkdir");
    std::fs::write(stanza_dir.join("archive.info.pgbackrest.tmp"), "[backrest]\nbackrest-format=5\n").expect("write");
    chown_postgres(&c.site.root.join("repo"));
    let sched = c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]);
    let log = format!("{}{}", text(&sched.stdout), text(&sched.stderr));
    assert!(log.contains("full backup complete"), "the first full backup despite the leftover:\n{log}");
    assert!(log.contains("archive.info.pgbackrest.tmp"), "the removal is logged:\n{log}");
    let info = text(&ok(c.pgbackrest(PRIMARY, &["info"], &[]), "pgbackrest info").stdout);
    assert!(info.contains("full backup:"), "{info}");
    assert!(stanza_dir.join("archive.info").exists(), "the stanza was created");
}
