//! The compiled `patroni` topology on real processes on loopback: etcd 3.4
//! ×3, Patroni 3.0.2 running PostgreSQL 15, HAProxy 2.6, each started from
//! what `hacompile build` wrote (tests/support/patroni.rs). A leader crash,
//! a lagging replica, a member on a foreign data directory, a switchover
//! with and without REST API credentials, the loss of etcd quorum, and a
//! member rebuilt from the pgBackRest repository.
//! Each test prints what it measured (`cargo nextest run --no-capture`);
//! assertions are on correctness only, with generous bounds that catch a hang.
#![allow(clippy::print_stdout)] // the figures are part of what these tests show

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::patroni::{
    Patroni, Probe, READ_PRIMARY_BACKEND, REPLICAS_BACKEND, WRITE_BACKEND, longest_gap, psql_through, read_lag_limit,
    server_name, streaming, succeeds_within, tail,
};

/// The bundled example: three members, three etcd members, synchronous
/// mode on, read_lag_limit 16MB, and the emitted default timing (ttl 20,
/// loop_wait 5, retry_timeout 5).
const SPEC: &str = include_str!("../examples/ha-patroni.toml");

/// Bounds that only catch a hang; the figures are printed, not asserted.
const HANG: Duration = Duration::from_secs(120);
const PSQL_LIMIT: Duration = Duration::from_secs(10);

fn report(title: &str, lines: &[String]) {
    println!("\n=== {title} ===");
    for l in lines {
        println!("  {l}");
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// An insert of `n` into `acked` through the write port; true when committed and acknowledged.
fn insert_through(port: u16, database: String) -> impl Fn(u64) -> bool + Send + 'static {
    move |n| {
        let mut c = psql_through(port, &database);
        c.args(["-c", &format!("insert into acked (id) values ({n})")]);
        succeeds_within(c, PSQL_LIMIT)
    }
}

fn read_through(port: u16, database: String) -> impl Fn(u64) -> bool + Send + 'static {
    move |_| {
        let mut c = psql_through(port, &database);
        c.args(["-c", "select count(*) from acked"]);
        succeeds_within(c, PSQL_LIMIT)
    }
}

fn ids(p: &Patroni, member: usize) -> BTreeSet<u64> {
    try_ids(p, member).expect("read acked ids")
}

fn try_ids(p: &Patroni, member: usize) -> Option<BTreeSet<u64>> {
    let out = p.members[member].sql("select id from acked").ok()?;
    Some(out.lines().map(|l| l.trim().parse().expect("an id")).collect())
}

