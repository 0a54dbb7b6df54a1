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

use support::cluster::{Cluster, PG_BIN, PRIMARY, SUPERUSER, chown_postgres, log_lines, sql, wait_for, write_wal};
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

/// 100 rows committed before a recorded time, 50 after, then `DROP TABLE`,
/// archived; returns the time.
fn the_mistake(c: &Cluster) -> String {
    let port = c.primary.port;
    sql(port, "create table orders (id int primary key, note text)").expect("create");
    sql(port, "insert into orders select g, 'before' from generate_series(1, 100) g").expect("insert");
    std::thread::sleep(Duration::from_millis(1100));
    let at = sql(port, "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00')")
        .expect("timestamp");
    std::thread::sleep(Duration::from_millis(1100));
    sql(port, "insert into orders select g, 'after' from generate_series(101, 150) g").expect("insert");
    sql(port, "drop table orders").expect("drop");
    wait_archived(c);
    assert!(sql(port, "select count(*) from orders").is_err(), "the table is gone on the primary");
    at
}

/// `restore-into` a fresh directory to `at`, a server started on it as the
/// service would start it, and exactly the 100 rows committed before `at`.
/// Returns what the wrapper and the server printed.
fn restore_to(c: &Cluster, at: &str, figures: &mut Vec<String>) -> String {
    let port = c.primary.port;
    // Restore to the recorded time into a fresh directory.
    let target = c.site.root.join("restored");
    std::fs::create_dir_all(&target).expect("mkdir");
    chown_postgres(&target);
    let data = target.join("pgdata");
    let started = Instant::now();
    let restored =
        ok(c.pgbackrest(PRIMARY, &["restore-into", data.to_str().expect("utf-8"), "time", at], &[]), "restore-into");
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

    format!("{}{}{plog}", text(&restored.stdout), text(&restored.stderr))
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

    let at = the_mistake(&c);

    // A non-empty target is refused, whatever it holds.
    let occupied = c.site.root.join("occupied");
    std::fs::create_dir_all(&occupied).expect("mkdir");
    std::fs::write(occupied.join("PG_VERSION"), "15\n").expect("write");
    chown_postgres(&occupied);
    let refused = c.pgbackrest(PRIMARY, &["restore-into", occupied.to_str().expect("utf-8"), "time", &at], &[]);
    assert!(!refused.status.success(), "a restore over data must fail");
    assert!(text(&refused.stderr).contains("not empty"), "{}", text(&refused.stderr));
    assert_eq!(std::fs::read_to_string(occupied.join("PG_VERSION")).expect("kept"), "15\n");

    let _ = restore_to(&c, &at, &mut figures);

    println!("\n=== point-in-time restore (posix repository, encrypted) ===");
    for f in figures {
        println!("  {f}");
    }
}

/// Issue #14: a new cluster archives from its first WAL switch, before the
/// scheduler's first run: the archive command creates the stanza itself
/// when the repository has none, so no attempt fails and no WAL piles up.
#[test]
fn the_first_wal_is_archived_before_any_backup_without_a_failure() {
    let c = Cluster::start(&spec());
    let port = c.primary.port;
    // No scheduler run: no backup, and the stanza only if the archiver made
    // it already (the replica's base backup switched WAL).
    let info = text(&ok(c.pgbackrest(PRIMARY, &["info"], &[]), "pgbackrest info").stdout);
    assert!(!info.contains("full backup:"), "no backup before the scheduler runs:\n{info}");
    let (segment, archived, took) = write_switch_and_wait(port, "first_rows");
    let (last, failed) = archiver(port);
    assert!(
        archived,
        "{segment} not archived in 60 s (last archived {last:?}, {failed} failures):\n{}",
        log_lines(&c.primary.log_text(), "")
    );
    assert_eq!(failed, 0, "no archive attempt failed:\n{}", log_lines(&c.primary.log_text(), ""));
    let info = text(&ok(c.pgbackrest(PRIMARY, &["info"], &[]), "pgbackrest info").stdout);
    assert!(info.contains("wal archive min/max"), "the archive holds WAL:\n{info}");
    let log = c.primary.log_text();
    assert!(log.contains("creating it"), "the wrapper said it created the stanza:\n{}", log_lines(&log, ""));
    assert!(!log.contains("ERROR"), "no pgBackRest error in the server's log:\n{}", log_lines(&log, "ERROR"));
    // Then the scheduler's first run finds the stanza and backs up.
    ok(c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]), "the first backup");
    let info = text(&ok(c.pgbackrest(PRIMARY, &["info"], &[]), "pgbackrest info").stdout);
    assert!(info.contains("full backup:"), "{info}");
    println!("\n=== first archive before any backup (posix repository, encrypted) ===");
    println!("  a WAL switch to archived, no backup taken yet: {:.1} s", took.as_secs_f64());
    println!("  pg_stat_archiver.failed_count: {failed}");
}

