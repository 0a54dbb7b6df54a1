//! Backup bench (issue #14 item 6): what the compiled `[backup]` costs, on
//! loopback with real processes (PostgreSQL 15, pgBackRest 2.45). Run it
//! with `benches/backup.sh [SCALE] [SECONDS]`.
//!
//! examples/ha-postgres-backup.toml (posix repository, encrypted, zst level
//! 3: what users get) is compiled by the built `hacompile`, and its primary
//! runs with the compiled settings (archive_command through the emitted
//! wrapper and pgbackrest.conf; only paths, socket and port localized, as in
//! tests/backup_restore.rs). On a pgbench database of SCALE (default 75,
//! over 1 GB) it measures, in the same run:
//!
//! - full backups: pgBackRest through the wrapper (process-max 1 as
//!   compiled, and 2), against `pg_basebackup -X stream` (plain, no
//!   compression), `cp -a` and tar (plain and zstd -3) of the stopped data
//!   directory;
//! - restores: `hacompile-pgbackrest restore-into DIR latest` into a fresh
//!   directory against `cp -a` of the pg_basebackup copy;
//! - the WAL archive lag under pgbench TPC-B for SECONDS (default 60) with 4
//!   clients, sampled every second, and pgbench with archiving against
//!   archive_mode off (a spec without `[backup]`), ABBA;
//! - what one WAL segment costs through the emitted wrapper (secrets read
//!   from files, the fork guard's history probe) against pgBackRest called
//!   directly: `archive-get` and `archive-push`, milliseconds per call.
//!
//! Figures are printed, not asserted; only a failed step fails the run.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench prints its figures

#[path = "../tests/support/mod.rs"]
mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{PG_BIN, PRIMARY, Primary, SUPERUSER, as_postgres, chown_postgres, utf8};
use support::traffic::{self, Client};

const EXAMPLE: &str = include_str!("../examples/ha-postgres-backup.toml");
/// The longest any one step (a backup, a copy, a restore) may take.
const STEP: Duration = Duration::from_secs(30 * 60);
/// Loading the pgbench database, and archiving its WAL.
const LOAD: Duration = Duration::from_secs(60 * 60);
const CLIENTS: u32 = 4;
const MB: f64 = 1e6;

fn log(line: &str) {
    eprintln!("[backup] {line}");
}

/// The backup example with a local repository volume: no NFS on loopback.
/// Everything else as compiled (encryption, zst level 3, retention).
fn spec() -> String {
    let nfs = "nfs = { address = \"10.0.0.5\", export = \"/export/pgbackrest\" }\n";
    assert!(EXAMPLE.contains(nfs), "the example's repository is on NFS");
    EXAMPLE.replace(nfs, "")
}

/// Runs `cmd` in its own process group, its output into `dir/NAME.log`,
/// and returns how long it took. Past `limit` the group is killed and the
/// run fails, as it does if the command fails.
fn run(what: &str, cmd: &mut Command, limit: Duration, dir: &Path) -> Duration {
    let name: String = what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let path = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&path).expect("a log file");
    cmd.stdin(Stdio::null()).stdout(out.try_clone().expect("a second handle")).stderr(out).process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: does not start: {e}"));
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let took = start.elapsed();
            let said = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(status.success(), "{what}: {status}:\n{}", tail(&said));
            return took;
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            let said = std::fs::read_to_string(&path).unwrap_or_default();
            panic!("{what}: not done within {limit:?}:\n{}", tail(&said));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `sh -c SCRIPT` with `args` as $1...: the copies, each followed by an
/// fsync of what it wrote, as pg_basebackup and pgBackRest sync theirs.
fn sh(script: &str, args: &[&Path]) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script, "sh"]).args(args);
    c
}

/// Bytes under `path` (du -sb).
fn size(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output().expect("du");
    support::text(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du -sb {}", path.display()))
}

fn remove(path: &Path) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).expect("remove");
    } else {
        std::fs::remove_file(path).expect("remove");
    }
}

/// A statement that may take longer than a client's attempt limit (a checkpoint).
fn sql_long(p: &Primary, query: &str, dir: &Path) {
    let mut c = support::cluster::psql(p.pg.port);
    c.env("PGCONNECT_TIMEOUT", "10").args(["-c", query]);
    run(query, &mut c, STEP, dir);
}