#[test]
fn a_leader_crash_fails_over_without_losing_acknowledged_writes_and_the_old_leader_rejoins() {
    let mut p = Patroni::start(SPEC);
    let old = p.leader().expect("a leader");
    p.sql(p.write_port, "create table acked (id bigint primary key)").expect("create through the write port");
    let writes = Probe::start(Duration::from_millis(50), HANG * 2, insert_through(p.write_port, p.database.clone()));
    let reads = Probe::start(Duration::from_millis(100), HANG * 2, read_through(p.read_port, p.database.clone()));
    std::thread::sleep(Duration::from_secs(2));

    let killed = Instant::now();
    p.members[old].kill();
    let mut first = None;
    wait(&format!("a write accepted through the write port after {} was killed", p.members[old].name), || {
        first = writes.first_ok_after(killed);
        first.is_some()
    });
    let first = first.expect("a write after the kill");
    std::thread::sleep(Duration::from_secs(2));
    let writes = writes.finish();
    let reads = reads.finish();

    let new = p.leader().expect("one new leader");
    assert_ne!(new, old, "another member leads");
    let acked: BTreeSet<u64> = writes.iter().filter(|a| a.ok).map(|a| a.n).collect();
    let present = ids(&p, new);
    let missing: Vec<&u64> = acked.difference(&present).collect();
    assert!(missing.is_empty(), "acknowledged writes missing on the new leader: {missing:?}");
    let unacked_present = present.difference(&acked).count();
    let during = |a: &&support::patroni::Attempt| a.start >= killed && a.end <= first.end;
    let reads_during: Vec<_> = reads.iter().filter(during).collect();

    // The old leader restarts (as swarm restarts its task) and rejoins by itself.
    let restarted = Instant::now();
    p.members[old].start();
    let old_name = p.members[old].name.clone();
    wait(&format!("{old_name} to stream from the new leader"), || {
        assert!(p.members[old].running(), "{old_name} exited:\n{}", tail(&p.members[old].log));
        p.members[old].is_replica() && streaming(&p.members[new]) == p.members.len() - 1
    });
    let rejoined = restarted.elapsed();
    let role = p.members[old].role();
    assert_eq!(role, "replica", "{old_name} rejoined as a replica");
    assert_eq!(
        p.members[old].sql("select pg_is_in_recovery()").as_deref(),
        Ok("t"),
        "{old_name}'s PostgreSQL is in recovery"
    );
    let want = acked.len().to_string();
    wait(&format!("{old_name} to have every acknowledged row"), || {
        try_ids(&p, old).is_some_and(|have| have.is_superset(&acked))
    });
    let log = p.members[old].log_text();
    let rewound = log.contains("running pg_rewind");
    // Patroni logs the rewind's connection: it names the rewind role, never
    // the superuser (whose name is a secret of the spec).
    for line in log.lines().filter(|l| l.contains("pg_rewind") && l.contains("user=")) {
        assert!(line.contains("user=hacompile_rewind"), "{line}");
    }
    if let Some(line) = log.lines().find(|l| l.contains(support::cluster::SUPERUSER)) {
        panic!("the superuser's name in the member's log: {line}");
    }

    report(
        "leader SIGKILL (Patroni + postmaster), synchronous_mode on",
        &[
            format!("killed {old_name}; new leader {}", p.members[new].name),
            format!("first write accepted through the write port {} after the kill", secs(first.end - killed)),
            format!(
                "writes: {} attempted, {} acknowledged, 0 of them missing; {unacked_present} unacknowledged but committed",
                writes.len(),
                want
            ),
            format!(
                "reads through the read port during the failover: {} ok, {} failed",
                reads_during.iter().filter(|a| a.ok).count(),
                reads_during.iter().filter(|a| !a.ok).count()
            ),
            format!(
                "{old_name} restarted: streaming replica again after {} ({})",
                secs(rejoined),
                if rewound { "Patroni ran pg_rewind" } else { "without pg_rewind" }
            ),
        ],
    );
}

#[test]
fn a_replica_past_read_lag_limit_leaves_the_read_pool_until_it_catches_up() {
    let p = Patroni::start(SPEC);
    let leader = p.leader().expect("a leader");
    let limit = read_lag_limit(&std::fs::read_to_string(p.site.out.join("haproxy.cfg")).expect("haproxy.cfg"));
    let lagging = (0..p.members.len()).find(|i| *i != leader).expect("a replica");
    let others: Vec<usize> = (0..p.members.len()).filter(|i| *i != leader && *i != lagging).collect();
    let name = p.members[lagging].name.clone();
    let server = server_name(&name);

    let startup = p.members[lagging].stall_replay();
    let paused = Instant::now();
    let written = p.members[leader].write_wal(2 * limit);
    let stats = p.stats_port;
    wait(&format!("{name} to leave {REPLICAS_BACKEND}"), || {
        p.servers(REPLICAS_BACKEND).get(&server).is_some_and(|s| s == "DOWN")
    });
    let left = paused.elapsed();
    // Still a replica, just too far behind: only the lag check fails.
    assert!(p.members[lagging].is_replica(), "{name} is still a running replica");
    let lag_check = format!("/replica?lag={limit}");
    assert_eq!(p.members[lagging].rest("OPTIONS", &lag_check), 503, "{name} fails {lag_check}");
    let up = support::patroni::up_servers(stats, REPLICAS_BACKEND);
    for o in &others {
        assert!(up.contains(&server_name(&p.members[*o].name)), "the other replicas stay in the read pool: {up:?}");
    }
    // Reads keep working, and none lands on the lagging member.
    let mut landed = BTreeSet::new();
    for _ in 0..10 {
        let at = p.sql(p.read_port, "select inet_server_addr()").expect("a read through the read port");
        landed.insert(at);
    }
    assert!(!landed.contains(&p.members[lagging].ip.to_string()), "a read reached {name}: {landed:?}");

    p.members[lagging].resume_replay(startup);
    let resumed = Instant::now();
    wait(&format!("{name} to return to {REPLICAS_BACKEND}"), || {
        p.servers(REPLICAS_BACKEND).get(&server).is_some_and(|s| s == "UP")
    });
    let back = resumed.elapsed();
    report(
        "replica past read_lag_limit",
        &[
            format!(
                "read_lag_limit {limit} bytes; {} MB of WAL written with {name}'s replay stalled (SIGSTOP)",
                written >> 20
            ),
            format!("{name} DOWN in {REPLICAS_BACKEND} {} after the pause", secs(left)),
            format!("reads during its absence went to {landed:?}"),
            format!("{name} UP again {} after replay resumed", secs(back)),
        ],
    );
}