/// Two primaries of one cluster (a split brain: the replica promoted while
/// the primary runs) push their first WAL into an empty encrypted
/// repository at the same moment, so both archive commands create the
/// stanza: every segment either pushed is then readable from the archive,
/// byte for byte (a push under an overwritten encryption key would not
/// decrypt), and each server's next push succeeds. Several rounds, the
/// second server starting later each round, each on a fresh repository.
#[test]
fn two_primaries_racing_to_create_the_stanza_lose_no_wal() {
    let c = Cluster::start(&spec());
    let report = race(&c, |round| {
        let repo = c.site.root.join(format!("race-repo-{round}"));
        std::fs::create_dir_all(&repo).expect("mkdir");
        chown_postgres(&repo);
        repo.to_str().expect("utf-8").to_owned()
    });
    println!("\n=== two primaries racing to create the stanza (posix, encrypted) ===\n{report}");
}

/// The same race on the S3 repository, where creating the stanza takes
/// several requests, each round under a new prefix of the bucket.
#[test]
fn two_primaries_racing_on_s3_lose_no_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s3 = support::s3::S3::start(dir.path());
    s3.create_bucket(BUCKET);
    let c = Cluster::start_with_secrets(&s3_spec(&s3.endpoint()), &[("backup_s3_ca", &s3.ca)]);
    let report = race(&c, |round| format!("/race-{round}"));
    println!("\n=== two primaries racing to create the stanza (S3, encrypted) ===\n{report}");
}

