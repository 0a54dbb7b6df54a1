//! A compiled Patroni cluster on loopback: etcd 3.4 members, Patroni 3.0.2
//! members running PostgreSQL 15, and HAProxy 2.6, each a typed handle that
//! starts, stops and kills its processes with deadlines and kills them on
//! drop.
//!
//! Everything comes from the files `hacompile build` wrote: etcd runs with
//! its service's `ETCD_*` environment, each Patroni member runs the emitted
//! entrypoint with its service's environment and its own patroni-pg-N.yml,
//! and HAProxy runs the emitted haproxy.cfg. Only what cannot exist outside
//! a swarm is changed: service names become addresses (each etcd member and
//! each Patroni member gets its own 127.x.y.z, since Patroni refuses
//! 127.0.0.1 as a connect address, so every default port stays as
//! compiled), container paths become temp dirs, and the Docker secrets are
//! files holding test credentials. There is no /dev/watchdog here; Patroni
//! runs without watchdog fencing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_yaml_ng::{Mapping, Value};

use super::cluster::{
    PASSWORD, PG_BIN, Proxy, SUPERUSER, Site, chown_postgres, compile, log_lines, psql_at, start_haproxy, stats_csv,
    utf8, wait_for,
};
use super::text;

pub const STATS_USER: (&str, &str) = super::cluster::STATS_USER;
/// The listeners and backends of the compiled haproxy.cfg.
pub const WRITE_BACKEND: &str = "postgres_write";
pub const REPLICAS_BACKEND: &str = "postgres_read_replicas";
pub const READ_PRIMARY_BACKEND: &str = "postgres_read_primary";

/// Loopback addresses of one test cluster, 127.a.b.0/24: etcd member N at
/// .(10+N), Patroni member N at .(20+N). Picked at random and checked free,
/// so tests in parallel processes do not meet.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    a: u8,
    b: u8,
}

impl Net {
    pub fn etcd(&self, n: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, self.a, self.b, 10 + u8::try_from(n).expect("few members"))
    }

    pub fn member(&self, n: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, self.a, self.b, 20 + u8::try_from(n).expect("few members"))
    }

    /// A block whose addresses can bind every port the cluster uses.
    fn pick(etcd: usize, members: usize, etcd_ports: &[u16], member_ports: &[u16]) -> Net {
        for _ in 0..100 {
            let net = Net { a: rand::random_range(1..=254), b: rand::random_range(0..=255) };
            let free = (1..=etcd).all(|n| etcd_ports.iter().all(|p| TcpListener::bind((net.etcd(n), *p)).is_ok()))
                && (1..=members).all(|n| member_ports.iter().all(|p| TcpListener::bind((net.member(n), *p)).is_ok()));
            if free {
                return net;
            }
        }
        panic!("no free 127.x.y.0/24 block in 100 tries");
    }
}

fn kill9(pid: u32) {
    signal(pid, "KILL");
}

/// Every live descendant of `roots` (from /proc's parent links), roots included.
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        if let Some(ppid) = rest.split(' ').nth(1).and_then(|p| p.parse().ok()) {
            parent_of.push((pid, ppid));
        }
    }
    let mut tree: Vec<u32> = roots.iter().copied().filter(|p| pid_alive(*p)).collect();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for (pid, ppid) in &parent_of {
            if *ppid == parent && !tree.contains(pid) {
                tree.push(*pid);
            }
        }
        i += 1;
    }
    tree
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
}