#[test]
fn a_member_on_another_clusters_data_directory_never_serves() {
    let mut p = Patroni::compile(SPEC);
    let foreign = p.members.len() - 1;
    p.etcd.start_all();
    p.etcd.wait_healthy(HANG);
    let started: Vec<usize> = (0..foreign).collect();
    for i in &started {
        p.members[*i].start();
    }
    p.wait_ready(&started, HANG);
    p.start_haproxy();
    let leader = p.leader().expect("a leader");
    let name = p.members[foreign].name.clone();
    let server = server_name(&name);

    // Another PostgreSQL cluster's data directory (its own system identifier)
    // where the member's volume is.
    let data = p.members[foreign].data.clone();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
        .arg(format!("{}/initdb", support::cluster::PG_BIN))
        .args(["-D", support::cluster::utf8(&data), "--auth=trust", "-U", "postgres"])
        .output()
        .expect("initdb");
    assert!(out.status.success(), "initdb: {}", support::text(&out.stderr));

    let mut tries = Vec::new();
    for round in 1..=2 {
        // Twice, as swarm restarts a task that exited.
        p.members[foreign].start();
        let started = Instant::now();
        let mut polls = 0;
        let status = loop {
            let m = &p.members[foreign];
            assert_ne!(m.rest("OPTIONS", "/primary"), 200, "{name} answered 200 on /primary");
            assert_ne!(m.rest("OPTIONS", "/replica"), 200, "{name} answered 200 on /replica");
            let csv = p.stats();
            for backend in [WRITE_BACKEND, REPLICAS_BACKEND, READ_PRIMARY_BACKEND] {
                let s = support::cluster::server_column(&csv, backend, "status");
                assert_eq!(s.get(&server).map(String::as_str), Some("DOWN"), "{name} in {backend}");
            }
            polls += 1;
            if let Some(status) = p.members[foreign].wait_exit(Duration::from_millis(300)) {
                break status;
            }
            assert!(started.elapsed() < HANG, "{name} neither served nor exited in {HANG:?}");
        };
        assert!(!status.success(), "{name}'s Patroni exits with a failure");
        let log = p.members[foreign].log_text();
        assert!(
            log.contains("system ID mismatch"),
            "{name} refused for the system identifier:\n{}",
            tail(&p.members[foreign].log)
        );
        assert_eq!(p.members[foreign].postmaster_pid(), None, "no postmaster left running on the foreign data");
        tries.push(format!("start {round}: exited ({status}) after {} and {polls} polls", secs(started.elapsed())));
    }
    assert_eq!(p.leader(), Some(leader), "the cluster kept its leader");
    assert_eq!(streaming(&p.members[leader]), foreign - 1, "the cluster kept its replicas");
    tries.push("never 200 on /primary or /replica; DOWN in every HAProxy backend throughout".into());
    report(&format!("{name} on another cluster's data directory"), &tries);
}