/// An LSN (`X/Y`) as a number.
fn lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The end of a WAL segment from its file name (TTTTTTTTXXXXXXXXYYYYYYYY);
/// None for other archived files (history, backup labels).
fn segment_end(name: &str, segment_size: u64) -> Option<u64> {
    if name.len() != 24 || !name.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    let number = log * (0x1_0000_0000 / segment_size) + seg;
    Some((number + 1) * segment_size)
}

/// What pg_stat_archiver and the WAL position say at one moment.
struct Archiver {
    current: u64,
    /// End of the last archived segment (None: nothing archived yet, or not a segment).
    archived_end: Option<u64>,
    /// Seconds since last_archived_time.
    age: Option<f64>,
    archived: u64,
    failed: u64,
}

fn archiver(client: &Client, segment_size: u64) -> Result<Archiver, String> {
    let row = client.run(
        "select pg_current_wal_lsn() || '|' || coalesce(last_archived_wal, '') || '|' || \
         coalesce(extract(epoch from now() - last_archived_time)::text, '') || '|' || archived_count || '|' || \
         failed_count from pg_stat_archiver",
    )?;
    let f: Vec<&str> = row.split('|').collect();
    let [current, wal, age, archived, failed] = f.as_slice() else { return Err(format!("pg_stat_archiver: {row}")) };
    Ok(Archiver {
        current: lsn(current).ok_or_else(|| format!("an LSN: {current}"))?,
        archived_end: segment_end(wal, segment_size),
        age: age.parse().ok(),
        archived: archived.parse().map_err(|_| format!("archived_count: {archived}"))?,
        failed: failed.parse().map_err(|_| format!("failed_count: {failed}"))?,
    })
}