fn pid_alive(pid: u32) -> bool {
    // A zombie still has /proc/PID; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Waits (bounded) for a child to exit; kills it past `limit`.
fn reap(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn port_of(address: &str) -> u16 {
    address.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("no port in {address}"))
}

/// A service's data volume: (mount target, local directory).
fn volume_target(site: &Site, service: &str) -> String {
    site.service(service)
        .volumes
        .iter()
        .find(|m| m.kind == "volume")
        .unwrap_or_else(|| panic!("{service} has a data volume"))
        .target
        .clone()
}

/// Replaces a container path under `mount` by the same path under `local`.
fn under(value: &str, mount: &str, local: &Path) -> Option<String> {
    value
        .strip_prefix(mount)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .map(|rest| format!("{}{rest}", utf8(local)))
}

// ---------------------------------------------------------------- etcd

/// One etcd member, configured only by its compiled `ETCD_*` environment.
pub struct EtcdMember {
    pub name: String,
    pub ip: Ipv4Addr,
    pub client_port: u16,
    /// What its data volume is mounted as.
    pub volume: PathBuf,
    pub log: PathBuf,
    env: BTreeMap<String, String>,
    child: Option<Child>,
}

impl EtcdMember {
    pub fn start(&mut self) {
        assert!(!self.running(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log");
        let child = Command::new("etcd")
            .env_clear()
            .envs(&self.env)
            .env("PATH", "/usr/bin:/bin")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("etcd must be installed (tests/setup.sh)");
        self.child = Some(child);
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL; its data directory stays, so a restart rejoins.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.ip, self.client_port)
    }

    /// `etcdctl endpoint health` on this member (a quorum read through it).
    pub fn healthy(&self) -> bool {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint(), "--dial-timeout=1s", "--command-timeout=2s", "endpoint", "health"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Etcd {
    pub members: Vec<EtcdMember>,
}

impl Etcd {
    /// The stack's `etcd-N` services, localized: `0.0.0.0` listeners and
    /// `etcd-M` URLs become the members' addresses, the data volume a temp dir.
    fn from_site(site: &Site, net: Net) -> Etcd {
        let names = numbered(site, "etcd-");
        let mut members = Vec::new();
        for (n, name) in &names {
            let svc = site.service(name);
            let command: Vec<&str> = svc.command.iter().flatten().map(String::as_str).collect();
            assert!(
                command.len() == 1 && command[0].ends_with("/etcd"),
                "{name}: etcd is configured by its environment only, its command has no arguments: {command:?}"
            );
            let mount = volume_target(site, name);
            let dir = site.root.join(name);
            let volume = dir.join("volume");
            std::fs::create_dir_all(&volume).expect("mkdir");
            let env: BTreeMap<String, String> = svc
                .environment
                .iter()
                .map(|(k, v)| {
                    let mut local = under(v, &mount, &volume).unwrap_or_else(|| v.clone());
                    local = local.replace("0.0.0.0", &net.etcd(*n).to_string());
                    for (m, other) in &names {
                        local = local.replace(&format!("//{other}:"), &format!("//{}:", net.etcd(*m)));
                    }
                    (k.clone(), local)
                })
                .collect();
            let client_port = port_of(env.get("ETCD_LISTEN_CLIENT_URLS").expect("ETCD_LISTEN_CLIENT_URLS"));
            members.push(EtcdMember {
                name: name.clone(),
                ip: net.etcd(*n),
                client_port,
                volume,
                log: site.root.join(format!("{name}.log")),
                env,
                child: None,
            });
        }
        Etcd { members }
    }

    pub fn start_all(&mut self) {
        for m in &mut self.members {
            m.start();
        }
    }

    /// Waits until every running member answers a quorum read.
    pub fn wait_healthy(&mut self, limit: Duration) -> Duration {
        wait_for("etcd to be healthy", limit, || {
            self.members.iter_mut().all(|m| {
                assert!(m.running() || m.child.is_none(), "{} exited:\n{}", m.name, tail(&m.log));
                m.child.is_none() || m.healthy()
            })
        })
    }
}

// ---------------------------------------------------------------- Patroni

/// One Patroni member: the emitted entrypoint, run as postgres with its
/// service's environment and its localized patroni.yml.
pub struct Member {
    pub name: String,
    pub ip: Ipv4Addr,
    pub pg_port: u16,
    pub rest_port: u16,
    /// What the data volume is mounted as, and PostgreSQL's data directory in it.
    pub volume: PathBuf,
    pub data: PathBuf,
    /// The localized patroni.yml, and the one the binary wrote.
    pub config: PathBuf,
    pub compiled_config: PathBuf,
    pub log: PathBuf,
    pub database: String,
    env: BTreeMap<String, String>,
    entrypoint: Vec<String>,
    child: Option<Child>,
    /// What [`Member::freeze`] stopped: killed with the member.
    frozen: Vec<u32>,
}

impl Member {
    /// The entrypoint as the container runs it, as postgres, with only the
    /// service's environment (plus PATH with PostgreSQL's bin dir, HOME, LANG).
    fn command(&self) -> Command {
        let mut c = self.as_member(&self.entrypoint[0]);
        c.args(&self.entrypoint[1..]);
        c
    }

    /// `program` as the member's container runs it: as postgres, with only
    /// the service's environment, in the member's directory.
    fn as_member(&self, program: &str) -> Command {
        let mut c = super::cluster::as_postgres(program);
        c.env_clear().envs(&self.env).current_dir(self.volume.parent().expect("member dir"));
        c
    }

    /// Runs the pgBackRest wrapper the member's container has
    /// (`hacompile-pgbackrest ARGS`) with its environment, as postgres.
    pub fn pgbackrest(&self, wrapper: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.pgbackrest_command(wrapper, args, extra).output().expect("the wrapper runs")
    }

    /// [`Member::pgbackrest`], not yet run (for another thread).
    pub fn pgbackrest_command(&self, wrapper: &Path, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut c = self.as_member(super::cluster::utf8(wrapper));
        c.args(args).envs(extra.iter().copied());
        c
    }

    pub fn start(&mut self) {
        assert!(!self.running(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log");
        let child = self
            .command()
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("the entrypoint starts (patroni must be installed: tests/setup.sh)");
        self.child = Some(child);
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The postmaster's PID from postmaster.pid, if it names a live process.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid =
            std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()?;
        pid_alive(pid).then_some(pid)
    }

    /// A hung node, as `docker pause` freezes a task: SIGSTOP to Patroni,
    /// the postmaster and every process under them (backends, walsenders,
    /// the archiver and its pgBackRest). Their sockets stay open and
    /// silent. [`Member::kill`] ends them.
    pub fn freeze(&mut self) {
        let mut roots: Vec<u32> = self.child.as_ref().map(Child::id).into_iter().collect();
        roots.extend(self.postmaster_pid());
        assert!(!roots.is_empty(), "{} has no process to freeze", self.name);
        // Parents first, so that no new child escapes; again for a child
        // forked between the listing and the signal.
        for _ in 0..3 {
            for pid in process_tree(&roots) {
                if !self.frozen.contains(&pid) {
                    signal(pid, "STOP");
                    self.frozen.push(pid);
                }
            }
        }
    }

    /// A crash of the whole member: SIGKILL to Patroni and to the postmaster
    /// (double-forked by pg_ctl, so not Patroni's child), and to whatever
    /// [`Member::freeze`] stopped. Waits until they are gone.
    pub fn kill(&mut self) {
        for pid in process_tree(&std::mem::take(&mut self.frozen)) {
            kill9(pid);
        }
        let postmaster = self.postmaster_pid();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(pid) = postmaster.or_else(|| self.postmaster_pid()) {
            kill9(pid);
            let deadline = Instant::now() + Duration::from_secs(10);
            while pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGTERM (the service's stop_signal) and a bounded wait; then [`Member::kill`].
    pub fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let status = reap(&mut c, limit);
        self.kill();
        status
    }

    /// Waits (bounded) for Patroni to exit by itself; None if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn rest_url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.rest_port)
    }

    /// The HTTP status of `method path` on the REST API (0: no answer).
    pub fn rest(&self, method: &str, path: &str) -> u16 {
        curl(&["-X", method, &self.rest_url(path)]).0
    }

    /// What HAProxy's write check asks.
    pub fn is_primary(&self) -> bool {
        self.rest("OPTIONS", "/primary") == 200
    }

    pub fn is_replica(&self) -> bool {
        self.rest("OPTIONS", "/replica") == 200
    }

    /// GET /patroni as JSON (role, state, timeline, xlog, ...).
    pub fn status(&self) -> Option<serde_json::Value> {
        let (code, body) = curl(&[&self.rest_url("/patroni")]);
        if code == 0 { None } else { serde_json::from_str(&body).ok() }
    }

    pub fn role(&self) -> String {
        self.status().and_then(|s| s["role"].as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// psql straight to this member's PostgreSQL.
    pub fn psql(&self) -> Command {
        let mut c = psql_at(self.ip, self.pg_port);
        c.env("PGDATABASE", &self.database);
        c
    }

    pub fn sql(&self, query: &str) -> Result<String, String> {
        let out = self.psql().args(["-c", query]).output().expect("psql runs");
        if out.status.success() { Ok(text(&out.stdout).trim().to_owned()) } else { Err(text(&out.stderr)) }
    }

    /// The compiled entrypoint in `ctl` mode (patronictl with this member's
    /// config and the REST API credentials from the service's secrets).
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut c = self.command();
        c.arg("ctl").args(args).stdin(Stdio::null());
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("ctl runs");
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait_with_output().expect("ctl output")
    }

    /// patronictl with this member's localized config and nothing else: no
    /// entrypoint, so no REST API credentials.
    pub fn ctl_without_credentials(&self, args: &[&str]) -> Output {
        Command::new("setpriv")
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--", "timeout", "120", "patronictl"])
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.volume.parent().expect("member dir"))
            .stdin(Stdio::null())
            .output()
            .expect("patronictl runs")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `curl -s` with a short deadline: (status, body); status 0 when nothing answered.
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "3"])
        .args(args)
        .output()
        .expect("curl runs");
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The services named `prefix` + number, by number.
fn numbered(site: &Site, prefix: &str) -> Vec<(usize, String)> {
    let mut v: Vec<(usize, String)> = site
        .stack
        .services
        .keys()
        .filter_map(|k| k.strip_prefix(prefix).and_then(|n| n.parse().ok()).map(|n| (n, k.clone())))
        .collect();
    v.sort();
    v
}

fn get<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    v.get_mut(key).unwrap_or_else(|| panic!("patroni.yml has `{key}`"))
}

fn set_str(v: &mut Value, key: &str, value: String) {
    *get(v, key) = Value::String(value);
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("patroni.yml has a string `{key}`")).to_owned()
}

/// Where a member's pieces go on this machine.
struct Local<'a> {
    name: &'a str,
    ip: Ipv4Addr,
    etcd: &'a BTreeMap<String, SocketAddrV4>,
    mount: &'a str,
    volume: &'a Path,
    socket: &'a Path,
    pgpass: &'a Path,
    /// The service's swarm configs: container path -> local file.
    files: &'a BTreeMap<String, PathBuf>,
}

/// Every string in `v` with the container paths of `files` replaced.
fn replace_paths(v: &mut Value, files: &BTreeMap<String, PathBuf>) {
    match v {
        Value::String(s) => {
            for (target, local) in files {
                if s.contains(target.as_str()) {
                    *s = s.replace(target.as_str(), utf8(local));
                }
            }
        }
        Value::Sequence(list) => list.iter_mut().for_each(|x| replace_paths(x, files)),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, x)| replace_paths(x, files)),
        Value::Tagged(t) => replace_paths(&mut t.value, files),
        _ => {}
    }
}

/// The compiled patroni.yml with only the swarm-specific parts changed:
/// REST API and PostgreSQL on the member's own address (ports as
/// compiled), etcd hosts as the local members, data directory and pgpass
/// in temp dirs, and a member-local `unix_socket_directories`, since the
/// members share one machine. Everything else stays as emitted.
fn localize_patroni(yml: &str, l: &Local) -> String {
    let mut doc: Value = serde_yaml_ng::from_str(yml).expect("the emitted patroni.yml parses");
    // Hooks that run the entrypoint (post_bootstrap) name it by its container path.
    replace_paths(&mut doc, l.files);
    assert_eq!(doc.get("name").and_then(Value::as_str), Some(l.name), "patroni.yml names its member");
    for section in ["restapi", "postgresql"] {
        let s = get(&mut doc, section);
        let port = port_of(&str_of(s, "listen"));
        assert_eq!(str_of(s, "connect_address"), format!("{}:{port}", l.name), "{section}.connect_address");
        set_str(s, "listen", format!("{}:{port}", l.ip));
        set_str(s, "connect_address", format!("{}:{port}", l.ip));
    }
    let hosts = get(get(&mut doc, "etcd3"), "hosts");
    let local_host = |h: &str| {
        let h = h.trim();
        let (name, _) = h.rsplit_once(':').unwrap_or((h, ""));
        l.etcd.get(name).unwrap_or_else(|| panic!("etcd3.hosts names a DCS member: {h}")).to_string()
    };
    *hosts = match hosts {
        Value::Sequence(list) => {
            Value::Sequence(list.iter().map(|h| Value::String(local_host(h.as_str().expect("a host")))).collect())
        }
        Value::String(s) => Value::String(s.split(',').map(local_host).collect::<Vec<_>>().join(",")),
        other => panic!("etcd3.hosts is a list or a string: {other:?}"),
    };
    let pg = get(&mut doc, "postgresql");
    let data_dir = str_of(pg, "data_dir");
    set_str(pg, "data_dir", under(&data_dir, l.mount, l.volume).expect("data_dir lies on the data volume"));
    set_str(pg, "pgpass", utf8(l.pgpass).to_owned());
    if pg.get("bin_dir").is_some() {
        set_str(pg, "bin_dir", PG_BIN.to_owned());
    }
    let pg = pg.as_mapping_mut().expect("postgresql is a mapping");
    let params = pg.entry(Value::String("parameters".into())).or_insert_with(|| Value::Mapping(Mapping::new()));
    params
        .as_mapping_mut()
        .expect("postgresql.parameters is a mapping")
        .insert(Value::String("unix_socket_directories".into()), Value::String(utf8(l.socket).to_owned()));
    let out = serde_yaml_ng::to_string(&doc).expect("yaml");
    for leftover in ["0.0.0.0", "/var/lib/postgresql", "/tmp/hacompile", "/usr/local/bin/", "/etc/patroni"] {
        assert!(!out.contains(leftover), "{}: the localized patroni.yml still has {leftover}:\n{out}", l.name);
    }
    out
}

/// A compiled Patroni topology on loopback.
pub struct Patroni {
    pub site: Site,
    pub net: Net,
    pub etcd: Etcd,
    pub members: Vec<Member>,
    pub proxy: Option<Proxy>,
    pub database: String,
    /// Set by [`Patroni::start_haproxy`].
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
    root: tempfile::TempDir,
}

impl Drop for Patroni {
    fn drop(&mut self) {
        if let Some(mut p) = self.proxy.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for m in &mut self.members {
            m.kill();
        }
        for e in &mut self.etcd.members {
            e.kill();
        }
    }
}

impl Patroni {
    /// Compiles `spec_text` and lays out every member; starts nothing.
    pub fn compile(spec_text: &str) -> Patroni {
        let (root, site) = compile(spec_text);
        let etcd_names = numbered(&site, "etcd-");
        let member_names = numbered(&site, "pg-");
        assert!(etcd_names.len() >= 3, "the spec has three etcd members or more");
        assert!(member_names.len() >= 2, "the spec has two Patroni members or more");
        // Ports as compiled (read from the first member; all members use the same).
        let first = site
            .config_file(&member_names[0].1, &config_target(&site, &member_names[0].1))
            .expect("the member's patroni.yml");
        let first: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(first).expect("read")).expect("yaml");
        let member_ports = [
            port_of(first["restapi"]["listen"].as_str().expect("restapi.listen")),
            port_of(first["postgresql"]["listen"].as_str().expect("postgresql.listen")),
        ];
        let net = Net::pick(etcd_names.len(), member_names.len(), &[2379, 2380], &member_ports);
        let etcd = Etcd::from_site(&site, net);
        let etcd_hosts: BTreeMap<String, SocketAddrV4> =
            etcd.members.iter().map(|m| (m.name.clone(), SocketAddrV4::new(m.ip, m.client_port))).collect();
        // The database the members' post_bootstrap creates.
        let database = site
            .service(&member_names[0].1)
            .environment
            .get("HACOMPILE_DATABASE")
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        let members = member_names
            .iter()
            .map(|(n, name)| new_member(&site, name, net.member(*n), &etcd_hosts, &database))
            .collect();
        chown_postgres(&site.root);
        Patroni { site, net, etcd, members, proxy: None, database, write_port: 0, read_port: 0, stats_port: 0, root }
    }

    /// Compiles and starts everything: etcd, every member (at once, as a
    /// deploy does), then HAProxy once one leader and streaming replicas
    /// serve.
    pub fn start(spec_text: &str) -> Patroni {
        let mut p = Self::compile(spec_text);
        p.etcd.start_all();
        p.etcd.wait_healthy(Duration::from_secs(30));
        for m in &mut p.members {
            m.start();
        }
        let all: Vec<usize> = (0..p.members.len()).collect();
        p.wait_ready(&all, Duration::from_secs(120));
        p.start_haproxy();
        p
    }

    /// Waits until the members `which` are one leader and streaming replicas.
    pub fn wait_ready(&mut self, which: &[usize], limit: Duration) -> Duration {
        let start = Instant::now();
        let leader = self.wait_leader(limit);
        assert!(which.contains(&leader), "the leader is one of the started members");
        let want = which.len() - 1;
        let members = &mut self.members;
        wait_for(&format!("{want} streaming replicas"), limit.saturating_sub(start.elapsed()), || {
            for i in which {
                let m = &mut members[*i];
                assert!(m.running(), "{} exited:\n{}", m.name, tail(&m.log));
            }
            let replicas = which.iter().filter(|i| **i != leader && members[**i].is_replica()).count();
            replicas == want && streaming(&members[leader]) == want
        });
        if want > 0 && self.synchronous_mode() {
            let leader = &self.members[leader];
            wait_for("a synchronous standby", limit.saturating_sub(start.elapsed()), || {
                leader.sql("select count(*) from pg_stat_replication where sync_state = 'sync'").as_deref() == Ok("1")
            });
        }
        start.elapsed()
    }

    /// `bootstrap.dcs.synchronous_mode` as compiled.
    pub fn synchronous_mode(&self) -> bool {
        let yml = std::fs::read_to_string(&self.members[0].compiled_config).expect("patroni.yml");
        let doc: Value = serde_yaml_ng::from_str(&yml).expect("yaml");
        doc["bootstrap"]["dcs"]["synchronous_mode"].as_bool().unwrap_or(false)
    }

    /// The member Patroni has as synchronous standby (from the leader's /cluster).
    pub fn sync_standby(&self) -> Option<usize> {
        let leader = self.leader()?;
        let (_, body) = curl(&[&self.members[leader].rest_url("/cluster")]);
        let cluster: serde_json::Value = serde_json::from_str(&body).ok()?;
        let name = cluster["members"].as_array()?.iter().find(|m| m["role"] == "sync_standby")?["name"].as_str()?;
        self.members.iter().position(|m| m.name == name)
    }

    /// The one member answering 200 on /primary, if exactly one does.
    pub fn leader(&self) -> Option<usize> {
        let primaries: Vec<usize> = (0..self.members.len()).filter(|i| self.members[*i].is_primary()).collect();
        (primaries.len() == 1).then(|| primaries[0])
    }

    pub fn wait_leader(&mut self, limit: Duration) -> usize {
        let mut leader = None;
        wait_for("a Patroni leader", limit, || {
            leader = self.leader();
            leader.is_some()
        });
        leader.expect("a leader")
    }

    /// HAProxy on the compiled haproxy.cfg, `tasks.pg-N` at member N's address.
    pub fn start_haproxy(&mut self) {
        let services: BTreeMap<String, SocketAddrV4> =
            self.members.iter().map(|m| (m.name.clone(), SocketAddrV4::new(m.ip, m.pg_port))).collect();
        let compiled = std::fs::read_to_string(self.site.out.join("haproxy.cfg")).expect("haproxy.cfg");
        for m in &self.members {
            // Kept as compiled by `localize`: the member's REST API must be there.
            assert!(compiled.contains(&format!(" port {} ", m.rest_port)), "HAProxy checks {}'s REST API", m.name);
        }
        let proxy = start_haproxy(&self.site, &services);
        self.write_port = proxy.write_port;
        self.read_port = proxy.read_port;
        self.stats_port = proxy.stats_port;
        self.proxy = Some(proxy);
        if let Some(leader) = self.leader() {
            self.wait_routing(leader, Duration::from_secs(30));
        }
    }

    /// Waits until HAProxy has only `leader` UP for writes and for the
    /// read fallback, and every other running member UP (and the leader and
    /// stopped members DOWN) for reads. A server starts UP
    /// in HAProxy until its checks fail, so this waits for DOWN too.
    pub fn wait_routing(&mut self, leader: usize, limit: Duration) -> Duration {
        let names: Vec<(String, bool)> = self
            .members
            .iter_mut()
            .enumerate()
            .map(|(i, m)| (server_name(&m.name), i != leader && m.running()))
            .collect();
        let leader = server_name(&self.members[leader].name);
        let stats = self.stats_port;
        wait_for("HAProxy to route writes to the leader and reads to the replicas", limit, || {
            let (code, csv) = stats_csv(stats, Some(STATS_USER));
            let write = super::cluster::server_column(&csv, WRITE_BACKEND, "status");
            let read = super::cluster::server_column(&csv, REPLICAS_BACKEND, "status");
            let fallback = super::cluster::server_column(&csv, READ_PRIMARY_BACKEND, "status");
            code == 200
                && names.iter().all(|(n, replica)| {
                    let w = write.get(n).map(String::as_str);
                    let r = read.get(n).map(String::as_str);
                    let f = fallback.get(n).map(String::as_str);
                    if *n == leader {
                        w == Some("UP") && r == Some("DOWN") && f == Some("UP")
                    } else {
                        w == Some("DOWN")
                            && (r == Some("UP")) == *replica
                            && (r == Some("DOWN")) != *replica
                            && f == Some("DOWN")
                    }
                })
        })
    }

    /// psql through HAProxy on `port`.
    pub fn psql(&self, port: u16) -> Command {
        let mut c = psql_at(Ipv4Addr::LOCALHOST, port);
        c.env("PGDATABASE", &self.database);
        c
    }

    pub fn sql(&self, port: u16, query: &str) -> Result<String, String> {
        let out = self.psql(port).args(["-c", query]).output().expect("psql runs");
        if out.status.success() { Ok(text(&out.stdout).trim().to_owned()) } else { Err(text(&out.stderr)) }
    }

    pub fn stats(&self) -> String {
        let (code, csv) = stats_csv(self.stats_port, Some(STATS_USER));
        assert_eq!(code, 200, "HAProxy stats answer with the test credentials");
        csv
    }

    /// (server, status) of every server of a backend, from the stats page.
    pub fn servers(&self, backend: &str) -> BTreeMap<String, String> {
        super::cluster::server_column(&self.stats(), backend, "status")
    }

    pub fn member(&self, name: &str) -> &Member {
        self.members.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no member {name}"))
    }

    pub fn index(&self, name: &str) -> usize {
        self.members.iter().position(|m| m.name == name).unwrap_or_else(|| panic!("no member {name}"))
    }
}

/// The HAProxy server a `server-template pg-N-` slot becomes.
pub fn server_name(member: &str) -> String {
    format!("{member}-1")
}

/// The servers of a backend that HAProxy has UP.
pub fn up_servers(stats_port: u16, backend: &str) -> Vec<String> {
    let (code, csv) = stats_csv(stats_port, Some(STATS_USER));
    if code != 200 {
        return Vec::new();
    }
    super::cluster::server_column(&csv, backend, "status")
        .into_iter()
        .filter(|(_, s)| s == "UP")
        .map(|(n, _)| n)
        .collect()
}

/// Walsenders streaming from a member.
pub fn streaming(m: &Member) -> usize {
    m.sql("select count(*) from pg_stat_replication where state = 'streaming'")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn config_target(site: &Site, service: &str) -> String {
    let svc = site.service(service);
    let config = svc.environment.get("HACOMPILE_PATRONI_CONFIG").expect("HACOMPILE_PATRONI_CONFIG").clone();
    assert!(svc.configs.iter().any(|c| c.target == config), "{service}: its patroni.yml is a swarm config");
    config
}

fn new_member(site: &Site, name: &str, ip: Ipv4Addr, etcd: &BTreeMap<String, SocketAddrV4>, database: &str) -> Member {
    let svc = site.service(name);
    let dir = site.root.join(name);
    let volume = dir.join("volume");
    let socket = dir.join("sock");
    for d in [&volume, &socket] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let mount = volume_target(site, name);
    let target = config_target(site, name);
    let compiled_config = site.config_file(name, &target).expect("the member's patroni.yml");
    let yml = std::fs::read_to_string(&compiled_config).expect("read patroni.yml");
    let pgpass = dir.join("pgpass");
    let config = dir.join("patroni.yml");
    let files: BTreeMap<String, PathBuf> = svc
        .configs
        .iter()
        .map(|c| {
            let local =
                if c.target == target { config.clone() } else { site.config_file(name, &c.target).expect("file") };
            (c.target.clone(), local)
        })
        .collect();
    let local = localize_patroni(
        &yml,
        &Local { name, ip, etcd, mount: &mount, volume: &volume, socket: &socket, pgpass: &pgpass, files: &files },
    );
    std::fs::write(&config, &local).expect("write");
    let doc: Value = serde_yaml_ng::from_str(&local).expect("yaml");
    let data = PathBuf::from(doc["postgresql"]["data_dir"].as_str().expect("data_dir"));
    let pg_port = port_of(doc["postgresql"]["listen"].as_str().expect("listen"));
    let rest_port = port_of(doc["restapi"]["listen"].as_str().expect("listen"));

    let entrypoint = svc.entrypoint.as_ref().expect("a member runs the emitted entrypoint");
    // The backup scheduler the entrypoint would start detached
    // (`hacompile-pgbackrest launch`) is run by the tests, bounded
    // ([`Patroni::pgbackrest`]).
    let entrypoint: Vec<String> = entrypoint
        .iter()
        .skip(if entrypoint.get(1).is_some_and(|w| w == "launch") { 2 } else { 0 })
        .map(|w| site.config_file(name, w).map_or_else(|| w.clone(), |p| utf8(&p).to_owned()))
        .collect();
    assert!(svc.command.as_ref().is_none_or(Vec::is_empty), "{name}: the entrypoint alone runs Patroni");
    let mut env: BTreeMap<String, String> = svc
        .environment
        .iter()
        .map(|(k, v)| {
            let local = if let Some(rest) = v.strip_prefix("/run/secrets/") {
                utf8(&site.secrets.join(rest)).to_owned()
            } else if *v == target {
                utf8(&config).to_owned()
            } else if let Some(p) = site.config_file(name, v) {
                utf8(&p).to_owned()
            } else if let Some(p) = under(v, &mount, &volume) {
                p
            } else {
                v.clone()
            };
            (k.clone(), local)
        })
        .collect();
    // What the image provides: PostgreSQL's programs on PATH (as in the
    // official image), a home and a UTF-8 locale.
    env.insert("PATH".into(), format!("{PG_BIN}:/usr/bin:/bin"));
    // pgBackRest: the repository's volume (one for every member, as NFS or
    // S3 gives them), and the server's socket and port, its defaults in
    // the container.
    if env.contains_key("PGBACKREST_CONFIG") {
        env.insert("PGBACKREST_REPO1_PATH".into(), utf8(&site.root.join("repo")).into());
        env.insert("PGBACKREST_PG1_SOCKET_PATH".into(), utf8(&socket).into());
        env.insert("PGBACKREST_PG1_PORT".into(), pg_port.to_string());
        env.insert("PGBACKREST_LOCK_PATH".into(), utf8(&dir.join("pgbackrest-lock")).into());
    }
    env.insert("HOME".into(), utf8(&dir).into());
    env.insert("LANG".into(), "C.UTF-8".into());
    Member {
        name: name.to_owned(),
        ip,
        pg_port,
        rest_port,
        volume,
        data,
        config,
        compiled_config,
        log: site.root.join(format!("{name}.log")),
        database: database.to_owned(),
        env,
        entrypoint,
        child: None,
        frozen: Vec::new(),
    }
}

/// The last lines of a log, for failure messages.
pub fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Credentials of the superuser, for tests that connect by hand.
pub const CREDENTIALS: (&str, &str) = (SUPERUSER, PASSWORD);

pub fn grep(log: &str, needle: &str) -> String {
    log_lines(log, needle)
}

/// psql through HAProxy's listener `port` on loopback, to `database`.
pub fn psql_through(port: u16, database: &str) -> Command {
    let mut c = psql_at(Ipv4Addr::LOCALHOST, port);
    c.env("PGDATABASE", database);
    c
}

/// Runs `cmd`; true if it exited 0 within `limit` (else it is killed: not acknowledged).
pub fn succeeds_within(mut cmd: Command, limit: Duration) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    super::cluster::wait_child(&mut child, limit) == Some(true)
}

/// One try of a [`Probe`]: its number, when it started and ended, and whether it succeeded.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub n: u64,
    pub start: Instant,
    pub end: Instant,
    pub ok: bool,
}

