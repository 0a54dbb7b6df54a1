//! Failover bench (issue #12 item 8): the pinned and the Patroni topologies
//! measured in the same run, on loopback with real processes (PostgreSQL 15,
//! HAProxy 2.6, Patroni 3.0.2, etcd 3.4), through the compiled write and read
//! ports. Run it with `benches/failover.sh [KILLS]`.
//!
//! Per topology: write unavailability after SIGKILL of the primary, after a
//! graceful stop and after a switchover; acknowledged writes lost; failed
//! reads during the failovers; pgbench TPC-B through the write port against
//! direct to the leader. The floors of the issue are printed beside the
//! figures; a floor not met does not fail the run (only a broken cluster does).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench prints its figures

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::cluster::{Cluster, PRIMARY, sql, streaming, wait_for};
use support::patroni::Patroni;
use support::traffic::{self, Attempt, Client, Traffic, median_max};

const PINNED_SPEC: &str = include_str!("../examples/ha-postgres.toml");
const PATRONI_SPEC: &str = include_str!("../examples/ha-patroni.toml");
/// How long one event may take to settle before the bench gives up.
const SETTLE: Duration = Duration::from_secs(180);
const PGBENCH_SCALE: u32 = 10;
const PGBENCH_SECS: u32 = 20;
const PGBENCH_CLIENTS: u32 = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// The leader's processes killed and not started again until another
    /// member took the lead: the node is gone (the SIGKILL floor).
    Lost,
    Kill,
    Graceful,
    Switchover,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Lost => "SIGKILL, stays down",
            Kind::Kill => "SIGKILL, restarted",
            Kind::Graceful => "graceful stop",
            Kind::Switchover => "switchover",
        }
    }
}

/// One fault and what the clients saw from it until the cluster was whole again.
struct Event {
    kind: Kind,
    /// Longest time without an acknowledged write around the fault.
    gap: Duration,
    reads_failed: usize,
    reads_total: usize,
    writes_failed: usize,
    /// Acknowledged ids missing on the leader after this event (cumulative).
    lost_so_far: usize,
    note: String,
}

struct Pgbench {
    through_port: f64,
    direct: f64,
}

/// One topology's figures.
struct Row {
    name: String,
    events: Vec<Event>,
    acked: usize,
    lost: usize,
    pgbench: Option<Pgbench>,
    /// Said under the table (how the events were run).
    notes: Vec<String>,
}

impl Row {
    fn gaps(&self, kind: Kind) -> Vec<Duration> {
        self.events.iter().filter(|e| e.kind == kind).map(|e| e.gap).collect()
    }

    fn reads(&self, kind: Kind) -> (usize, usize) {
        self.events.iter().filter(|e| e.kind == kind).fold((0, 0), |(f, t), e| (f + e.reads_failed, t + e.reads_total))
    }
}

