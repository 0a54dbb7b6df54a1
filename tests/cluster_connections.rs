//! Client connections on real PostgreSQL 15 and HAProxy 2.6 (loopback),
//! with the compiled settings: a spike beyond `max_connections` queues in
//! HAProxy instead of failing, and clients outside `allow_from` are cut.
#![allow(clippy::print_stdout)] // the figures are part of what these tests show

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::cluster::{Cluster, STATS_USER, psql, servers, sql, stat, stats_csv};

const EXAMPLE: &str = include_str!("../examples/ha-postgres.toml");

/// `maxconn` on the compiled `default-server` line.
fn default_server_maxconn(cfg: &str) -> Option<u32> {
    let line = cfg.lines().map(str::trim).find(|l| l.starts_with("default-server "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).find(|w| w[0] == "maxconn").and_then(|w| w[1].parse().ok())
}

#[test]
fn a_connection_spike_beyond_max_connections_queues_instead_of_failing() {
    const MAX_CONNECTIONS: u32 = 10;
    const CLIENTS: u32 = 12;
    const SLEEP: Duration = Duration::from_secs(2);
    let spec = EXAMPLE
        .replace(
            "stop_grace_period = \"120s\"\n",
            &format!("stop_grace_period = \"120s\"\nmax_connections = {MAX_CONNECTIONS}\n"),
        )
        .replace("check = \"pgsql\"\n", "check = \"pgsql\"\nproxies = 1\n");
    let c = Cluster::start(&spec);
    assert_eq!(sql(c.primary.port, "show max_connections").expect("show"), MAX_CONNECTIONS.to_string());
    let maxconn = default_server_maxconn(&c.compiled_cfg);

    // More sessions than the server takes, all at once, through the write listener.
    let start = Instant::now();
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            psql(c.write_port)
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
        statuses.extend(servers(&csv, "postgres_write").get("pg-primary-1").map(|(s, _)| s.clone()));
        let num = |sv: &str, col: &str| {
            stat(&csv, "postgres_write", sv, col).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
        };
        // Clients wait in the listener's queue while its only server is full.
        qmax = qmax.max(num("BACKEND", "qcur") + num("pg-primary-1", "qcur"));
        smax = smax.max(num("pg-primary-1", "scur"));
        std::thread::sleep(Duration::from_millis(100));
    }
    for child in &mut clients {
        let _ = child.kill();
        let _ = child.wait();
    }
    let total = start.elapsed();
    let done: Vec<_> = finished.into_iter().map(|f| f.expect("every client finished within 60 s")).collect();
    let failed: Vec<&str> = done.iter().filter(|(_, ok, _)| !ok).map(|(_, _, e)| e.trim()).collect();
    assert!(failed.is_empty(), "{} of {CLIENTS} sessions failed: {failed:?}", failed.len());
    assert!(statuses.iter().all(|s| s == "UP"), "the primary left UP during the spike: {statuses:?}");
    let maxconn = maxconn.expect("the compiled default-server has a maxconn");
    assert!(maxconn < MAX_CONNECTIONS, "maxconn {maxconn} below max_connections");
    assert!(smax <= maxconn, "{smax} sessions at once on the primary, above maxconn {maxconn}");
    assert!(total >= SLEEP * 2, "the extra sessions waited their turn (all done in {total:?})");
    assert!(qmax > 0, "sessions were queued in HAProxy");
    let mut waits: Vec<Duration> = done.iter().map(|(t, _, _)| t.saturating_sub(SLEEP)).collect();
    waits.sort();
    println!(
        "\n=== connection spike: {CLIENTS} sessions of pg_sleep({SLEEP:?}), max_connections {MAX_CONNECTIONS} ==="
    );
    println!(
        "  maxconn {maxconn}: all {CLIENTS} succeeded in {total:?}; at most {smax} on the server and {qmax} queued \
         (sampled); primary UP in all {} samples",
        statuses.len()
    );
    println!(
        "  time beyond the query itself: min {:?}, median {:?}, max {:?}",
        waits[0],
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
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