/// Switches to a new segment and waits until the one holding the current
/// position is archived; returns how long that took.
fn wait_archived(client: &Client, segment_size: u64, limit: Duration) -> Duration {
    let start = Instant::now();
    let target = archiver(client, segment_size).expect("the archiver's state").current;
    client.run("select pg_switch_wal()").expect("switch");
    loop {
        let a = archiver(client, segment_size).expect("the archiver's state");
        if a.archived_end.is_some_and(|end| end >= target) {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "WAL up to {target:X} not archived within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The service's pgBackRest wrapper with `args`.
fn wrapper(p: &Primary, args: &[&str]) -> Command {
    let mut c = p.pgbackrest();
    c.args(args);
    c
}

/// One measured copy: seconds and the bytes it wrote.
struct Step {
    name: String,
    secs: f64,
    bytes: u64,
}

/// The labels of the full backups in the repository, oldest first.
fn backup_labels(repo: &Path, stanza: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("backup").join(stanza))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 16 && n.ends_with('F'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

struct Lag {
    /// Bytes between the current position and the end of the last archived segment.
    bytes: Vec<u64>,
    /// Seconds since last_archived_time.
    age: Vec<f64>,
    archived: u64,
    failed: u64,
    tps: f64,
}

/// pgbench for `secs` with archiving on, the archiver sampled every second.
fn sampled_pgbench(p: &Primary, client: &Client, secs: u32, segment_size: u64) -> Lag {
    let before = archiver(client, segment_size).expect("the archiver's state");
    let mut top = before.archived_end.unwrap_or(0);
    let mut lag = Lag { bytes: Vec::new(), age: Vec::new(), archived: 0, failed: 0, tps: 0.0 };
    let mut bench = traffic::pgbench(client, "127.0.0.1", p.pg.port)
        .args(["-n", "-T", &secs.to_string(), "-c", &CLIENTS.to_string(), "-j", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgbench starts");
    let start = Instant::now();
    let limit = Duration::from_secs(u64::from(secs) + 120);
    let mut next = start;
    loop {
        if bench.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(start.elapsed() < limit, "pgbench -T {secs} still running after {limit:?}");
        // A sample that failed (no answer within the client's limit) is left out and counted.
        match archiver(client, segment_size) {
            Ok(a) => {
                top = top.max(a.archived_end.unwrap_or(0));
                lag.bytes.push(a.current.saturating_sub(top));
                if let Some(age) = a.age {
                    lag.age.push(age);
                }
            }
            Err(e) => log(&format!("a sample failed: {}", e.trim())),
        }
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let out = bench.wait_with_output().expect("pgbench output");
    let said = format!("{}{}", support::text(&out.stdout), support::text(&out.stderr));
    assert!(out.status.success(), "pgbench:\n{said}");
    lag.tps = traffic::tps(&said).expect("tps");
    let after = archiver(client, segment_size).expect("the archiver's state");
    lag.archived = after.archived - before.archived;
    lag.failed = after.failed - before.failed;
    lag
}

/// Calls of each kind in [`per_call`].
const CALLS: usize = 30;

/// The per-segment cost of the emitted wrapper against pgBackRest called
/// directly with the same environment (the passphrase given as pgBackRest's
/// own variable): `archive-get` and `archive-push` (of a segment the
/// archive already holds: checksum compared, nothing written) of the last
/// archived segment, interleaved. (what, wrapper ms, pgbackrest ms), medians.
fn per_call(p: &Primary, client: &Client, root: &Path) -> Vec<(String, f64, f64)> {
    let segment = client
        .run("select last_archived_wal from pg_stat_archiver")
        .unwrap_or_else(|e| panic!("pg_stat_archiver: {e}"));
    assert_eq!(segment.len(), 24, "a segment was archived: {segment}");
    let dir = root.join("per-call");
    std::fs::create_dir_all(&dir).expect("mkdir");
    chown_postgres(&dir);
    let copy = dir.join(&segment);
    let got = dir.join("got");
    let st = wrapper(p, &["archive-get", &segment, utf8(&copy)]).status().expect("runs");
    assert!(st.success(), "archive-get {segment} through the wrapper");
    let env = p.site.env(&p.pg, p.pg.port);
    let passphrase = std::fs::read_to_string(&env["HACOMPILE_BACKUP_CIPHER_PASS_FILE"]).expect("the passphrase file");
    let direct = |args: &[&str]| {
        let mut c = as_postgres("pgbackrest");
        c.envs(&env).env("PGBACKREST_REPO1_CIPHER_PASS", passphrase.trim_end_matches('\n')).args(args);
        c
    };
    let time = |mut c: Command, what: &str| -> f64 {
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let t = Instant::now();
        let st = c.status().expect("runs");
        assert!(st.success(), "{what}");
        t.elapsed().as_secs_f64() * 1000.0
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out = Vec::new();
    for (what, args) in [
        ("archive-get (restore_command)", vec!["archive-get", segment.as_str(), utf8(&got)]),
        ("archive-push (archive_command)", vec!["archive-push", utf8(&copy)]),
    ] {
        let (mut w, mut d) = (Vec::new(), Vec::new());
        for i in 0..CALLS * 2 {
            if i % 2 == 0 {
                w.push(time(wrapper(p, &args), what));
            } else {
                d.push(time(direct(&args), what));
            }
        }
        out.push((what.to_owned(), median(w), median(d)));
    }
    out
}

fn percentile<T: Copy + PartialOrd>(v: &[T], p: f64) -> Option<T> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    // Nearest rank.
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s.get(rank.clamp(1, s.len().max(1)) - 1).copied()
}

fn versions() -> Vec<String> {
    let first_line = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| support::text(&o.stdout).lines().next().unwrap_or("").trim_matches(['*', ' ']).to_owned())
            .unwrap_or_else(|e| format!("{program}: {e}"))
    };
    vec![
        first_line(&format!("{PG_BIN}/postgres"), &["--version"]),
        first_line("pgbackrest", &["version"]),
        first_line("zstd", &["--version"]),
        format!(
            "{} cores, load average {}",
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ]
}

fn main() {
    // `cargo bench` adds `--bench`; the numbers are the scale and the seconds.
    let numbers: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let scale = numbers.first().copied().unwrap_or(75);
    let secs = numbers.get(1).copied().unwrap_or(60);
    assert!(scale >= 1 && secs >= 5, "a scale of at least 1 and at least 5 seconds");
    let started = Instant::now();
    let load_at_start = versions();

    log("compiling examples/ha-postgres-backup.toml and starting its primary");
    let mut p = Primary::start(&spec());
    let root = p.site.root.clone();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let env = p.site.env(&p.pg, p.pg.port);
    let repo = PathBuf::from(&env["PGBACKREST_REPO1_PATH"]);
    let stanza = env["PGBACKREST_STANZA"].clone();
    let conf = std::fs::read_to_string(&env["PGBACKREST_CONFIG"]).expect("the emitted pgbackrest.conf");
    let compiled: Vec<String> = conf
        .lines()
        .filter(|l| {
            ["compress-type", "compress-level", "repo1-cipher-type", "start-fast"].iter().any(|k| l.starts_with(k))
        })
        .map(str::to_owned)
        .collect();
    assert!(compiled.iter().any(|l| l == "repo1-cipher-type=aes-256-cbc"), "the repository is encrypted:\n{conf}");
    assert!(!conf.contains("process-max"), "process-max is pgBackRest's default (1)");
    // As compiled (the container's paths), not as localized here.
    let archive_command = p
        .site
        .service(PRIMARY)
        .command
        .iter()
        .flatten()
        .find(|s| s.starts_with("archive_command="))
        .expect("the primary archives")
        .clone();
    let client = Client::of(&support::cluster::psql(p.pg.port));
    let segment_size: u64 = client
        .run("select setting::bigint * (case unit when '8kB' then 8192 when 'B' then 1 else 1048576 end) from pg_settings where name = 'wal_segment_size'")
        .expect("wal_segment_size")
        .parse()
        .expect("a number");

    // The stanza first, as the scheduler's first round makes it, so the load's WAL is archived.
    run("stanza-create", &mut wrapper(&p, &["stanza-create"]), STEP, &logs);

    let load_from = archiver(&client, segment_size).expect("the archiver's state").current;
    log(&format!("pgbench -i -s {scale}, archiving on"));
    let mut init = traffic::pgbench(&client, "127.0.0.1", p.pg.port);
    init.args(["-i", "-q", "-s", &scale.to_string()]);
    // traffic::pgbench bounds a run at 600 s; loading may take longer on a busy machine.
    let init = run(&format!("pgbench -i -s {scale}"), &mut init, LOAD, &logs);
    let catch_up = wait_archived(&client, segment_size, LOAD);
    let load_wal = archiver(&client, segment_size).expect("the archiver's state").current - load_from;
    // Measured now: the second full backup expires the WAL before the first (retention_full = 2).
    let load_archive = size(&repo.join("archive"));
    let db_size: u64 = client.run("select pg_database_size('app')").expect("size").parse().expect("a number");
    let cluster_size: u64 = client
        .run("select sum(pg_database_size(oid))::bigint from pg_database")
        .expect("size")
        .parse()
        .expect("a number");
    log(&format!(
        "database app: {:.0} MB (cluster {:.0} MB), loaded in {:.0} s, its WAL archived {:.0} s later",
        db_size as f64 / MB,
        cluster_size as f64 / MB,
        init.as_secs_f64(),
        catch_up.as_secs_f64()
    ));

    // ---------------------------------------------------------------- backups
    let mut backups: Vec<Step> = Vec::new();
    let pgbackrest_backup = |name: &str, process_max: &str| {
        sql_long(&p, "checkpoint", &logs);
        let had = backup_labels(&repo, &stanza);
        let mut c = wrapper(&p, &["backup", "--type=full"]);
        c.env("PGBACKREST_PROCESS_MAX", process_max);
        log(name);
        let took = run(name, &mut c, STEP, &logs);
        let label = backup_labels(&repo, &stanza)
            .into_iter()
            .find(|l| !had.contains(l))
            .expect("a new full backup in the repository");
        Step {
            name: name.into(),
            secs: took.as_secs_f64(),
            bytes: size(&repo.join("backup").join(&stanza).join(label)),
        }
    };
    backups.push(pgbackrest_backup("pgBackRest full, process-max 1 (compiled)", "1"));

    sql_long(&p, "checkpoint", &logs);
    let basebackup = root.join("basebackup");
    let mut c = as_postgres("pg_basebackup");
    c.arg("-D").arg(&basebackup).args(["-X", "stream", "-F", "p", "-c", "fast", "-U", SUPERUSER]);
    c.args(["-h", utf8(&p.pg.socket), "-p", &p.pg.port.to_string()]);
    log("pg_basebackup");
    let took = run("pg_basebackup -X stream", &mut c, STEP, &logs);
    backups.push(Step {
        name: "pg_basebackup -X stream (plain)".into(),
        secs: took.as_secs_f64(),
        bytes: size(&basebackup),
    });
    let base_secs = took.as_secs_f64();

    backups.push(pgbackrest_backup("pgBackRest full, process-max 2", "2"));

    // The stopped data directory, copied as files.
    log("stopping the primary: cp -a and tar of its data directory");
    p.pg.stop();
    let data = p.pg.data.clone();
    let pg_wal = size(&data.join("pg_wal"));
    let data_size = size(&data);
    let copies: [(&str, &str, &str); 3] = [
        ("cp -a of the stopped data directory", "copy", "cp -a \"$1\" \"$2\" && find \"$2\" -type f -exec sync {} +"),
        ("tar of the stopped data directory", "data.tar", "tar -cf \"$2\" -C \"$1\" . && sync \"$2\""),
        (
            "tar | zstd -3 of the stopped data directory",
            "data.tar.zst",
            "tar -cf - -C \"$1\" . | zstd -q -3 -T1 -o \"$2\" && sync \"$2\"",
        ),
    ];
    for (name, target, script) in copies {
        let target = root.join(target);
        let took = run(name, &mut sh(&format!("set -e; {script}"), &[&data, &target]), STEP, &logs);
        backups.push(Step { name: name.into(), secs: took.as_secs_f64(), bytes: size(&target) });
        remove(&target);
    }

    // ---------------------------------------------------------------- restores
    let mut restores: Vec<Step> = Vec::new();
    for process_max in ["1", "2"] {
        let name = format!("restore-into DIR latest, process-max {process_max}");
        let into = root.join(format!("restored-{process_max}"));
        std::fs::create_dir_all(&into).expect("mkdir");
        chown_postgres(&into);
        let target = into.join("pgdata");
        let mut c = wrapper(&p, &["restore-into", utf8(&target), "latest"]);
        c.env("PGBACKREST_PROCESS_MAX", process_max);
        log(&name);
        let took = run(&name, &mut c, STEP, &logs);
        assert!(target.join("PG_VERSION").exists(), "{name}: a data directory");
        restores.push(Step { name, secs: took.as_secs_f64(), bytes: size(&target) });
        remove(&into);
    }
    let target = root.join("restored-cp");
    let name = "cp -a of the pg_basebackup copy";
    let took = run(
        name,
        &mut sh("set -e; cp -a \"$1\" \"$2\" && find \"$2\" -type f -exec sync {} +", &[&basebackup, &target]),
        STEP,
        &logs,
    );
    restores.push(Step { name: name.into(), secs: took.as_secs_f64(), bytes: size(&target) });
    let cp_secs = took.as_secs_f64();
    remove(&target);
    remove(&basebackup);

    // ---------------------------------------------------------------- archive lag
    // ABBA: archiving (as compiled), archive_mode off, off, archiving; each
    // figure the mean of its two runs, after an unreported warm-up.
    log(&format!("pgbench -T {secs} -c {CLIENTS}: archiving, off, off, archiving"));
    p.restart_with(&[]);
    traffic::pgbench_tps(&client, "127.0.0.1", p.pg.port, 10, CLIENTS).unwrap_or_else(|e| panic!("warm-up: {e}"));
    wait_archived(&client, segment_size, STEP);
    let on1 = sampled_pgbench(&p, &client, secs, segment_size);
    let drain1 = wait_archived(&client, segment_size, STEP);
    p.restart_with(&["-c", "archive_mode=off"]);
    assert_eq!(client.run("show archive_mode").as_deref(), Ok("off"), "archiving is off");
    let off = |what: &str| {
        traffic::pgbench_tps(&client, "127.0.0.1", p.pg.port, secs, CLIENTS).unwrap_or_else(|e| panic!("{what}: {e}"))
    };
    let off1 = off("pgbench, archiving off");
    let off2 = off("pgbench, archiving off");
    p.restart_with(&[]);
    assert_eq!(client.run("show archive_mode").as_deref(), Ok("on"), "archiving is on");
    wait_archived(&client, segment_size, STEP);
    let on2 = sampled_pgbench(&p, &client, secs, segment_size);
    let drain2 = wait_archived(&client, segment_size, STEP);
    let calls = per_call(&p, &client, &root);
    drop(p);

    // ---------------------------------------------------------------- output
    println!();
    println!("== backup bench: examples/ha-postgres-backup.toml compiled, one primary on loopback ==");
    for line in &load_at_start {
        println!("  {line}");
    }
    println!("  load average at the end: {}", versions().last().cloned().unwrap_or_default());
    println!("  emitted pgbackrest.conf: {}; {archive_command}", compiled.join(", "));
    println!(
        "  pgbench -i -s {scale}: database app {:.0} MB by pg_database_size (cluster {:.0} MB, data directory {:.0} MB \
         of which pg_wal {:.0} MB, kept by the compiled wal_keep_size)",
        db_size as f64 / MB,
        cluster_size as f64 / MB,
        data_size as f64 / MB,
        pg_wal as f64 / MB,
    );
    println!(
        "  the load: {:.1} s with archiving on, {:.0} MB of WAL, all of it archived {:.1} s after the load ended, \
         {:.0} MB in the repository's archive (zst 3 + aes-256-cbc)",
        init.as_secs_f64(),
        load_wal as f64 / MB,
        catch_up.as_secs_f64(),
        load_archive as f64 / MB
    );
    println!();
    let table = |title: &str, rows: &[Step], base: f64| {
        println!("{title}");
        println!("  {:<46} {:>8} {:>8} {:>10} {:>7}", "", "seconds", "MB/s", "MB written", "ratio");
        for s in rows {
            println!(
                "  {:<46} {:>8.1} {:>8.1} {:>10.0} {:>7.2}",
                s.name,
                s.secs,
                db_size as f64 / MB / s.secs,
                s.bytes as f64 / MB,
                s.secs / base
            );
        }
    };
    table("full backup (MB/s = database app size / seconds; ratio = seconds / pg_basebackup's)", &backups, base_secs);
    println!();
    table("restore into a fresh directory (ratio = seconds / cp -a of the pg_basebackup copy)", &restores, cp_secs);
    println!();
    let bytes: Vec<u64> = on1.bytes.iter().chain(&on2.bytes).copied().collect();
    let ages: Vec<f64> = on1.age.iter().chain(&on2.age).copied().collect();
    let mb = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1} MB", b as f64 / MB));
    let s = |a: Option<f64>| a.map_or("-".into(), |a| format!("{a:.1} s"));
    println!(
        "WAL archive lag under pgbench TPC-B (-s {scale}, -T {secs}, -c {CLIENTS}), sampled every 1 s, two runs ({} samples)",
        bytes.len()
    );
    println!("  {:<40} {:>10} {:>10} {:>10}", "", "median", "p95", "max");
    println!(
        "  {:<40} {:>10} {:>10} {:>10}",
        "bytes not yet archived",
        mb(percentile(&bytes, 50.0)),
        mb(percentile(&bytes, 95.0)),
        mb(percentile(&bytes, 100.0))
    );
    println!(
        "  {:<40} {:>10} {:>10} {:>10}",
        "age of last_archived_time",
        s(percentile(&ages, 50.0)),
        s(percentile(&ages, 95.0)),
        s(percentile(&ages, 100.0))
    );
    println!(
        "  segments archived {} (failed {}); after each run, all its WAL archived {:.1} s and {:.1} s after a switch",
        on1.archived + on2.archived,
        on1.failed + on2.failed,
        drain1.as_secs_f64(),
        drain2.as_secs_f64()
    );
    let (on, off) = ((on1.tps + on2.tps) / 2.0, (off1 + off2) / 2.0);
    println!();
    println!("pgbench tps without connection time, mean of two runs each (archiving, off, off, archiving)");
    println!("  {:<40} {:>10.1}   ({:.1}, {:.1})", "archiving on (compiled)", on, on1.tps, on2.tps);
    println!("  {:<40} {:>10.1}   ({:.1}, {:.1})", "archive_mode off", off, off1, off2);
    println!("  {:<40} {:>10.2}", "ratio on / off", on / off);
    println!();
    println!(
        "what one WAL segment costs through the wrapper (secrets read from files, the fork guard's history probe) \
         against pgbackrest called directly, same repository and segment, {CALLS} calls each, interleaved"
    );
    println!("  {:<40} {:>10} {:>10} {:>10}", "ms per call (median)", "wrapper", "pgbackrest", "ratio");
    for (what, w, d) in &calls {
        println!("  {what:<40} {w:>10.1} {d:>10.1} {:>10.2}", w / d);
    }
    println!();
    println!(
        "  notes: page cache holds the whole database (reads are from memory); every copy is synced (cp and tar \
         followed by sync of their files, as pg_basebackup and pgBackRest sync theirs); pg_basebackup and \
         pgBackRest both start with a fast checkpoint (start-fast=y is compiled); pgBackRest's process-max 2 is \
         PGBACKREST_PROCESS_MAX=2 beside the compiled config; a restore's figure is the files only, before the \
         server replays WAL; the lag's floor is the segment being written (up to {} MiB), never archived before it \
         is complete",
        segment_size >> 20
    );
    log(&format!("done in {:.0} s", started.elapsed().as_secs_f64()));
}