/// Promotes the replica (the primary still runs), then rounds of both
/// servers' first pushes at once into the empty repository `repo(round)`
/// (`repo1-path`); checks every segment comes back; returns the figures.
fn race(c: &Cluster, repo: impl Fn(usize) -> String) -> String {
    let replica = c.replica.port;
    sql(replica, "select pg_promote(true, 60)").expect("promote");
    let mut pushed = Vec::new();
    let keep = c.site.root.join("race");
    std::fs::create_dir_all(&keep).expect("mkdir");
    chown_postgres(&keep);
    // Two finished segments from each server, copied before the server recycles them.
    for (service, port, pg_wal) in [
        (PRIMARY, c.primary.port, c.primary.data.join("pg_wal")),
        (support::cluster::REPLICA, replica, c.replica.data.join("pg_wal")),
    ] {
        for _ in 0..2 {
            sql(port, "create table if not exists t as select 1 as x").expect("write");
            let segment = sql(port, "select pg_walfile_name(pg_current_wal_lsn())").expect("segment");
            sql(port, "select pg_switch_wal()").expect("switch");
            std::fs::copy(pg_wal.join(&segment), keep.join(&segment)).expect("copy the segment");
            pushed.push((service, segment));
        }
    }
    chown_postgres(&keep);
    let path = |segment: &str| keep.join(segment).to_str().expect("utf-8").to_owned();
    let mut took = Vec::new();
    for (round, lag_ms) in [0u64, 50, 150, 300].into_iter().enumerate() {
        let repo = repo(round);
        let env = [("PGBACKREST_REPO1_PATH", repo.as_str())];
        let (a, b) = (&pushed[0], &pushed[2]);
        let started = Instant::now();
        let (first, second) = std::thread::scope(|scope| {
            let first = scope.spawn(|| c.pgbackrest_command(a.0, &["archive-push", &path(&a.1)], &env).output());
            std::thread::sleep(Duration::from_millis(lag_ms));
            let second = c.pgbackrest_command(b.0, &["archive-push", &path(&b.1)], &env).output().expect("runs");
            (first.join().expect("thread").expect("runs"), second)
        });
        let created = [&first, &second].iter().filter(|o| text(&o.stderr).contains("creating it")).count();
        took.push((started.elapsed(), created));
        // A loser may fail (the other's files half written); PostgreSQL
        // pushes the segment again: so does this test, once.
        for (who, out) in [(a, first), (b, second)] {
            if !out.status.success() {
                ok(c.pgbackrest(who.0, &["archive-push", &path(&who.1)], &env), "the retried push");
            }
        }
        // The next segments of both servers.
        for who in [&pushed[1], &pushed[3]] {
            ok(c.pgbackrest(who.0, &["archive-push", &path(&who.1)], &env), "a later push");
        }
        for who in &pushed {
            let got = keep.join(format!("got-{round}-{}", who.1));
            ok(
                c.pgbackrest(who.0, &["archive-get", &who.1, got.to_str().expect("utf-8")], &env),
                &format!("round {round}: archive-get {}", who.1),
            );
            assert!(
                std::fs::read(&got).expect("fetched") == std::fs::read(keep.join(&who.1)).expect("kept"),
                "round {round}: {} comes back byte for byte",
                who.1
            );
        }
    }
    let lines: Vec<String> = took
        .iter()
        .enumerate()
        .map(|(round, (t, created))| {
            format!(
                "  round {round}: {created} of 2 servers found no stanza and ran stanza-create; both first pushes done in {:.1} s; 4 segments read back intact",
                t.as_secs_f64()
            )
        })
        .collect();
    lines.join("\n")
}

/// `last_archived_wal` and `failed_count` of the server's archiver.
fn archiver(port: u16) -> (String, u64) {
    let row = sql(port, "select coalesce(last_archived_wal, '') || '|' || failed_count from pg_stat_archiver")
        .expect("pg_stat_archiver");
    let (last, failed) = row.split_once('|').expect("two columns");
    (last.to_owned(), failed.parse().expect("a count"))
}

/// Whether `segment` (or a later one) is archived within `limit`.
/// Writes `table` (1,000 rows), switches WAL and waits (60 s at most) until
/// the segment that held them is archived: the segment, whether it was, and
/// how long from the switch.
fn write_switch_and_wait(port: u16, table: &str) -> (String, bool, Duration) {
    sql(port, &format!("create table {table} as select g from generate_series(1, 1000) g")).expect("write");
    let segment = sql(port, "select pg_walfile_name(pg_current_wal_lsn())").expect("segment");
    let started = Instant::now();
    sql(port, "select pg_switch_wal()").expect("switch");
    let archived = wait_for_archived(port, &segment, Duration::from_secs(60));
    (segment, archived, started.elapsed())
}

