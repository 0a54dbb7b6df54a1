//! Client traffic for failover measurements, through real psql and pgbench:
//! a writer that inserts sequential ids and records which commits were
//! acknowledged, a reader, and pgbench TPC-B runs. Each client is a thread
//! that starts a new psql per statement (so every attempt also proves a new
//! connection can be routed), bounded per attempt, in count and in time.
//! The figures are computed from the recorded attempts; nothing here
//! asserts a timing.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::text;

/// How long one statement may take before it counts as failed (and its psql is killed).
pub const ATTEMPT_LIMIT: Duration = Duration::from_secs(5);
/// One attempt per period at most (less often when attempts are slow).
pub const PERIOD: Duration = Duration::from_millis(50);
/// No client runs longer than this, whatever its owner does.
pub const RUN_LIMIT: Duration = Duration::from_secs(4 * 3600);
const MAX_ATTEMPTS: u64 = 1_000_000;
const MAX_ERRORS: usize = 50;

/// A psql invocation without its statement, as a value a thread can own:
/// the program, arguments and environment of a configured [`Command`].
#[derive(Clone, Debug)]
pub struct Client {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
}

impl Client {
    pub fn of(c: &Command) -> Client {
        Client {
            program: c.get_program().to_owned(),
            args: c.get_args().map(ToOwned::to_owned).collect(),
            envs: c.get_envs().map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned))).collect(),
        }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        self.env_into(&mut c);
        c
    }

    /// Gives another program (pgbench) this client's connection environment.
    pub fn env_into(&self, c: &mut Command) {
        for (k, v) in &self.envs {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
    }

    /// Runs `sql`; Ok(stdout) if psql exited 0 within [`ATTEMPT_LIMIT`].
    pub fn run(&self, sql: &str) -> Result<String, String> {
        let mut child = match self
            .command()
            .args(["-c", sql])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return Err(format!("psql did not start: {e}")),
        };
        let deadline = Instant::now() + ATTEMPT_LIMIT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("no answer within {ATTEMPT_LIMIT:?}"));
                }
            }
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() { Ok(text(&out.stdout).trim().to_owned()) } else { Err(text(&out.stderr)) }
    }
}

/// One statement a client sent: when, and whether it was acknowledged.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    /// The writer's row id (the reader's attempt number).
    pub id: u64,
    pub start: Instant,
    pub end: Instant,
    pub ok: bool,
}

/// A client thread sending one statement per [`PERIOD`] until stopped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Attempt>>>,
    /// Each distinct first line of a failure, with its count (bounded).
    errors: Arc<Mutex<BTreeMap<String, usize>>>,
    handle: Option<JoinHandle<()>>,
}

/// The writer's table: one row per id it tried.
pub const WRITES_TABLE: &str = "hacompile_acked_writes";

impl Traffic {
    /// Inserts ids 1, 2, 3, ... into [`WRITES_TABLE`] (created here through
    /// `client`), one autocommitted INSERT per psql: an id whose psql exited
    /// 0 is an acknowledged commit.
    pub fn writer(client: Client) -> Traffic {
        client
            .run(&format!("create table if not exists {WRITES_TABLE} (id bigint primary key, at timestamptz not null default now())"))
            .unwrap_or_else(|e| panic!("the writer's table: {e}"));
        Self::spawn(client, |id| format!("insert into {WRITES_TABLE} (id) values ({id})"))
    }

    /// One `select` per period; a failure is a read a client did not get.
    pub fn reader(client: Client) -> Traffic {
        Self::spawn(client, |_| "select pg_is_in_recovery()".to_owned())
    }

