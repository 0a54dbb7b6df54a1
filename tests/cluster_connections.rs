//! Client connections on real PostgreSQL 15 and HAProxy 2.6 (loopback),
//! with the compiled settings: a spike beyond `max_connections` queues in
//! HAProxy instead of failing, and clients outside `allow_from` are cut.
#![allow(clippy::print_stdout)] // the figures are part of what these tests show

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::cluster::{
    Cluster, PASSWORD, STATS_USER, SUPERUSER, in_recovery, measure, psql, servers, sql, stat, stats_csv,
};

const EXAMPLE: &str = include_str!("../examples/ha-postgres.toml");

/// `maxconn` of the first server of `listener` in the compiled config
/// (each server carries its own: the primary's share is split between the
/// write listener and its backup place in the read listener).
fn server_maxconn(cfg: &str, listener: &str) -> Option<u32> {
    let mut lines = cfg.lines().map(str::trim).skip_while(|l| *l != format!("listen {listener}"));
    let line = lines.find(|l| l.starts_with("server") || l.is_empty())?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "maxconn").and_then(|w| w[1].parse().ok())
}

/// `maxconn` of the primary's place as the read listener's backup.
fn backup_maxconn(cfg: &str) -> Option<u32> {
    let line = cfg.lines().map(str::trim).find(|l| l.starts_with("server") && l.contains(" backup "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "maxconn").and_then(|w| w[1].parse().ok())
}

const MAX_CONNECTIONS: u32 = 10;
const SLEEP: Duration = Duration::from_secs(2);

/// The example with `max_connections = 10` and one proxy.
fn small_server_spec() -> String {
    EXAMPLE
        .replace(
            "stop_grace_period = \"120s\"\n",
            &format!("stop_grace_period = \"120s\"\nmax_connections = {MAX_CONNECTIONS}\n"),
        )
        .replace("check = \"pgsql\"\n", "check = \"pgsql\"\nproxies = 1\n")
}

/// What a burst of sessions met.
struct Spike {
    total: Duration,
    /// (finished after, succeeded, stderr) of each session.
    done: Vec<(Duration, bool, String)>,
    /// The primary's status in `listener`, sampled every 100 ms or so.
    statuses: Vec<String>,
    /// Most sessions seen on the primary, and most waiting in the queue.
    smax: u32,
    qmax: u32,
}

impl Spike {
    fn failed(&self) -> Vec<&str> {
        self.done.iter().filter(|(_, ok, _)| !ok).map(|(_, _, e)| e.trim()).collect()
    }
}

/// Starts every session at once (each `pg_sleep(SLEEP)` through one port,
/// as one user), watching the primary in `listener`'s stats until all end.
fn spike(c: &Cluster, sessions: &[(u16, &str, &str)], listener: &str) -> Spike {
    let start = Instant::now();
    let mut clients: Vec<_> = sessions
        .iter()
        .map(|(port, user, password)| {
            psql(*port)
                .env("PGUSER", user)
                .env("PGPASSWORD", password)
                // Queued clients wait in HAProxy for up to `timeout queue`.
                .env("PGCONNECT_TIMEOUT", "60")
                .args(["-c", &format!("select pg_sleep({})", SLEEP.as_secs())])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("psql")
        })
        .collect();
    let mut finished = vec![None; clients.len()];
    let mut statuses = Vec::new();
    let (mut qmax, mut smax) = (0u32, 0u32);
    while finished.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(60) {
        for (i, child) in clients.iter_mut().enumerate() {
            if finished[i].is_none()
                && let Ok(Some(status)) = child.try_wait()
            {
                let mut err = String::new();
                let _ = child.stderr.take().expect("stderr").read_to_string(&mut err);
                finished[i] = Some((start.elapsed(), status.success(), err));
            }
        }
        let (_, csv) = stats_csv(c.stats_port, Some(STATS_USER));
        statuses.extend(servers(&csv, listener).get("pg-primary-1").map(|(s, _)| s.clone()));
        let num = |sv: &str, col: &str| stat(&csv, listener, sv, col).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        // Clients wait in the listener's queue while its servers are full.
        qmax = qmax.max(num("BACKEND", "qcur") + num("pg-primary-1", "qcur"));
        smax = smax.max(num("pg-primary-1", "scur"));
        std::thread::sleep(Duration::from_millis(100));
    }
    for child in &mut clients {
        let _ = child.kill();
        let _ = child.wait();
    }
    let done = finished.into_iter().map(|f| f.expect("every session ended within 60 s")).collect();
    Spike { total: start.elapsed(), done, statuses, smax, qmax }
}

#[test]
fn a_connection_spike_beyond_max_connections_queues_instead_of_failing() {
    const CLIENTS: u32 = 12;
    let c = Cluster::start(&small_server_spec());
    assert_eq!(sql(c.primary.port, "show max_connections").expect("show"), MAX_CONNECTIONS.to_string());
    let maxconn = server_maxconn(&c.compiled_cfg, "postgres_write");

    // More sessions than the server takes, all at once, through the write listener.
    let sessions: Vec<_> = (0..CLIENTS).map(|_| (c.write_port, SUPERUSER, PASSWORD)).collect();
    let s = spike(&c, &sessions, "postgres_write");
    let failed = s.failed();
    assert!(failed.is_empty(), "{} of {CLIENTS} sessions failed: {failed:?}", failed.len());
    assert!(s.statuses.iter().all(|st| st == "UP"), "the primary left UP during the spike: {:?}", s.statuses);
    let maxconn = maxconn.expect("the compiled primary has a maxconn");
    assert!(maxconn < MAX_CONNECTIONS, "maxconn {maxconn} below max_connections");
    assert!(s.smax <= maxconn, "{} sessions at once on the primary, above maxconn {maxconn}", s.smax);
    assert!(s.total >= SLEEP * 2, "the extra sessions waited their turn (all done in {:?})", s.total);
    assert!(s.qmax > 0, "sessions were queued in HAProxy");
    let mut waits: Vec<Duration> = s.done.iter().map(|(t, _, _)| t.saturating_sub(SLEEP)).collect();
    waits.sort();
    println!(
        "\n=== connection spike: {CLIENTS} sessions of pg_sleep({SLEEP:?}), max_connections {MAX_CONNECTIONS} ==="
    );
    println!(
        "  maxconn {maxconn}: all {CLIENTS} succeeded in {:?}; at most {} on the server and {} queued \
         (sampled); primary UP in all {} samples",
        s.total,
        s.smax,
        s.qmax,
        s.statuses.len()
    );
    println!(
        "  time beyond the query itself: min {:?}, median {:?}, max {:?}",
        waits[0],
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
}

/// The primary is a server of both listeners (the read listener's backup),
/// each with its own `maxconn`; while no replica is up both send it
/// sessions, twice what its `max_connections` budget was cut for.
#[test]
fn a_spike_on_both_listeners_while_the_replica_is_down_queues_instead_of_failing() {
    let mut c = Cluster::start(&small_server_spec());
    let writes = server_maxconn(&c.compiled_cfg, "postgres_write").expect("maxconn");
    let reads = backup_maxconn(&c.compiled_cfg).expect("the backup's maxconn");
    assert!(writes + reads + 2 + 3 < MAX_CONNECTIONS + 1, "both listeners and two checks fit the budget");
    // Applications connect as an ordinary role: the superuser reserve is not theirs.
    let app_password = "App-pw-for-tests-1";
    sql(c.primary.port, &format!("create role app login password '{app_password}'")).expect("role");
    c.replica.stop();
    measure("reads on the primary", Duration::from_secs(40), || in_recovery(c.read_port).map(|r| !r));
    // More than either listener's share, on both at once.
    let per_listener = 2 * (writes + reads) as usize;
    let sessions: Vec<_> = [c.write_port, c.read_port]
        .into_iter()
        .flat_map(|port| std::iter::repeat_n((port, "app", app_password), per_listener))
        .collect();
    let s = spike(&c, &sessions, "postgres_write");
    let failed = s.failed();
    assert!(
        failed.is_empty(),
        "{} of {} sessions failed (maxconn {writes} for writes and {reads} for reads, max_connections {MAX_CONNECTIONS}): \
         {failed:?}",
        failed.len(),
        sessions.len()
    );
    assert!(s.statuses.iter().all(|st| st == "UP"), "the primary left UP: {:?}", s.statuses);
}

#[test]
fn clients_outside_allow_from_are_cut_at_connect() {
    let spec = EXAMPLE.replace("check = \"pgsql\"\n", "check = \"pgsql\"\nallow_from = [\"10.0.0.0/8\"]\n");
    let c = Cluster::start(&spec);
    let acl: Vec<&str> = c.compiled_cfg.lines().filter(|l| l.trim().starts_with("acl db_clients ")).collect();
    assert!(!acl.is_empty() && acl.iter().all(|l| !l.contains("127.0.0.0/8")), "loopback is not allowed: {acl:?}");
    for port in [c.write_port, c.read_port] {
        let err = sql(port, "select 1").expect_err("refused");
        assert!(err.contains("Connection reset by peer") || err.contains("server closed the connection"), "{err}");
        // The connection is accepted by the kernel and closed at once, before any byte.
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 16];
        let start = Instant::now();
        let n = s.read(&mut buf);
        assert!(matches!(n, Ok(0)) || n.is_err(), "closed, not answered: {n:?}");
        assert!(start.elapsed() < Duration::from_secs(1), "closed at once, not timed out");
    }
    // The servers themselves are fine: the proxy refused.
    assert_eq!(sql(c.primary.port, "select 1").expect("direct"), "1");
}