fn wait_for_archived(port: u16, segment: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let (last, _) = archiver(port);
        if last.len() == 24 && last.as_str() >= segment {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
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

const BUCKET: &str = "ha-db-backups";

/// The backup example with an S3 repository at `endpoint`: path-style URIs,
/// the keys and the server's private CA from Docker secrets.
fn s3_spec(endpoint: &str) -> String {
    let posix = "[backup.repository]\ntype = \"posix\"\nvolume = \"pgbackrest-repo\"\npath = \"/var/lib/pgbackrest\"\n\
                 nfs = { address = \"10.0.0.5\", export = \"/export/pgbackrest\" }\n";
    assert!(EXAMPLE.contains(posix));
    let s3 = format!(
        "[backup.repository]\ntype = \"s3\"\nbucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\nregion = \"eu-west-1\"\n\
         uri_style = \"path\"\nkey = {{ secret = \"backup_s3_key\" }}\nkey_secret = {{ secret = \"backup_s3_key_secret\" }}\n\
         ca = {{ secret = \"backup_s3_ca\" }}\n"
    );
    let declared = "[secrets.backup_cipher_pass]\n";
    assert!(EXAMPLE.contains(declared));
    EXAMPLE.replace(posix, &s3).replace(
        declared,
        &format!("{declared}[secrets.backup_s3_key]\n[secrets.backup_s3_key_secret]\n[secrets.backup_s3_ca]\n"),
    )
}

/// The environment of a process, as /proc shows it to root.
fn environ(pid: u32) -> String {
    text(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
}

/// The postmaster of the data directory and its children (the archiver among them).
fn server_processes(data: &std::path::Path) -> Vec<u32> {
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid");
    let postmaster: u32 = pid_file.lines().next().and_then(|l| l.trim().parse().ok()).expect("a pid");
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// The S3 repository against a real S3-compatible server on loopback (moto
/// behind HAProxy's TLS, a CA made here): pgBackRest verifies the server's
/// certificate against the CA given as `repository.ca`, archives from the
/// first WAL switch, the scheduler takes the full backup into the bucket,
/// and a dropped table comes back to a point in time. The keys are in no
/// file the build wrote, no log or output of what it emitted, and not in
/// the servers' environment.
#[test]
fn an_s3_repository_on_a_tls_server_with_a_private_ca_restores_a_dropped_table() {
    use support::cluster::{S3_KEY, S3_KEY_SECRET};
    let dir = tempfile::tempdir().expect("temp dir");
    let s3 = support::s3::S3::start(dir.path());
    s3.create_bucket(BUCKET);
    let c = Cluster::start_with_secrets(&s3_spec(&s3.endpoint()), &[("backup_s3_ca", &s3.ca)]);
    let port = c.primary.port;
    let mut figures = Vec::new();
    // What the emitted wrapper and the servers print, searched for the keys at the end.
    let mut logs = Vec::new();
    let printed = |o: &Output| format!("{}{}", text(&o.stdout), text(&o.stderr));

    let conf = std::fs::read_to_string(c.site.out.join("pgbackrest.conf")).expect("pgbackrest.conf");
    for line in [
        "repo1-type=s3",
        &format!("repo1-s3-bucket={BUCKET}"),
        &format!("repo1-s3-endpoint={}", s3.endpoint()),
        "repo1-s3-uri-style=path",
        "repo1-storage-verify-tls=y",
        "repo1-storage-ca-file=/run/secrets/backup_s3_ca",
    ] {
        assert!(conf.lines().any(|l| l == line), "pgbackrest.conf has {line}:\n{conf}");
    }

    // The certificate is verified: with the system CAs instead of the
    // spec's, pgBackRest refuses the server.
    let untrusted =
        c.pgbackrest(PRIMARY, &["info"], &[("PGBACKREST_REPO1_STORAGE_CA_FILE", "/etc/ssl/certs/ca-certificates.crt")]);
    let untrusted = format!("{}{}", text(&untrusted.stdout), text(&untrusted.stderr));
    assert!(untrusted.contains("unable to verify certificate"), "the server's certificate is checked:\n{untrusted}");

    // Archiving works from the first WAL switch, before any backup.
    let (segment, archived, took) = write_switch_and_wait(port, "first_rows");
    let (last, failed) = archiver(port);
    assert!(archived, "{segment} not archived in 60 s (last {last:?}):\n{}\n{}", c.primary.log_text(), s3.log());
    assert_eq!(failed, 0, "no archive attempt failed:\n{}", log_lines(&c.primary.log_text(), ""));
    figures.push(format!("a WAL switch to archived in S3: {:.1} s", took.as_secs_f64()));

    // The full backup by one round of the scheduler.
    let started = Instant::now();
    let sched = ok(c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]), "the scheduler");
    figures.push(format!("first full backup by the scheduler: {:.1} s", started.elapsed().as_secs_f64()));
    let info = ok(c.pgbackrest(PRIMARY, &["info"], &[]), "pgbackrest info");
    let info_text = text(&info.stdout);
    assert!(info_text.contains("full backup:"), "a full backup is in the bucket:\n{info_text}");
    assert!(info_text.contains("cipher: aes-256-cbc"), "{info_text}");
    logs.extend([printed(&sched), printed(&info)]);

    let at = the_mistake(&c);
    logs.push(restore_to(&c, &at, &mut figures));
    let (objects, bytes) = s3.usage(BUCKET, "/pgbackrest");
    figures.push(format!("in the bucket: {objects} objects, {:.1} MB", bytes as f64 / 1e6));

    // The keys: in no file the build wrote, ...
    let mut files = vec![c.site.out.clone()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).expect("readable").map(|e| e.expect("entry").path()));
        } else {
            let body = text(&std::fs::read(&p).expect("readable"));
            for key in [S3_KEY, S3_KEY_SECRET] {
                assert!(!body.contains(key), "an S3 key is in {}", p.display());
            }
        }
    }
    // ... no output of the wrapper or log of the servers, ...
    logs.extend([c.primary.log_text(), c.replica.log_text()]);
    for log in &logs {
        for key in [S3_KEY, S3_KEY_SECRET] {
            assert!(!log.contains(key), "an S3 key is in a log:\n{}", log.replace(key, "<the key>"));
        }
    }
    // ... and not in the servers' environment: only the secrets' paths.
    for data in [&c.primary.data, &c.replica.data] {
        for pid in server_processes(data) {
            let env = environ(pid);
            for key in [S3_KEY, S3_KEY_SECRET] {
                assert!(!env.contains(key), "an S3 key is in the environment of process {pid}");
            }
        }
    }
    let primary_env = environ(server_processes(&c.primary.data)[0]);
    assert!(primary_env.contains("HACOMPILE_BACKUP_S3_KEY_FILE="), "the server has the key's path, not the key");

    println!("\n=== S3 repository (moto {} behind HAProxy TLS, private CA, encrypted) ===", support::s3::MOTO_VERSION);
    for f in figures {
        println!("  {f}");
    }
}