    fn spawn(client: Client, statement: fn(u64) -> String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(BTreeMap::new()));
        let (s, l, errs) = (stop.clone(), log.clone(), errors.clone());
        let handle = std::thread::spawn(move || {
            let began = Instant::now();
            for id in 1..=MAX_ATTEMPTS {
                if s.load(Ordering::Relaxed) || began.elapsed() > RUN_LIMIT {
                    break;
                }
                let start = Instant::now();
                let result = client.run(&statement(id));
                let end = Instant::now();
                let ok = result.is_ok();
                if let Err(e) = result {
                    let mut errs = errs.lock().expect("error log");
                    let first = e.lines().next().unwrap_or("").trim().to_owned();
                    if errs.len() < MAX_ERRORS || errs.contains_key(&first) {
                        *errs.entry(first).or_insert(0) += 1;
                    }
                }
                l.lock().expect("attempt log").push(Attempt { id, start, end, ok });
                if let Some(rest) = PERIOD.checked_sub(end - start) {
                    std::thread::sleep(rest);
                }
            }
        });
        Traffic { stop, log, errors, handle: Some(handle) }
    }

    /// The distinct failures so far (their first line) and how often each came.
    pub fn errors(&self) -> BTreeMap<String, usize> {
        self.errors.lock().expect("error log").clone()
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.log.lock().expect("attempt log").clone()
    }

    /// Waits (bounded) until an attempt that started after `after` was
    /// acknowledged; its end, or None past `limit`.
    pub fn wait_ack_after(&self, after: Instant, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let hit =
                self.log.lock().expect("attempt log").iter().rev().find(|a| a.ok && a.start >= after).map(|a| a.end);
            if hit.is_some() || Instant::now() > deadline {
                return hit;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until `n` attempts started from now on were
    /// acknowledged; false past `limit`.
    pub fn wait_acks(&self, n: usize, limit: Duration) -> bool {
        let from = Instant::now();
        let deadline = from + limit;
        loop {
            let count = self
                .log
                .lock()
                .expect("attempt log")
                .iter()
                .rev()
                .take_while(|a| a.start >= from)
                .filter(|a| a.ok)
                .count();
            if count >= n {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the thread (after its attempt in flight) and returns every attempt.
    pub fn stop(mut self) -> Vec<Attempt> {
        self.halt();
        self.attempts()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The ids whose INSERT was acknowledged.
pub fn acknowledged(attempts: &[Attempt]) -> Vec<u64> {
    attempts.iter().filter(|a| a.ok).map(|a| a.id).collect()
}

/// Acknowledged ids that `present` (the ids on the leader) lacks.
pub fn lost(acked: &[u64], present: &BTreeSet<u64>) -> Vec<u64> {
    acked.iter().copied().filter(|id| !present.contains(id)).collect()
}

/// The ids in [`WRITES_TABLE`] on the server `client` reaches.
pub fn present(client: &Client) -> Result<BTreeSet<u64>, String> {
    let out = client.run(&format!("select id from {WRITES_TABLE}"))?;
    out.lines().map(|l| l.trim().parse::<u64>().map_err(|e| format!("{l:?}: {e}"))).collect()
}

/// Write unavailability around a fault: the longest time between two
/// consecutive acknowledgements, from the last one before `fault` to the
/// first at or after `recovered`. It counts the outage wherever it starts
/// (a graceful stop may keep serving for a moment after the signal).
/// None when no acknowledgement lies on either side.
pub fn longest_gap(attempts: &[Attempt], fault: Instant, recovered: Instant) -> Option<Duration> {
    let mut acks: Vec<Instant> = attempts.iter().filter(|a| a.ok).map(|a| a.end).collect();
    acks.sort();
    let first = acks.iter().rposition(|t| *t < fault)?;
    let last = first + acks[first..].iter().position(|t| *t >= recovered)?;
    acks[first..=last].windows(2).map(|w| w[1] - w[0]).max()
}

/// (failed, total) attempts that started in `[from, to]`.
pub fn failures(attempts: &[Attempt], from: Instant, to: Instant) -> (usize, usize) {
    let within: Vec<&Attempt> = attempts.iter().filter(|a| a.start >= from && a.start <= to).collect();
    (within.iter().filter(|a| !a.ok).count(), within.len())
}

/// SIGKILL to a postmaster and every process it started, as the end of its
/// container does: the PID from `postmaster.pid` in `data`. Waits (bounded)
/// until they are gone. Returns false if no live postmaster was found.
pub fn kill_postgres(data: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        .filter(|pid| alive(*pid))
    else {
        return false;
    };
    // Read before the kill: orphans are reparented and no longer listed.
    let children: Vec<u32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for p in std::iter::once(pid).chain(children.iter().copied()) {
        // A child may have exited already: nothing to say then.
        let _ = Command::new("kill").args(["-KILL", &p.to_string()]).stderr(Stdio::null()).status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::iter::once(pid).chain(children.iter().copied()).any(alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/PID; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// pgbench's TPC-B tables at `scale`, created through `client`'s server at `port`.
pub fn pgbench_init(client: &Client, host: &str, port: u16, scale: u32) -> Result<(), String> {
    let out = pgbench(client, host, port)
        .args(["-i", "-q", "-s", &scale.to_string()])
        .output()
        .map_err(|e| format!("pgbench must be installed (tests/setup.sh): {e}"))?;
    if out.status.success() { Ok(()) } else { Err(text(&out.stderr)) }
}

/// TPC-B for `secs` with `clients` connections to `host:port`: the tps
/// pgbench reports without the initial connection time.
pub fn pgbench_tps(client: &Client, host: &str, port: u16, secs: u32, clients: u32) -> Result<f64, String> {
    let out = pgbench(client, host, port)
        .args(["-n", "-T", &secs.to_string(), "-c", &clients.to_string(), "-j", &clients.min(2).to_string()])
        .output()
        .map_err(|e| format!("pgbench must be installed (tests/setup.sh): {e}"))?;
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if !out.status.success() {
        return Err(all);
    }
    tps(&all)
}

/// The tps a pgbench run reports without the initial connection time.
pub fn tps(output: &str) -> Result<f64, String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("tps = ").filter(|_| l.contains("without initial connection")))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench's output:\n{output}"))
}

/// pgbench (bounded: 600 s) with `client`'s connection environment, to `host:port`.
pub fn pgbench(client: &Client, host: &str, port: u16) -> Command {
    let mut c = Command::new("timeout");
    c.args(["600", "pgbench"]);
    client.env_into(&mut c);
    c.env("PGHOST", host).env("PGPORT", port.to_string()).stdin(Stdio::null());
    c
}

/// Median and maximum of durations (None when empty).
pub fn median_max(d: &[Duration]) -> Option<(Duration, Duration)> {
    let mut v = d.to_vec();
    v.sort();
    let max = *v.last()?;
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2 };
    Some((median, max))
}