#[test]
fn a_switchover_through_the_entrypoint_needs_the_rest_api_credentials() {
    let mut p = Patroni::start(SPEC);
    let old = p.leader().expect("a leader");
    // Patroni in synchronous mode switches over to the synchronous standby only.
    let mut sync = None;
    wait("Patroni to name a synchronous standby", || {
        sync = p.sync_standby();
        sync.is_some()
    });
    let candidate = p.members[sync.expect("a synchronous standby")].name.clone();
    let old_name = p.members[old].name.clone();
    let scope = cluster_scope(&p);

    // Without credentials: refused, nothing changes.
    let body = format!(r#"{{"leader":"{old_name}","candidate":"{candidate}"}}"#);
    let url = p.members[old].rest_url("/switchover");
    let (code, _) = support::patroni::curl(&["-X", "POST", "-H", "Content-Type: application/json", "-d", &body, &url]);
    assert_eq!(code, 401, "POST /switchover without credentials");
    let (code, _) = support::patroni::curl(&[
        "-X",
        "POST",
        "-u",
        "patroni:wrong-password",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        &url,
    ]);
    assert_eq!(code, 401, "POST /switchover with a wrong password");
    let args = ["switchover", "--leader", &old_name, "--candidate", &candidate, "--force", &scope];
    let out = p.members[old].ctl_without_credentials(&args);
    let said = format!("{}{}", support::text(&out.stdout), support::text(&out.stderr));
    // patronictl 3.0.2 exits 0 even when the switchover is refused: read what it says.
    assert!(said.contains("401"), "patronictl without credentials is refused with 401:\n{said}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(p.leader(), Some(old), "no switchover happened without credentials");

    // With the compiled entrypoint's `ctl` mode: the credentials from the secrets.
    p.sql(p.write_port, "create table acked (id bigint primary key)").expect("create");
    let writes = Probe::start(Duration::from_millis(50), HANG * 2, insert_through(p.write_port, p.database.clone()));
    std::thread::sleep(Duration::from_secs(1));
    let asked = Instant::now();
    let out = p.members[old].ctl(&args);
    let ctl_took = asked.elapsed();
    let said = format!("{}{}", support::text(&out.stdout), support::text(&out.stderr));
    assert!(out.status.success() && said.contains("Successfully switched over"), "switchover:\n{said}");
    let new = p.index(&candidate);
    wait("the candidate to lead", || p.leader() == Some(new));
    let led = Instant::now();
    wait("a write through the write port after the switchover", || writes.first_ok_after(led).is_some());
    std::thread::sleep(Duration::from_secs(1));
    let writes = writes.finish();
    let (gap, failed) = longest_gap(&writes);
    let acked: BTreeSet<u64> = writes.iter().filter(|a| a.ok).map(|a| a.n).collect();
    let missing: Vec<u64> = acked.difference(&ids(&p, new)).copied().collect();
    assert!(missing.is_empty(), "acknowledged writes missing after the switchover: {missing:?}");
    let all: Vec<usize> = (0..p.members.len()).collect();
    let rejoined = p.wait_ready(&all, HANG);
    report(
        "switchover through `hacompile-patroni-entrypoint.sh ctl`",
        &[
            "without credentials: POST /switchover 401, wrong password 401, patronictl 401; leader unchanged".into(),
            format!("{old_name} -> {candidate}: `ctl switchover` returned after {}", secs(ctl_took)),
            format!(
                "longest time without an acknowledged write through the write port {} ({failed} failed)",
                secs(gap)
            ),
            format!("{} writes acknowledged, none missing; {old_name} streaming again {}", acked.len(), secs(rejoined)),
        ],
    );
}

#[test]
fn losing_etcd_quorum_demotes_the_leader_and_no_write_is_accepted_until_it_returns() {
    let mut p = Patroni::start(SPEC);
    let leader = p.leader().expect("a leader");
    let name = p.members[leader].name.clone();
    p.sql(p.write_port, "create table acked (id bigint primary key)").expect("create");

    let lost = Instant::now();
    for e in &mut p.etcd.members[..2] {
        e.kill();
    }
    wait(&format!("{name} to demote itself"), || {
        (0..p.members.len()).all(|i| !p.members[i].is_primary())
            && p.members[leader].sql("select pg_is_in_recovery()").as_deref() != Ok("f")
    });
    let demoted = lost.elapsed();

    // No write anywhere for a while: through HAProxy, or straight to any member.
    let window = Instant::now();
    let mut tries = 0;
    let mut n = 1_000_000;
    while window.elapsed() < Duration::from_secs(15) {
        n += 1;
        let mut c = psql_through(p.write_port, &p.database);
        c.args(["-c", &format!("insert into acked (id) values ({n})")]);
        assert!(!succeeds_within(c, PSQL_LIMIT), "a write was accepted through the write port without quorum");
        for m in &p.members {
            let r = m.sql(&format!("insert into acked (id) values ({n})"));
            assert!(r.is_err(), "{} accepted a write without quorum", m.name);
            assert!(!m.is_primary(), "{} reports itself primary without quorum", m.name);
        }
        tries += 1 + p.members.len();
        std::thread::sleep(Duration::from_millis(300));
    }

    let back = Instant::now();
    for e in &mut p.etcd.members[..2] {
        e.start();
    }
    let writes = Probe::start(Duration::from_millis(100), HANG * 2, insert_through(p.write_port, p.database.clone()));
    let mut first = None;
    wait("a write through the write port once quorum is back", || {
        first = writes.first_ok_after(back);
        first.is_some()
    });
    let first = first.expect("a write");
    drop(writes);
    let now = p.leader().expect("a leader again");
    report(
        "etcd quorum lost (2 of 3 members killed)",
        &[
            format!("{name} demoted itself {} after the loss", secs(demoted)),
            format!("{tries} writes tried in 15 s (through the write port and on every member): none accepted"),
            format!(
                "quorum back: first write accepted {} later; leader {}",
                secs(first.end - back),
                p.members[now].name
            ),
        ],
    );
}

fn cluster_scope(p: &Patroni) -> String {
    let yml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&p.members[0].config).expect("config")).expect("yaml");
    yml["scope"].as_str().expect("scope").to_owned()
}