/// A background loop of numbered tries (a write, a read) recorded with
/// their outcome, until stopped; bounded at `limit` of running time.
pub struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: std::sync::Arc<std::sync::Mutex<Vec<Attempt>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    pub fn start(every: Duration, limit: Duration, f: impl Fn(u64) -> bool + Send + 'static) -> Probe {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let handle = std::thread::spawn(move || {
            let begun = Instant::now();
            let mut n = 0;
            while !s.load(Ordering::Relaxed) && begun.elapsed() < limit {
                n += 1;
                let start = Instant::now();
                let ok = f(n);
                l.lock().expect("probe log").push(Attempt { n, start, end: Instant::now(), ok });
                std::thread::sleep(every.saturating_sub(start.elapsed()));
            }
        });
        Probe { stop, log, handle: Some(handle) }
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.log.lock().expect("probe log").clone()
    }

    /// The first success that started after `t`.
    pub fn first_ok_after(&self, t: Instant) -> Option<Attempt> {
        self.attempts().into_iter().find(|a| a.ok && a.start > t)
    }

    pub fn finish(mut self) -> Vec<Attempt> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("probe thread");
        }
        self.attempts()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The longest time between two successes of `attempts` (the first and
/// last success bound the window), with the attempts that failed in it.
pub fn longest_gap(attempts: &[Attempt]) -> (Duration, usize) {
    let mut best = (Duration::ZERO, 0);
    let mut last_ok: Option<Instant> = None;
    let mut failed = 0;
    for a in attempts {
        if a.ok {
            if let Some(t) = last_ok {
                if a.end.duration_since(t) > best.0 {
                    best = (a.end.duration_since(t), failed);
                }
            }
            last_ok = Some(a.end);
            failed = 0;
        } else {
            failed += 1;
        }
    }
    best
}

/// The processes whose parent is `pid`: (pid, command line).
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // pid (comm) state ppid ...
        let ppid = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            out.push((child, text(&cmdline).replace('\0', " ")));
        }
    }
    out
}