/// `[backup]` mistakes are refused with a code and a span on what is wrong.
#[test]
fn backup_mistakes_are_refused_where_they_are_written() {
    let refused_in = |base: &str, from: &str, to: &str, code: &str, at: &str| {
        assert!(base.contains(from), "{from}");
        let text = base.replace(from, to);
        let source = hacompile_spec::SourceFile::new("spec.toml", text.clone());
        let errors = hacompile_spec::load(&source).expect_err(to);
        let hit = errors
            .diagnostics
            .iter()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{to}: no {code} in {:?}", errors.diagnostics));
        assert!(text[hit.span.clone()].contains(at), "{to}: span {:?} not at `{at}`", hit.span);
    };
    let refused = |from: &str, to: &str, code: &str, at: &str| refused_in(EXAMPLE, from, to, code, at);
    refused("cipher_pass = { secret = \"backup_cipher_pass\" }\n", "", "spec::backup", "[backup]");
    refused("volume = \"pgbackrest-repo\"", "volume = \"pg-primary-data\"", "spec::shared-volume", "pg-primary-data");
    refused("full = \"sun 01:00\"", "full = \"sunday 01:00\"", "spec::backup", "sunday");
    refused("retention_full = 2", "retention_full = 0", "spec::backup", "0");
    refused("type = \"posix\"", "type = \"s3\"", "spec::backup", "pgbackrest-repo"); // `volume` is not for s3
    refused("compress_level = 3", "compress_level = 22", "spec::backup", "22");
    refused("compress_level = 3", "compress_level = 3\nprocess_max = 33", "spec::backup", "33");
    refused("compress_level = 3", "compress_level = 3\nprocess_max = 0", "spec::backup", "0");
    // A private CA: only for s3, only when the certificate is verified, a declared secret.
    let ca = "ca = { secret = \"backup_cipher_pass\" }\n";
    refused(
        "path = \"/var/lib/pgbackrest\"\n",
        &format!("path = \"/var/lib/pgbackrest\"\n{ca}"),
        "spec::backup",
        "backup_cipher_pass",
    );
    let s3 = s3_spec("s3.internal:9000");
    hacompile_spec::load(&hacompile_spec::SourceFile::new("spec.toml", s3.clone())).expect("the S3 spec is valid");
    refused_in(
        &s3,
        "uri_style = \"path\"\n",
        "uri_style = \"path\"\nverify_tls = false\n",
        "spec::backup",
        "backup_s3_ca",
    );
    refused_in(&s3, "[secrets.backup_s3_ca]\n", "", "spec::undeclared-secret", "backup_s3_ca");
    // Unencrypted is allowed only when said.
    let text = EXAMPLE.replace("cipher_pass = { secret = \"backup_cipher_pass\" }\n", "encrypt = false\n");
    hacompile_spec::load(&hacompile_spec::SourceFile::new("spec.toml", text)).expect("encrypt = false is valid");
}