/// Polls `f` until true; fails past [`HANG`].
fn wait(what: &str, f: impl FnMut() -> bool) -> Duration {
    support::cluster::wait_for(what, HANG, f)
}

/// With `[backup]`, a member that lost its data is rebuilt from the
/// pgBackRest repository (`create_replica_methods: [pgbackrest,
/// basebackup]`), not by copying the leader, and catches up from the
/// archive and the leader: it streams again with every row.
#[test]
fn a_member_that_lost_its_data_is_restored_from_the_repository() {
    let spec = format!(
        "{SPEC}\n[secrets.backup_cipher_pass]\n\n[backup]\ncipher_pass = {{ secret = \"backup_cipher_pass\" }}\n\n\
         [backup.repository]\ntype = \"posix\"\nvolume = \"pgbackrest-repo\"\n"
    );
    let mut p = Patroni::start(&spec);
    let leader = p.wait_leader(HANG);
    let wrapper = p
        .site
        .config_file(&p.members[leader].name, "/usr/local/bin/hacompile-pgbackrest")
        .expect("the members mount the pgBackRest wrapper");
    let mut figures = Vec::new();

    // The scheduler's first round on the leader: a full backup.
    let started = Instant::now();
    let sched = p.members[leader].pgbackrest(&wrapper, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]);
    let out = format!("{}{}", support::text(&sched.stdout), support::text(&sched.stderr));
    assert!(sched.status.success() && out.contains("full backup complete"), "the first backup:\n{out}");
    figures.push(format!("full backup by the leader's scheduler: {}", secs(started.elapsed())));

    // Rows after the backup: they reach the rebuilt member from the archive
    // or the leader, not from the backup.
    let leader_sql = |q: &str| p.members[leader].sql(q);
    leader_sql("create table after_backup as select g from generate_series(1, 5000) g").expect("write");
    leader_sql("select pg_switch_wal()").expect("switch");

    let lost = (0..p.members.len()).find(|i| *i != leader).expect("a replica");
    let name = p.members[lost].name.clone();
    p.members[lost].stop(HANG);
    let data = p.members[lost].data.clone();
    std::fs::remove_dir_all(&data).expect("the member's data is lost");
    // Its first start copied the leader (no backup existed yet): only what
    // this start logs counts.
    let logged_before = p.members[lost].log_text().len();
    p.members[lost].start();
    let took = wait(&format!("{name} to stream again"), || p.members[lost].is_replica());
    let rows = wait(&format!("{name} to have every row"), || {
        p.members[lost].sql("select count(*) from after_backup").is_ok_and(|n| n == "5000")
    });
    let log = p.members[lost].log_text()[logged_before..].to_owned();
    assert!(
        log.contains("replica has been created using pgbackrest"),
        "{name} was rebuilt from the repository, not from the leader:\n{}",
        tail(&p.members[lost].log)
    );
    assert!(!log.contains("replica has been created using basebackup"), "no copy of the leader:\n{log}");
    figures.push(format!(
        "{name}'s data removed: restored from the repository and streaming {} after its start, every row {} later",
        secs(took),
        secs(rows)
    ));

    // A copy restored from the repository (what `hacompile restore` runs)
    // takes writes: it is nobody's primary, and the leader's
    // synchronous_standby_names came with the copy, so a commit on it
    // waited for a standby that will never connect.
    let copy = p.site.root.join("restored-copy");
    let o = p.members[leader].pgbackrest(&wrapper, &["recover-into", support::cluster::utf8(&copy), "latest"], &[]);
    let out = format!("{}{}", support::text(&o.stdout), support::text(&o.stderr));
    assert!(o.status.success(), "recover-into the latest state:\n{out}");
    let port = support::registry::free_port();
    let socket = p.site.root.join("restored-socket");
    std::fs::create_dir_all(&socket).expect("mkdir");
    support::cluster::chown_postgres(&socket);
    let mut server = std::process::Command::new("setpriv")
        .args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"])
        .arg(format!("{}/postgres", support::cluster::PG_BIN))
        .args(["-D", support::cluster::utf8(&copy), "-p", &port.to_string(), "-k", support::cluster::utf8(&socket)])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a server on the copy");
    let on_copy = || {
        let mut c = support::cluster::psql_at(std::net::Ipv4Addr::LOCALHOST, port);
        c.env("PGDATABASE", &p.database);
        c
    };
    wait("the server on the restored copy", || {
        let mut c = on_copy();
        c.args(["-c", "select 1"]);
        c.output().is_ok_and(|o| o.status.success())
    });
    let mut write = on_copy();
    write.args(["-c", "insert into after_backup values (5001)"]);
    let wrote = succeeds_within(write, Duration::from_secs(15));
    let _ = server.kill();
    let _ = server.wait();
    assert!(wrote, "a write on the restored copy commits (no synchronous standby awaited)");
    figures.push("a copy restored with recover-into takes writes".into());
    report("a member rebuilt from the pgBackRest repository", &figures);
}