impl Member {
    /// The PID of the replica's startup process (the one replaying WAL).
    fn startup_pid(&self) -> u32 {
        let postmaster = self.postmaster_pid().expect("a running postmaster");
        children(postmaster)
            .into_iter()
            .find(|(_, cmd)| cmd.contains("startup"))
            .unwrap_or_else(|| panic!("{} has a startup process (it is a replica)", self.name))
            .0
    }

    /// Stalls WAL replay while WAL keeps arriving: SIGSTOP to the startup
    /// process (as a replay stuck on a slow disk or a lock would).
    /// `pg_wal_replay_pause()` cannot do it: Patroni 3.0.2 resumes a paused
    /// replay at its next loop on PostgreSQL 14+ (handle_parameter_change).
    pub fn stall_replay(&self) -> u32 {
        let pid = self.startup_pid();
        let _ = Command::new("kill").args(["-STOP", &pid.to_string()]).status();
        pid
    }

    /// SIGCONT to the process [`Member::stall_replay`] stopped.
    pub fn resume_replay(&self, pid: u32) {
        let _ = Command::new("kill").args(["-CONT", &pid.to_string()]).status();
    }

    /// Writes at least `bytes` of WAL here (the leader), as the pinned
    /// harness does ([`super::cluster::write_wal_at`]).
    pub fn write_wal(&self, bytes: u64) -> u64 {
        super::cluster::write_wal_at(self.ip, self.pg_port, bytes)
    }
}

/// The lag limit of HAProxy's replica check (`OPTIONS /replica?lag=N`), in bytes.
pub fn read_lag_limit(haproxy_cfg: &str) -> u64 {
    const CHECK: &str = "option httpchk OPTIONS /replica?lag=";
    let at = haproxy_cfg.find(CHECK).expect("the read check has a lag limit") + CHECK.len();
    let value: String = haproxy_cfg[at..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().expect("a number of bytes");
    let unit = match &value[digits.len()..] {
        "" | "B" => 1,
        "kB" | "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        other => panic!("unknown unit {other}"),
    };
    n * unit
}