/// A stanza-create killed mid-write (the container's SIGKILL, a lost node)
/// leaves pgBackRest's temp file in a stanza directory without its info
/// file: stanza-create then refused the directory for ever ("archive
/// directory not empty"), so no backup was ever taken and nothing archived.
/// Found on the swarm (tests/swarm/run.sh kills the primary during its first
/// backup). Both places that create the stanza clear such a leftover, and
/// only that: the scheduler, and the first archive-push.
#[test]
fn a_stanza_create_killed_mid_write_does_not_wedge_the_repository() {
    let c = Cluster::start(&spec());
    let repo = c.site.root.join("repo");
    let stanza_dir = repo.join("archive/ha_db");
    // A repository where the stanza's first creation was killed half-way
    // (the cluster's first archive created the stanza already: start over).
    let wedge = || {
        let _ = std::fs::remove_dir_all(&repo);
        std::fs::create_dir_all(&stanza_dir).expect("mkdir");
        std::fs::write(stanza_dir.join("archive.info.pgbackrest.tmp"), "[backrest]\nbackrest-format=5\n")
            .expect("write");
        chown_postgres(&repo);
    };
    wedge();
    let sched = c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]);
    let log = format!("{}{}", text(&sched.stdout), text(&sched.stderr));
    assert!(log.contains("full backup complete"), "the first full backup despite the leftover:\n{log}");
    assert!(log.contains("archive.info.pgbackrest.tmp"), "the removal is logged:\n{log}");
    let info = text(&ok(c.pgbackrest(PRIMARY, &["info"], &[]), "pgbackrest info").stdout);
    assert!(info.contains("full backup:"), "{info}");
    assert!(stanza_dir.join("archive.info").exists(), "the stanza was created");

    // The same leftover met first by the archiver.
    wedge();
    let port = c.primary.port;
    let (segment, archived, _) = write_switch_and_wait(port, "after_wedge");
    let server_log = c.primary.log_text();
    assert!(archived, "{segment} archived despite the leftover:\n{}", log_lines(&server_log, ""));
    assert!(
        server_log.contains("archive.info.pgbackrest.tmp, left by an interrupted stanza-create"),
        "the archiver's removal is logged:\n{}",
        log_lines(&server_log, "hacompile")
    );
}