/// The spec with `[backup]`: an encrypted posix repository every member
/// mounts, the first full backup due at once (nothing recorded yet).
fn backup_spec() -> String {
    format!(
        "{SPEC}\n[secrets.backup_cipher_pass]\n\n[backup]\ncipher_pass = {{ secret = \"backup_cipher_pass\" }}\n\
         schedule = {{ full = \"sun 01:00\", diff = \"none\" }}\n\n\
         [backup.repository]\ntype = \"posix\"\nvolume = \"pgbackrest-repo\"\n"
    )
}

/// Each member's (role, state, timeline) as the leader's /cluster has them.
fn cluster_view(p: &Patroni, leader: usize) -> Vec<(String, String, String, u64)> {
    let (_, body) = support::patroni::curl(&[&p.members[leader].rest_url("/cluster")]);
    let cluster: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    cluster["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    let s = |k: &str| m[k].as_str().unwrap_or("-").to_owned();
                    (s("name"), s("role"), s("state"), m["timeline"].as_u64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// With `[backup]` (archive_command, restore_command through pgBackRest),
/// the leader hangs: frozen with its sockets open, as `docker pause` or a
/// hung node leaves it. Another member leads, its scheduler takes its first
/// full backup, the frozen leader is then killed and restarted. Every
/// member follows the new leader onto its timeline, the asynchronous
/// replica too, and no acknowledged write is lost. On the single-node
/// swarm the asynchronous replica stayed on the old timeline (issue 14).
#[test]
fn with_backups_a_frozen_leader_is_replaced_and_every_member_follows_the_new_timeline() {
    let mut p = Patroni::start(&backup_spec());
    let old = p.wait_leader(HANG);
    let wrapper = p
        .site
        .config_file(&p.members[old].name, "/usr/local/bin/hacompile-pgbackrest")
        .expect("the members mount the pgBackRest wrapper");
    let sched = p.members[old].pgbackrest(&wrapper, &["scheduler"], &[("HACOMPILE_BACKUP_ROUNDS", "1")]);
    let out = format!("{}{}", support::text(&sched.stdout), support::text(&sched.stderr));
    assert!(sched.status.success() && out.contains("full backup complete"), "the first backup:\n{out}");
    p.sql(p.write_port, "create table acked (id bigint primary key)").expect("create through the write port");
    let writes = Probe::start(Duration::from_millis(100), HANG * 3, insert_through(p.write_port, p.database.clone()));
    std::thread::sleep(Duration::from_secs(3));
    let old_name = p.members[old].name.clone();
    let old_tl = p.members[old].status().and_then(|s| s["timeline"].as_u64()).expect("the leader's timeline");

    let frozen = Instant::now();
    p.members[old].freeze();
    let mut new = old;
    let promoted = wait(&format!("another leader while {old_name} is frozen"), || {
        new = (0..p.members.len()).find(|i| *i != old && p.members[*i].is_primary()).unwrap_or(old);
        new != old
    });
    let new_name = p.members[new].name.clone();
    // The new leader's scheduler, as every member runs one: nothing is
    // recorded on its volume, so it takes a full backup now, while the
    // others follow it.
    // Polled every second (30 s in the stack), for at most 60 rounds.
    let mut scheduler = p.members[new].pgbackrest_command(
        &wrapper,
        &["scheduler"],
        &[("HACOMPILE_BACKUP_POLL", "1"), ("HACOMPILE_BACKUP_ROUNDS", "60")],
    );
    let backup = std::thread::spawn(move || {
        let started = Instant::now();
        let o = scheduler.output().expect("the wrapper runs");
        (o, started.elapsed())
    });
    let mut figures = {
        std::thread::sleep(Duration::from_secs(2));
        p.members[old].kill();
        p.members[old].start();
        let tl = p.members[new].status().and_then(|s| s["timeline"].as_u64()).expect("the new leader's timeline");
        assert!(tl > old_tl, "{new_name} leads on a new timeline ({old_tl} -> {tl})");
        let mut last = Vec::new();
        let all_follow = support::cluster::try_wait_for(HANG, || {
            last = cluster_view(&p, new);
            last.len() == p.members.len()
                && last.iter().all(|(name, role, state, t)| {
                    *name == new_name || (role != "leader" && state == "running" && *t == tl)
                })
                && streaming(&p.members[new]) == p.members.len() - 1
        });
        if !all_follow {
            // Every member's whole log, kept for reading (target/tmp).
            let keep = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("frozen-leader-logs");
            let _ = std::fs::create_dir_all(&keep);
            for m in &p.members {
                let _ = std::fs::copy(&m.log, keep.join(format!("{}.log", m.name)));
            }
            let logs: Vec<String> = p.members.iter().map(|m| format!("--- {}:\n{}", m.name, tail(&m.log))).collect();
            panic!(
                "{old_name} frozen: not every member follows {new_name} on timeline {tl} within {HANG:?}: {last:?} (whole logs in {})\n{}",
                keep.display(),
                logs.join("\n")
            );
        }
        let followed = frozen.elapsed();
        let (o, _) = backup.join().expect("the scheduler thread");
        let out = format!("{}{}", support::text(&o.stdout), support::text(&o.stderr));
        assert!(o.status.success() && out.contains("full backup complete"), "the new leader's backup:\n{out}");
        // Whatever way the old leader came back (Patroni's crash recovery
        // and pg_rewind, archiving its ready WAL first; or, when its WAL
        // ended at the fork, straight as a standby), the archive holds no
        // segment of the old timeline past the fork: the one holding the
        // switch point is only the new leader's `.partial`. pgBackRest
        // itself is asked (options before the command pass the wrapper).
        let history = p.site.root.join("new-timeline.history");
        let got = p.members[new].pgbackrest(
            &wrapper,
            &["archive-get", &format!("{tl:08X}.history"), support::cluster::utf8(&history)],
            &[],
        );
        assert!(got.status.success(), "the new timeline's history is archived: {}", support::text(&got.stderr));
        let history = std::fs::read_to_string(&history).expect("the history file");
        let point = history
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next()? == old_tl.to_string()).then(|| f.next().map(str::to_owned))?
            })
            .unwrap_or_else(|| panic!("timeline {tl} forked off {old_tl}:\n{history}"));
        let (hi, lo) = point.split_once('/').expect("an LSN");
        let (hi, lo) = (u64::from_str_radix(hi, 16).expect("hex"), u64::from_str_radix(lo, 16).expect("hex"));
        let segment = format!("{old_tl:08X}{hi:08X}{:08X}", lo >> 24);
        let raw = p.members[new].pgbackrest(
            &wrapper,
            &["--log-level-console=warn", "archive-get", &segment, support::cluster::utf8(&p.site.root.join("seg"))],
            &[],
        );
        assert_eq!(
            raw.status.code(),
            Some(1),
            "{segment} (timeline {old_tl} through the fork at {point}) is not in the archive: {}",
            support::text(&raw.stderr)
        );
        let refused = p.members[old].log_text().lines().find(|l| l.contains("refusing to archive")).map_or_else(
            || "none offered (it came back without crash recovery)".to_owned(),
            |l| l.chars().take(200).collect(),
        );
        vec![
            format!("{old_name} frozen: {new_name} leads after {} (timeline {old_tl} -> {tl})", secs(promoted)),
            format!("{new_name}'s scheduler took its first full backup as the new leader"),
            format!(
                "{old_name} killed and restarted: every member on timeline {tl} {} after the freeze",
                secs(followed)
            ),
            format!("no segment of timeline {old_tl} past the fork at {point} in the archive ({segment}: not found)"),
            format!("{old_name}'s WAL past the fork refused by the archive: {refused}"),
        ]
    };
    std::thread::sleep(Duration::from_secs(1));
    let writes = writes.finish();
    let acked: BTreeSet<u64> = writes.iter().filter(|a| a.ok).map(|a| a.n).collect();
    let present = ids(&p, new);
    let missing: Vec<&u64> = acked.difference(&present).collect();
    assert!(missing.is_empty(), "acknowledged writes missing on {new_name}: {missing:?}");
    figures.push(format!("{} acknowledged writes, none missing", acked.len()));
    report("with [backup]: the leader frozen, then killed", &figures);
}