fn log(line: &str) {
    eprintln!("[failover] {line}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A compose duration as the stack has it ("10s", "500ms", "1m").
fn duration(s: &str) -> Duration {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("a duration: {s}"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => panic!("a duration in ms, s or m: {s}"),
    }
}

fn restart_delay(site: &support::cluster::Site, service: &str) -> Duration {
    let deploy = site.service(service).deploy.as_ref().unwrap_or_else(|| panic!("{service} has a deploy section"));
    duration(&deploy.restart_policy.delay)
}

/// Acknowledged writes before each fault, so that commits are in flight when it comes.
const STEADY_ACKS: usize = 40;

fn steady(writer: &Traffic) {
    assert!(
        writer.wait_acks(STEADY_ACKS, SETTLE),
        "{STEADY_ACKS} writes acknowledged within {SETTLE:?} before a fault"
    );
}

/// Measures one event from its fault to `recovered` (the cluster whole
/// again): waits for an acknowledged write after `recovered`, then reads
/// the figures from the clients' records and the ids on the leader.
fn finish_event(
    kind: Kind,
    fault: Instant,
    recovered: Instant,
    writer: &Traffic,
    reader: &Traffic,
    leader: &Client,
    note: String,
) -> Event {
    let acked_at = writer
        .wait_ack_after(recovered, SETTLE)
        .unwrap_or_else(|| panic!("{}: no write acknowledged within {SETTLE:?} after recovery", kind.label()));
    let writes = writer.attempts();
    let reads = reader.attempts();
    let gap = traffic::longest_gap(&writes, fault, recovered).expect("acknowledgements on both sides of the fault");
    let (reads_failed, reads_total) = traffic::failures(&reads, fault, acked_at);
    let (writes_failed, _) = traffic::failures(&writes, fault, acked_at);
    let lost_so_far = lost(&writes, leader);
    Event { kind, gap, reads_failed, reads_total, writes_failed, lost_so_far, note }
}

/// Acknowledged ids (of attempts ended before the query) missing on the leader.
fn lost(writes: &[Attempt], leader: &Client) -> usize {
    let acked = traffic::acknowledged(writes);
    let present = traffic::present(leader).unwrap_or_else(|e| panic!("the ids on the leader: {e}"));
    traffic::lost(&acked, &present).len()
}

fn describe(e: &Event) -> String {
    format!(
        "{}: {} without an acknowledged write ({} writes failed), {}/{} reads failed, {} acknowledged writes missing so far{}",
        e.kind.label(),
        secs(e.gap),
        e.writes_failed,
        e.reads_failed,
        e.reads_total,
        e.lost_so_far,
        if e.note.is_empty() { String::new() } else { format!("; {}", e.note) }
    )
}

fn pgbench(client: &Client, through: u16, leader: (&str, u16)) -> Pgbench {
    traffic::pgbench_init(client, leader.0, leader.1, PGBENCH_SCALE).unwrap_or_else(|e| panic!("pgbench -i: {e}"));
    // A short unreported run first, so neither measured run pays for a cold cache.
    traffic::pgbench_tps(client, leader.0, leader.1, 5, PGBENCH_CLIENTS)
        .unwrap_or_else(|e| panic!("pgbench warm-up: {e}"));
    // Direct, port, port, direct (ABBA), each figure the mean of its two
    // runs, so that neither side gains from running later.
    let run = |host: &str, port: u16, what: &str| {
        traffic::pgbench_tps(client, host, port, PGBENCH_SECS, PGBENCH_CLIENTS)
            .unwrap_or_else(|e| panic!("pgbench {what}: {e}"))
    };
    let d1 = run(leader.0, leader.1, "direct");
    let p1 = run("127.0.0.1", through, "through the write port");
    let p2 = run("127.0.0.1", through, "through the write port");
    let d2 = run(leader.0, leader.1, "direct");
    let (through_port, direct) = ((p1 + p2) / 2.0, (d1 + d2) / 2.0);
    Pgbench { through_port, direct }
}

// ------------------------------------------------------------------ pinned

/// The pinned topology: no automatic failover. Swarm restarts a dead
/// primary on its node after restart_policy.delay; the harness does the same.
fn pinned(kills: usize) -> Row {
    log("pinned: starting primary, replica and HAProxy");
    let mut c = Cluster::start(PINNED_SPEC);
    let delay = restart_delay(&c.site, PRIMARY);
    let leader = Client::of(&support::cluster::psql(c.primary.port));
    let writer = Traffic::writer(Client::of(&support::cluster::psql(c.write_port)));
    let reader = Traffic::reader(Client::of(&support::cluster::psql(c.read_port)));
    let mut events = Vec::new();
    for kind in [Kind::Kill, Kind::Graceful] {
        for i in 1..=kills {
            steady(&writer);
            let fault = Instant::now();
            let restart_at = match kind {
                Kind::Kill => {
                    assert!(traffic::kill_postgres(&c.primary.data), "a live postmaster to kill");
                    fault + delay
                }
                _ => {
                    // The image's stop signal (SIGINT: fast shutdown); swarm
                    // restarts the task `delay` after it exited.
                    c.primary.stop();
                    Instant::now() + delay
                }
            };
            std::thread::sleep(restart_at.saturating_duration_since(Instant::now()));
            c.restart_primary();
            let primary = c.primary.port;
            wait_for("the replica to stream again", SETTLE, || streaming(primary) == 1);
            let recovered = Instant::now();
            let e = finish_event(kind, fault, recovered, &writer, &reader, &leader, String::new());
            log(&format!("pinned {i}/{kills} {}", describe(&e)));
            events.push(e);
        }
    }
    report_errors("pinned", &writer, &reader);
    let writes = writer.stop();
    drop(reader);
    let lost = lost(&writes, &leader);
    let acked = traffic::acknowledged(&writes).len();
    log("pinned: pgbench");
    let bench = pgbench(&leader, c.write_port, ("127.0.0.1", c.primary.port));
    let _ = sql(c.primary.port, "select 1");
    Row {
        name: "pinned".into(),
        events,
        acked,
        lost,
        pgbench: Some(bench),
        notes: vec![format!(
            "pinned: no automatic failover; the killed or stopped primary is started again on its own data \
             after the compiled restart_policy.delay ({}), as swarm does on the same node; graceful stop = \
             SIGINT (the image's stop signal)",
            secs(delay)
        )],
    }
}

// ------------------------------------------------------------------ patroni

/// A value of the compiled patroni.yml of the first member.
fn patroni_setting(p: &Patroni, path: &[&str]) -> serde_yaml_ng::Value {
    let yml = std::fs::read_to_string(&p.members[0].compiled_config).expect("the compiled patroni.yml");
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yml).expect("patroni.yml parses");
    for key in path {
        v = v.get(*key).unwrap_or_else(|| panic!("patroni.yml has {}", path.join("."))).clone();
    }
    v
}

/// The Patroni topology as compiled from examples/ha-patroni.toml, with
/// `synchronous_mode` as given: three members, three etcd members, HAProxy.
/// A killed or stopped member is started again after the compiled
/// restart_policy.delay, as swarm does, so it rejoins.
fn patroni(kills: usize, synchronous_mode: &str) -> (Row, Duration) {
    let spec = PATRONI_SPEC.replace("synchronous_mode = \"on\"", &format!("synchronous_mode = \"{synchronous_mode}\""));
    assert!(spec.contains(&format!("synchronous_mode = \"{synchronous_mode}\"")), "the example sets synchronous_mode");
    let name = format!("patroni sync {synchronous_mode}");
    log(&format!("{name}: starting etcd, Patroni members and HAProxy"));
    let mut p = Patroni::start(&spec);
    let all: Vec<usize> = (0..p.members.len()).collect();
    let delay = restart_delay(&p.site, &p.members[0].name);
    let ttl = Duration::from_secs(patroni_setting(&p, &["bootstrap", "dcs", "ttl"]).as_u64().expect("ttl in seconds"));
    let scope = patroni_setting(&p, &["scope"]).as_str().expect("scope").to_owned();
    let writer = Traffic::writer(Client::of(&p.psql(p.write_port)));
    let reader = Traffic::reader(Client::of(&p.psql(p.read_port)));
    let mut events = Vec::new();
    for kind in [Kind::Lost, Kind::Kill, Kind::Graceful, Kind::Switchover] {
        for i in 1..=kills {
            steady(&writer);
            let old = p.wait_leader(SETTLE);
            let old_name = p.members[old].name.clone();
            let fault;
            match kind {
                Kind::Lost => {
                    // Measured until another member leads and takes writes;
                    // the old one returns only after that (below).
                    fault = Instant::now();
                    p.members[old].kill();
                    let others: Vec<usize> = all.iter().copied().filter(|&m| m != old).collect();
                    p.wait_ready(&others, SETTLE);
                }
                Kind::Kill => {
                    fault = Instant::now();
                    p.members[old].kill();
                    std::thread::sleep((fault + delay).saturating_duration_since(Instant::now()));
                    p.members[old].start();
                }
                Kind::Graceful => {
                    fault = Instant::now();
                    p.members[old].stop(SETTLE);
                    std::thread::sleep(delay);
                    p.members[old].start();
                }
                Kind::Switchover => {
                    // In synchronous mode Patroni switches over to the synchronous standby only.
                    let candidate = if p.synchronous_mode() {
                        let mut sync = None;
                        wait_for("a synchronous standby", SETTLE, || {
                            sync = p.sync_standby();
                            sync.is_some()
                        });
                        sync.expect("a synchronous standby")
                    } else {
                        (old + 1) % p.members.len()
                    };
                    let candidate = p.members[candidate].name.clone();
                    fault = Instant::now();
                    let out = p.members[old].ctl(&[
                        "switchover",
                        "--leader",
                        &old_name,
                        "--candidate",
                        &candidate,
                        "--force",
                        &scope,
                    ]);
                    let said = format!("{}{}", support::text(&out.stdout), support::text(&out.stderr));
                    // patronictl 3.0.2 exits 0 even when it is refused: read what it says.
                    assert!(
                        said.contains("Successfully switched over"),
                        "switchover {old_name} -> {candidate}:\n{said}"
                    );
                }
            }
            if kind != Kind::Lost {
                p.wait_ready(&all, SETTLE);
            }
            let new = p.wait_leader(SETTLE);
            p.wait_routing(new, SETTLE);
            let recovered = Instant::now();
            let leader = Client::of(&p.members[new].psql());
            let note = format!("leader {old_name} -> {}", p.members[new].name);
            let e = finish_event(kind, fault, recovered, &writer, &reader, &leader, note);
            if kind == Kind::Lost {
                // The node returns: the old leader rejoins before the next event.
                p.members[old].start();
                p.wait_ready(&all, SETTLE);
            }
            log(&format!("{name} {i}/{kills} {}", describe(&e)));
            events.push(e);
        }
    }
    report_errors(&name, &writer, &reader);
    let writes = writer.stop();
    drop(reader);
    let new = p.wait_leader(SETTLE);
    let leader = Client::of(&p.members[new].psql());
    let lost = lost(&writes, &leader);
    let acked = traffic::acknowledged(&writes).len();
    let bench = if synchronous_mode == "on" {
        log(&format!("{name}: pgbench"));
        let ip = p.members[new].ip.to_string();
        Some(pgbench(&Client::of(&p.psql(p.write_port)), p.write_port, (&ip, p.members[new].pg_port)))
    } else {
        None
    };
    let mut notes = Vec::new();
    if synchronous_mode == "on" {
        notes.push(format!(
            "patroni: SIGKILL = Patroni and the postmaster of the leader killed at once, either kept down until \
             another member leads (its node lost) or started again after the delay; graceful stop = SIGTERM \
             to Patroni (the service's stop_signal); the member is started again after the compiled \
             restart_policy.delay ({}) and rejoins; switchover = `hacompile-patroni-entrypoint.sh ctl switchover` \
             on the leader; ttl {}, no watchdog on loopback. A killed member back after the delay, before its \
             leader key expires, may take the lead again (see `leader X -> X` below): that figure is a restart, \
             not a promotion",
            secs(delay),
            secs(ttl)
        ));
    }
    (Row { name, events, acked, lost, pgbench: bench, notes }, ttl)
}

fn report_errors(name: &str, writer: &Traffic, reader: &Traffic) {
    for (who, t) in [("writer", writer), ("reader", reader)] {
        for (e, n) in t.errors() {
            log(&format!("{name} {who} failure x{n}: {e}"));
        }
    }
}

// ------------------------------------------------------------------ output

fn print(rows: &[Row], kills: usize, ttl: Option<Duration>) {
    println!();
    println!("== failover bench: {kills} events of each kind per topology, loopback, real processes ==");
    for line in versions() {
        println!("  {line}");
    }
    println!(
        "  writer: one INSERT of the next id per {} ms at most through the write port, a new psql connection each, \
         {} s per attempt at most; unavailability = longest time between two acknowledged writes around the fault",
        traffic::PERIOD.as_millis(),
        traffic::ATTEMPT_LIMIT.as_secs()
    );
    println!("  reader: one SELECT per {} ms at most through the read port, the same way", traffic::PERIOD.as_millis());

    println!();
    println!("write unavailability through the write port, median / max over the events");
    println!(
        "  {:<18} {:<22} {:<20} {:<18} {:<18}",
        "topology", "SIGKILL, stays down", "SIGKILL, restarted", "graceful stop", "switchover"
    );
    for r in rows {
        let cell = |k: Kind| match median_max(&r.gaps(k)) {
            Some((m, x)) => format!("{} / {}", secs(m), secs(x)),
            None if matches!(k, Kind::Switchover | Kind::Lost) && r.name == "pinned" => "n/a (runbook)".into(),
            None => "-".into(),
        };
        println!(
            "  {:<18} {:<22} {:<20} {:<18} {:<18}",
            r.name,
            cell(Kind::Lost),
            cell(Kind::Kill),
            cell(Kind::Graceful),
            cell(Kind::Switchover)
        );
    }
    if let Some(ttl) = ttl {
        let floor_kill = ttl + Duration::from_secs(3);
        let floor_fast = Duration::from_secs(5);
        println!(
            "  floors (issue #12, for automatic failover): SIGKILL (stays down) median <= ttl + 3 s = {}; graceful stop and \
             switchover <= {}",
            secs(floor_kill),
            secs(floor_fast)
        );
        for r in rows.iter().filter(|r| r.name != "pinned") {
            let word = |ok: bool| if ok { "PASS" } else { "FAIL" };
            // The floor is about failover: the leader's node gone, not a restart.
            let kill = median_max(&r.gaps(Kind::Lost)).map(|(m, _)| m <= floor_kill);
            let graceful = median_max(&r.gaps(Kind::Graceful)).map(|(m, _)| m <= floor_fast);
            let switch = median_max(&r.gaps(Kind::Switchover)).map(|(m, _)| m <= floor_fast);
            println!(
                "    {:<20} SIGKILL {}   graceful stop {}   switchover {}",
                r.name,
                kill.map_or("-", word),
                graceful.map_or("-", word),
                switch.map_or("-", word)
            );
        }
    }

    println!();
    println!("acknowledged writes lost (acknowledged ids missing on the leader after all events)");
    for r in rows {
        let floor = if r.name == "patroni sync on" {
            format!("   floor 0: {}", if r.lost == 0 { "PASS" } else { "FAIL" })
        } else {
            String::new()
        };
        println!("  {:<22} {} of {} acknowledged{floor}", r.name, r.lost, r.acked);
    }

    println!();
    println!("failed reads through the read port, from each fault until the cluster was whole again (failed/attempts)");
    println!(
        "  {:<18} {:<22} {:<20} {:<18} {:<18}",
        "topology", "SIGKILL, stays down", "SIGKILL, restarted", "graceful stop", "switchover"
    );
    for r in rows {
        let cell = |k: Kind| match r.reads(k) {
            (_, 0) => "n/a".to_owned(),
            (f, t) => format!("{f}/{t}"),
        };
        println!(
            "  {:<18} {:<22} {:<20} {:<18} {:<18}",
            r.name,
            cell(Kind::Lost),
            cell(Kind::Kill),
            cell(Kind::Graceful),
            cell(Kind::Switchover)
        );
    }

    println!();
    println!(
        "pgbench TPC-B (-s {PGBENCH_SCALE}, -T {PGBENCH_SECS}, -c {PGBENCH_CLIENTS}), tps without connection time, \
         mean of two runs each (direct, port, port, direct), writer and reader stopped"
    );
    println!("  {:<22} {:>14} {:>14} {:>8}", "topology", "write port", "direct", "ratio");
    for r in rows {
        if let Some(b) = &r.pgbench {
            println!("  {:<22} {:>14.1} {:>14.1} {:>8.2}", r.name, b.through_port, b.direct, b.through_port / b.direct);
        }
    }

    println!();
    for r in rows {
        for n in &r.notes {
            println!("  note: {n}");
        }
    }
    println!();
    println!("events one by one");
    for r in rows {
        for (i, e) in r.events.iter().enumerate() {
            println!("  {:<22} {:>2} {}", r.name, i + 1, describe(e));
        }
    }
}

fn versions() -> Vec<String> {
    let first_line = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .map(|o| support::text(&o.stdout).lines().next().unwrap_or("").trim().to_owned())
            .unwrap_or_else(|e| format!("{program}: {e}"))
    };
    vec![
        first_line(&format!("{}/postgres", support::cluster::PG_BIN), &["--version"]),
        first_line("haproxy", &["-v"]),
        first_line("patroni", &["--version"]),
        first_line("etcd", &["--version"]),
    ]
}

fn main() {
    // `cargo bench` adds `--bench`; the first number is the count.
    let kills: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    assert!(kills >= 1, "at least one event of each kind");
    let started = Instant::now();
    let mut rows = vec![pinned(kills)];
    let (on, ttl) = patroni(kills, "on");
    rows.push(on);
    rows.push(patroni(kills, "off").0);
    print(&rows, kills, Some(ttl));
    log(&format!("done in {}", secs(started.elapsed())));
}