/// The superuser's name is a Docker secret of the spec: pgBackRest's
/// "command begin" line logs every option it was given, and the wrapper
/// gave the name as `--pg1-user` (through PGBACKREST_PG1_USER), so each
/// backup, check and stanza-create wrote it to the container's log. The
/// name goes to libpq as PGUSER instead, which pgBackRest does not log.
#[test]
fn the_superusers_name_is_in_no_pgbackrest_output() {
    let c = Cluster::start(&spec());
    let sched = ok(c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]), "the first backup");
    let mut outputs = vec![("scheduler", format!("{}{}", text(&sched.stdout), text(&sched.stderr)))];
    assert!(outputs[0].1.contains("full backup complete"), "{}", outputs[0].1);
    for cmd in [&["check"][..], &["stanza-create"], &["info"]] {
        let o = ok(c.pgbackrest(PRIMARY, cmd, &[]), cmd[0]);
        outputs.push((cmd[0], format!("{}{}", text(&o.stdout), text(&o.stderr))));
    }
    let port = c.primary.port;
    let (segment, archived, _) = write_switch_and_wait(port, "pushed");
    assert!(archived, "{segment} archived");
    let server_log = c.primary.log_text();
    let pgbackrest_lines: Vec<&str> =
        server_log.lines().filter(|l| l.contains("P00") || l.contains("pgbackrest")).collect();
    outputs.push(("the server's log (archive-push)", pgbackrest_lines.join("\n")));
    for (what, out) in &outputs {
        assert!(!out.contains(SUPERUSER), "{what} shows the superuser's name:\n{}", log_lines(out, SUPERUSER));
    }
}

/// A former primary's WAL past the point where a newer timeline forked off
/// its own is never archived, and never restored from an archive that
/// already holds it (one an older wrapper, or pgBackRest by hand, wrote).
/// Under the segment's plain name, a replica still on the old timeline
/// restored it, replayed past the fork and could never follow the new
/// leader (issue 14: Patroni archives a crashed leader's ready WAL before
/// its pg_rewind, and that WAL ends with the switch its crash recovery
/// wrote). Real servers: the replica is promoted (timeline 2, its history
/// archived) while the primary writes on, on timeline 1.
#[test]
fn a_former_primarys_wal_past_the_fork_is_neither_archived_nor_restored() {
    let c = Cluster::start(&spec());
    let port = c.primary.port;
    let (before, archived, _) = write_switch_and_wait(port, "before_fork");
    assert!(archived, "timeline 1 archives: {before}");
    let keep = c.site.root.join("fork");
    std::fs::create_dir_all(&keep).expect("mkdir");
    std::fs::copy(c.primary.data.join("pg_wal").join(&before), keep.join(&before)).expect("copy the segment");
    chown_postgres(&keep);
    let replica = c.replica.port;
    sql(replica, "select pg_promote(true, 60)").expect("promote");
    let history = keep.join("00000002.history");
    wait_for("00000002.history in the archive", Duration::from_secs(60), || {
        c.pgbackrest(PRIMARY, &["archive-get", "00000002.history", history.to_str().expect("utf-8")], &[])
            .status
            .success()
    });

    // The former primary writes on: its segment reaches past the fork.
    sql(port, "create table after_fork as select g from generate_series(1, 1000) g").expect("write");
    let segment = sql(port, "select pg_walfile_name(pg_current_wal_lsn())").expect("segment");
    assert!(segment.starts_with("00000001"), "the former primary is on timeline 1: {segment}");
    sql(port, "select pg_switch_wal()").expect("switch");
    let copy = keep.join(&segment);
    std::fs::copy(c.primary.data.join("pg_wal").join(&segment), &copy).expect("copy the segment");
    chown_postgres(&keep);
    let copy = copy.to_str().expect("utf-8").to_owned();

    // Its own archiver is refused (PostgreSQL keeps the segment and counts
    // the failure), and so is any push of it.
    let failed_on =
        |port: u16| sql(port, "select coalesce(last_failed_wal, '') from pg_stat_archiver").unwrap_or_default();
    wait_for("the former primary's archiver to be refused", Duration::from_secs(60), || failed_on(port) == segment);
    let push = c.pgbackrest(PRIMARY, &["archive-push", &copy], &[]);
    let said = text(&push.stderr);
    assert!(!push.status.success(), "the push of {segment} is refused:\n{said}");
    assert!(
        said.contains(&format!("refusing to archive {segment}: timeline 2 forked off timeline 1 at ")),
        "the refusal names the fork:\n{said}"
    );
    let got = keep.join("got");
    let get = |name: &str| c.pgbackrest(PRIMARY, &["archive-get", name, got.to_str().expect("utf-8")], &[]);
    assert!(!get(&segment).status.success(), "{segment} is not in the archive");

    // An archive that holds it already: pgBackRest itself (options before
    // the command reach it unchanged) pushes and restores it, the wrapper's
    // restore_command does not.
    ok(c.pgbackrest(PRIMARY, &["--log-level-console=warn", "archive-push", &copy], &[]), "the raw push");
    ok(
        c.pgbackrest(
            PRIMARY,
            &["--log-level-console=warn", "archive-get", &segment, got.to_str().expect("utf-8")],
            &[],
        ),
        "pgBackRest restores it",
    );
    let refused = get(&segment);
    let said = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "restore_command says 'not found' for {segment}:\n{said}");
    assert!(said.contains(&format!("not restoring {segment}: timeline 2 forked off timeline 1 at ")), "{said}");
    // pg_rewind (Patroni runs it with --restore-target-wal on 15 and later)
    // reads the former primary's own WAL, past the fork, and fetches what
    // its pg_wal lacks with restore_command into pg_wal/<the segment>
    // (recovery always asks for pg_wal/RECOVERYXLOG): that is served.
    let rewind_dir = keep.join("pg_wal");
    std::fs::create_dir_all(&rewind_dir).expect("mkdir");
    chown_postgres(&keep);
    let rewind_dest = rewind_dir.join(&segment);
    ok(
        c.pgbackrest(PRIMARY, &["archive-get", &segment, rewind_dest.to_str().expect("utf-8")], &[]),
        &format!("pg_rewind's archive-get of {segment}"),
    );
    assert!(
        std::fs::read(&rewind_dest).expect("fetched") == std::fs::read(&copy).expect("kept"),
        "pg_rewind gets the former primary's own {segment}"
    );

    // Timeline 1 before the fork, and timeline 2, are pushed and served as
    // before (a former primary's WAL before the fork is history: Patroni
    // archives what its archiver had not yet pushed).
    let before_copy = keep.join(&before);
    ok(
        c.pgbackrest(PRIMARY, &["archive-push", before_copy.to_str().expect("utf-8")], &[]),
        &format!("archive-push {before} again, before the fork"),
    );
    ok(get(&before), &format!("archive-get {before}, before the fork"));
    let (on_two, archived, _) = write_switch_and_wait(replica, "on_timeline_two");
    assert!(archived && on_two.starts_with("00000002"), "the new primary archives on timeline 2: {on_two}");
    ok(get(&on_two), &format!("archive-get {on_two}"));
    println!("\n=== a former primary's WAL past the fork ===");
    println!("  {segment}: its archiver refused, the push refused, the copy pushed by hand not restored");
    println!("  {before} (before the fork) and {on_two} (timeline 2) restored");
}

/// `process_max` reaches pgBackRest through the compiled pgbackrest.conf:
/// the scheduler's full backup runs with it (pgBackRest's own log of the
/// command's options says so), and without it the key is not written
/// (pgBackRest's default 1).
#[test]
fn process_max_is_what_the_backup_runs_with() {
    let (_kept, plain) = support::cluster::compile(&spec());
    let conf_of = |site: &support::cluster::Site| {
        let file = site.config_file(PRIMARY, "/etc/pgbackrest/pgbackrest.conf").expect("the primary mounts it");
        std::fs::read_to_string(file).expect("pgbackrest.conf")
    };
    let conf = conf_of(&plain);
    assert!(!conf.contains("process-max"), "not written unless given:\n{conf}");
    let c = Cluster::start(&spec().replace("compress_level = 3\n", "compress_level = 3\nprocess_max = 2\n"));
    let conf = conf_of(&c.site);
    assert!(conf.lines().any(|l| l == "process-max=2"), "written:\n{conf}");
    let out = ok(c.pgbackrest(PRIMARY, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]), "the first backup");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let begin =
        said.lines().find(|l| l.contains("backup command begin")).unwrap_or_else(|| panic!("no begin line:\n{said}"));
    assert!(begin.contains("--process-max=2"), "the backup ran with process-max 2: {begin}");
    assert!(said.contains("full backup complete"), "{said}");
}
