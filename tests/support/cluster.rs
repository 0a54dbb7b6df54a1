//! A compiled cluster on loopback: PostgreSQL 15 primary and replica set up
//! by the scripts `hacompile build` emits, and HAProxy 2.6 running the
//! compiled haproxy.cfg with only what cannot exist outside a swarm changed
//! ([`localize`]). Everything started here is stopped on drop.
//!
//! Everything comes from the files the binary wrote, not from the library:
//! the servers run with the `-c` settings of their service's `command` in
//! docker-stack.yml, the replica entrypoint and the healthcheck get their
//! service's `environment` with only paths, hosts and ports localized, and
//! HAProxy runs the emitted haproxy.cfg. So a test run against another
//! build of the binary exercises that build's output.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use hacompile_stack::{Service, StackFile};

use super::registry::free_port;
use super::{TEST_USERLIST, text};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const SUPERUSER: &str = "cluster_admin";
pub const PASSWORD: &str = "Pw-for-tests-only-1";
pub const REPL_PASSWORD: &str = "Repl:pw\\for-tests";
pub const API_PASSWORD: &str = "Api-pw for tests only";
pub const CIPHER_PASS: &str = "Cipher-pass-for-tests-only";
/// The monitoring role's: every kind of character the scripts allow there
/// (those of base64 and of URLs' unreserved set).
pub const MONITOR_PASSWORD: &str = "Monitor+pw/for=tests_1.~-";
pub const S3_KEY: &str = "AKIAHACOMPILETEST0001";
pub const S3_KEY_SECRET: &str = "S3-key-secret/for+tests-only-7Qx";
pub const STATS_USER: (&str, &str) = ("admin", "test");
pub const PRIMARY: &str = "pg-primary";
pub const REPLICA: &str = "pg-replica-1";
/// What a replica's entrypoint is given beyond its compiled environment:
/// fewer base backup attempts than in production, so a broken test ends sooner.
const HARNESS_REPLICA_ENV: [(&str, &str); 1] = [("HACOMPILE_BASEBACKUP_ATTEMPTS", "10")];

/// The one change a swarm-only haproxy.cfg needs on loopback: each
/// `server-template` over `tasks.<service>` becomes a `server` at the
/// address given for that service (its DNS-only options dropped; a `check
/// port` stays, so the service's address must have it too), the Docker
/// `resolvers` section goes (there is no 127.0.0.11 here), and listener ports
/// map to free ones on 127.0.0.1. Checks, timeouts, `default-server`, ACLs,
/// listener order and the stats section are left exactly as emitted.
pub fn localize(cfg: &str, services: &BTreeMap<String, SocketAddrV4>, ports: &BTreeMap<u16, u16>) -> String {
    const DNS_ONLY: [&str; 3] = ["resolvers", "init-addr", "resolve-prefer"];
    let mut out: Vec<String> = Vec::new();
    let mut in_resolvers = false;
    for line in cfg.lines() {
        let t = line.trim();
        let indent = &line[..line.len() - line.trim_start().len()];
        if indent.is_empty() && !t.is_empty() {
            in_resolvers = t.starts_with("resolvers ");
            if in_resolvers {
                // Its comment goes with it.
                while out.last().is_some_and(|l| l.starts_with('#')) {
                    out.pop();
                }
            }
        }
        if in_resolvers {
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.as_slice() {
            ["server-template", prefix, _count, target, options @ ..] => {
                let (fqdn, _) = target.rsplit_once(':').expect("server-template target has a port");
                let service = fqdn.strip_prefix("tasks.").expect("server-templates point at tasks.<service>");
                let address = services.get(service).unwrap_or_else(|| panic!("no address for {service}"));
                let mut kept = Vec::new();
                let mut it = options.iter();
                while let Some(o) = it.next() {
                    if DNS_ONLY.contains(o) {
                        it.next();
                    } else {
                        kept.push(*o);
                    }
                }
                let rest = if kept.is_empty() { String::new() } else { format!(" {}", kept.join(" ")) };
                out.push(format!("{indent}server {prefix}1 {address}{rest}"));
            }
            ["bind", address, rest @ ..] => {
                let (host, port) = address.rsplit_once(':').expect("bind has a port");
                let port: u16 = port.parse().expect("numeric bind port");
                let host = if host.is_empty() { "127.0.0.1" } else { host };
                let port = *ports.get(&port).unwrap_or(&port);
                let rest = if rest.is_empty() { String::new() } else { format!(" {}", rest.join(" ")) };
                out.push(format!("{indent}bind {host}:{port}{rest}"));
            }
            _ => out.push(line.to_owned()),
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

pub fn as_postgres(cmd: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--", cmd]);
    c.env("PATH", format!("{PG_BIN}:/usr/bin:/bin"));
    c
}

pub fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}:\n{}{}", text(&o.stdout), text(&o.stderr));
    o
}

pub fn chown_postgres(p: &Path) {
    ok(Command::new("chown").args(["-R", "postgres:postgres"]).arg(p).output().expect("chown"), "chown");
}

pub fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub struct Pg {
    pub service: String,
    pub port: u16,
    /// What the service's data volume is mounted as.
    pub volume: PathBuf,
    pub data: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Pg {
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Fast shutdown (SIGINT), as swarm's stop_signal does; waits (bounded).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits (bounded) for the process to exit by itself; None if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        let c = self.child.as_mut()?;
        loop {
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-QUIT", &c.id().to_string()]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The compiled output and where its pieces live on this machine.
pub struct Site {
    pub root: PathBuf,
    pub out: PathBuf,
    pub secrets: PathBuf,
    /// docker-stack.yml as the binary wrote it.
    pub stack: StackFile,
}

impl Site {
    pub fn service(&self, name: &str) -> &Service {
        self.stack.services.get(name).unwrap_or_else(|| panic!("the compiled stack has {name}"))
    }

    /// The `-c name=value` arguments of the service's server command.
    pub fn settings(&self, name: &str) -> Vec<String> {
        let Some(command) = &self.service(name).command else { return Vec::new() };
        let mut words = command.iter().map(String::as_str).skip_while(|w| *w == "docker-entrypoint.sh");
        assert_eq!(words.next(), Some("postgres"), "{name}: the command runs postgres");
        let mut args: Vec<String> = words.map(str::to_owned).collect();
        for pair in args.chunks_mut(2) {
            assert!(pair[0] == "-c" && pair.len() == 2 && pair[1].contains('='), "{name}: not a setting: {pair:?}");
            // Only the archive's commands hold spaces (a program and its arguments).
            let commands = pair[1].starts_with("archive_command=") || pair[1].starts_with("restore_command=");
            assert!(commands || !pair[1].contains(char::is_whitespace), "{name}: a setting with a space: {}", pair[1]);
            if commands {
                pair[1] = self.localize_paths(name, &pair[1]);
            }
        }
        args
    }

    /// `text` with every container path of the service's configs replaced
    /// by the file beside the stack (e.g. the pgBackRest wrapper in
    /// archive_command).
    pub fn localize_paths(&self, name: &str, text: &str) -> String {
        let mut out = text.to_owned();
        for r in &self.service(name).configs {
            if out.contains(&r.target) {
                let file = &self.stack.configs.get(&r.source).expect("a service's config is declared").file;
                out = out.replace(&r.target, utf8(&self.out.join(file)));
            }
        }
        out
    }

    /// A container path from the service's configs, as the file beside the stack.
    pub fn config_file(&self, name: &str, target: &str) -> Option<PathBuf> {
        let r = self.service(name).configs.iter().find(|c| c.target == target)?;
        let file = &self.stack.configs.get(&r.source).expect("a service's config is declared").file;
        Some(self.out.join(file))
    }

    /// The pgBackRest wrapper the service runs (`hacompile-pgbackrest`), as
    /// the postgres user with the service's environment ([`Site::env`]), as
    /// its container would run it; the caller adds the arguments.
    pub fn pgbackrest(&self, pg: &Pg, primary_port: u16) -> Command {
        let wrapper = self.localize_paths(&pg.service, "/usr/local/bin/hacompile-pgbackrest");
        assert!(!wrapper.starts_with("/usr/local"), "{} mounts the pgBackRest wrapper", pg.service);
        let mut cmd = as_postgres(&wrapper);
        cmd.envs(self.env(pg, primary_port));
        cmd
    }

    /// The service's compiled environment, with only what differs on this
    /// machine changed: secrets and its data volume as local paths, the
    /// primary's host and port, and the server's own socket and port.
    pub fn env(&self, pg: &Pg, primary_port: u16) -> BTreeMap<String, String> {
        let svc = self.service(&pg.service);
        let mount = &svc.volumes.iter().find(|m| m.kind == "volume").expect("a data volume").target;
        let mut env: BTreeMap<String, String> = svc
            .environment
            .iter()
            .map(|(k, v)| {
                let local = if let Some(rest) = v.strip_prefix("/run/secrets/") {
                    utf8(&self.secrets.join(rest)).to_owned()
                } else if let Some(rest) = v.strip_prefix(mount.as_str()).filter(|r| r.is_empty() || r.starts_with('/'))
                {
                    format!("{}{rest}", utf8(&pg.volume))
                } else if k == "HACOMPILE_PRIMARY_HOST" {
                    assert_eq!(v, PRIMARY, "replicas follow the primary service");
                    "127.0.0.1".into()
                } else if k == "HACOMPILE_PRIMARY_PORT" {
                    assert_eq!(v, "5432");
                    primary_port.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), local)
            })
            .collect();
        // Config files (pgbackrest.conf) as the files beside the stack.
        for v in env.values_mut() {
            *v = self.localize_paths(&pg.service, v);
        }
        // pgBackRest: a posix repository's volume, a private CA's secret, and
        // the server's socket and port, which are its defaults in the container.
        if env.contains_key("PGBACKREST_CONFIG") {
            let conf = self
                .config_file(&pg.service, "/etc/pgbackrest/pgbackrest.conf")
                .map(|f| std::fs::read_to_string(f).expect("pgbackrest.conf written"))
                .expect("the service mounts pgbackrest.conf");
            if conf.lines().any(|l| l == "repo1-type=posix") {
                env.insert("PGBACKREST_REPO1_PATH".into(), utf8(&self.root.join("repo")).into());
            }
            if let Some(ca) = conf.lines().find_map(|l| l.strip_prefix("repo1-storage-ca-file=/run/secrets/")) {
                env.insert("PGBACKREST_REPO1_STORAGE_CA_FILE".into(), utf8(&self.secrets.join(ca)).into());
            }
            env.insert("PGBACKREST_PG1_SOCKET_PATH".into(), utf8(&pg.socket).into());
            env.insert("PGBACKREST_PG1_PORT".into(), pg.port.to_string());
            env.insert("PGBACKREST_LOCK_PATH".into(), utf8(&self.root.join(format!("lock-{}", pg.service))).into());
        }
        // In the container these are the defaults (/var/run/postgresql, 5432).
        env.insert("HACOMPILE_SOCKET_DIR".into(), utf8(&pg.socket).into());
        env.insert("HACOMPILE_PORT".into(), pg.port.to_string());
        env.insert("PATH".into(), format!("{PG_BIN}:/usr/bin:/bin"));
        env
    }
}

/// How the harness runs a server: its data, port and socket, on loopback only.
fn server_args(data: &Path, port: u16, socket: &Path) -> Vec<String> {
    vec![
        "-D".into(),
        utf8(data).into(),
        "-p".into(),
        port.to_string(),
        "-k".into(),
        utf8(socket).into(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
    ]
}

fn spawn_postgres(site: &Site, pg: &Pg) -> Child {
    spawn_postgres_with(site, pg, &[])
}

/// [`spawn_postgres`] with `extra` arguments after the compiled settings
/// (`-c name=value`: the last setting of a name wins).
fn spawn_postgres_with(site: &Site, pg: &Pg, extra: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&pg.log).expect("log");
    as_postgres("postgres")
        .envs(site.env(pg, pg.port))
        .args(site.settings(&pg.service))
        .args(extra)
        .args(server_args(&pg.data, pg.port, &pg.socket))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres starts")
}

fn new_pg(site: &Site, service: &str, dir: &str, port: u16) -> Pg {
    let volume = site.root.join(dir).join("data");
    Pg {
        service: service.into(),
        port,
        data: volume.join("pgdata"),
        volume,
        socket: site.root.join(dir).join("sock"),
        child: None,
        log: site.root.join(format!("{dir}.log")),
    }
}

/// Does what the official image's entrypoint does on first start (initdb
/// with the user and password from their `_FILE`s, a socket-only temporary
/// server with the service's command-line settings, the scripts in
/// /docker-entrypoint-initdb.d, `host all all all scram-sha-256`), running
/// the init script hacompile emitted, then starts the server.
///
/// First the primary's emitted entrypoint runs (its checks only, then
/// `true` in place of the image's entrypoint), with the replica at
/// `replica_port`: an `Err` holds its log when it refused to start.
fn init_primary(site: &Site, port: u16, replica_port: u16, guarded: bool) -> Result<Pg, String> {
    let mut pg = new_pg(site, PRIMARY, "primary", port);
    let _ = std::fs::remove_dir_all(&pg.volume);
    std::fs::create_dir_all(&pg.socket).expect("mkdir");
    std::fs::create_dir_all(&pg.volume).expect("mkdir");
    chown_postgres(&site.root.join("primary"));
    let data = utf8(&pg.data).to_owned();
    if guarded {
        let svc = site.service(PRIMARY);
        let entrypoint = svc.entrypoint.as_ref().expect("the primary runs the emitted entrypoint");
        // After the backup scheduler's `launch`, if any (the tests run it themselves).
        let script = entrypoint
            .iter()
            .skip(if entrypoint.get(1).is_some_and(|w| w == "launch") { 2 } else { 0 })
            .find_map(|w| site.config_file(PRIMARY, w))
            .expect("the primary's entrypoint is an emitted script");
        let mut env = site.env(&pg, port);
        let replicas = env.get("HACOMPILE_REPLICAS").expect("the primary knows its replicas");
        assert_eq!(replicas, &format!("{REPLICA}:5432"), "the replica services, by name and port");
        env.insert("HACOMPILE_REPLICAS".into(), format!("127.0.0.1:{replica_port}"));
        let checked = as_postgres("bash").arg(&script).arg("true").envs(&env).output().expect("entrypoint");
        if !checked.status.success() {
            return Err(String::from_utf8_lossy(&checked.stderr).into_owned());
        }
    }
    ok(
        as_postgres("initdb")
            .args([
                "-D",
                &data,
                "--username",
                SUPERUSER,
                "--pwfile",
                utf8(&site.secrets.join("postgres_password")),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
            ])
            .output()
            .expect("initdb"),
        "initdb",
    );
    let env = site.env(&pg, port);
    // The temporary init-time server: socket only, with the command's settings.
    // pg_ctl passes -o through a shell, as the image's entrypoint quotes it.
    let mut options: Vec<String> = site.settings(PRIMARY).iter().map(|w| format!("'{w}'")).collect();
    options.extend(["-c".into(), "listen_addresses=''".into(), "-p".into(), port.to_string()]);
    options.extend(["-k".into(), utf8(&pg.socket).into()]);
    ok(
        as_postgres("pg_ctl")
            .args(["-D", &data, "-w", "-o", &options.join(" "), "start", "-l", utf8(&pg.log)])
            .envs(&env)
            .output()
            .expect("pg_ctl"),
        "temporary server",
    );
    let database = env.get("POSTGRES_DB").map_or("postgres", String::as_str);
    ok(
        as_postgres("createdb")
            .args(["-h", utf8(&pg.socket), "-p", &port.to_string(), "-U", SUPERUSER, database])
            .output()
            .expect("createdb"),
        "POSTGRES_DB",
    );
    let scripts: Vec<&str> = site
        .service(PRIMARY)
        .configs
        .iter()
        .filter(|c| c.target.starts_with("/docker-entrypoint-initdb.d/"))
        .map(|c| c.target.as_str())
        .collect();
    assert!(!scripts.is_empty(), "the primary runs an init script");
    for target in scripts {
        let script = site.config_file(PRIMARY, target).expect("config");
        let init = as_postgres("bash")
            .arg(script)
            .envs(&env)
            .env("POSTGRES_USER", SUPERUSER)
            .env("PGHOST", &pg.socket)
            .env("PGPORT", port.to_string())
            .output()
            .expect("init script");
        ok(init, "the emitted primary init script");
    }
    ok(
        as_postgres("pg_ctl").args(["-D", &data, "-w", "-m", "fast", "stop"]).output().expect("pg_ctl"),
        "stop the temporary server",
    );
    // The official image appends this after initdb (POSTGRES_HOST_AUTH_METHOD unset).
    let hba = std::fs::read_to_string(pg.data.join("pg_hba.conf")).expect("hba");
    std::fs::write(pg.data.join("pg_hba.conf"), format!("{hba}host all all all scram-sha-256\n")).expect("write");
    pg.child = Some(spawn_postgres(site, &pg));
    wait_for("the primary to accept connections", Duration::from_secs(30), || sql(port, "select 1").is_ok());
    Ok(pg)
}

/// Runs the replica service's entrypoint (the emitted script) with its
/// compiled environment and server command; does not wait for it.
fn spawn_replica(site: &Site, port: u16, primary_port: u16, extra: &BTreeMap<String, String>) -> Pg {
    let mut pg = new_pg(site, REPLICA, "replica", port);
    if !pg.volume.exists() {
        std::fs::create_dir_all(&pg.socket).expect("mkdir");
        std::fs::create_dir_all(&pg.volume).expect("mkdir");
        chown_postgres(&site.root.join("replica"));
    }
    let svc = site.service(REPLICA);
    let entrypoint = svc.entrypoint.as_ref().expect("the replica runs the emitted entrypoint");
    // The backup scheduler the entrypoint would start detached is run by
    // the tests themselves, bounded ([`Cluster::backup`]).
    let entrypoint: Vec<String> = entrypoint
        .iter()
        .skip(if entrypoint.get(1).is_some_and(|w| w == "launch") { 2 } else { 0 })
        .map(|w| site.config_file(REPLICA, w).map_or_else(|| w.clone(), |p| utf8(&p).to_owned()))
        .collect();
    let mut env = site.env(&pg, primary_port);
    for (k, v) in HARNESS_REPLICA_ENV {
        env.entry(k.into()).or_insert_with(|| v.into());
    }
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(&pg.log).expect("log");
    let child = as_postgres(&entrypoint[0])
        .args(&entrypoint[1..])
        .arg(format!("{PG_BIN}/postgres"))
        .args(site.settings(REPLICA))
        .args(server_args(&pg.data, port, &pg.socket))
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("replica entrypoint");
    pg.child = Some(child);
    pg
}

/// Waits until the replica serves; fails at once, with its log, if its
/// entrypoint or server exits meanwhile.
fn wait_replica(pg: &mut Pg, limit: Duration) {
    let port = pg.port;
    wait_for("the replica to accept connections", limit, || {
        assert!(pg.running(), "the replica exited:\n{}", log_lines(&pg.log_text(), ""));
        sql(port, "select pg_is_in_recovery()").is_ok_and(|r| r == "t")
    });
}

pub struct Cluster {
    pub site: Site,
    pub primary: Pg,
    pub replica: Pg,
    pub haproxy: Option<Child>,
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
    /// haproxy.cfg as the binary wrote it, and as HAProxy runs it here.
    pub compiled_cfg: String,
    pub local_cfg: String,
    /// Added to the replica entrypoint's environment at its next start.
    pub replica_env: BTreeMap<String, String>,
    root: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut h) = self.haproxy.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

/// A compiled primary alone, without replica or HAProxy: the database
/// service as its first start sets it up ([`init_primary`]), for
/// measurements of one server (benches/backup.rs). Stopped on drop, then
/// its directory removed.
pub struct Primary {
    pub site: Site,
    pub pg: Pg,
    root: tempfile::TempDir,
}

impl Primary {
    /// Compiles `spec_text` and starts its primary.
    pub fn start(spec_text: &str) -> Primary {
        let (root, site) = compile(spec_text);
        // No replica listens where its entrypoint asks: a first deploy.
        let pg = init_primary(&site, free_port(), free_port(), true).expect("a primary alone starts");
        Primary { site, pg, root }
    }

    /// Fast shutdown, then the server again on its data with its compiled
    /// settings followed by `extra` (`-c name=value`: the last of a name
    /// wins); waits until it accepts connections.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.pg.stop();
        self.pg.child = Some(spawn_postgres_with(&self.site, &self.pg, extra));
        let port = self.pg.port;
        wait_for("the primary to accept connections", Duration::from_secs(120), || sql(port, "select 1").is_ok());
    }

    /// The service's pgBackRest wrapper ([`Site::pgbackrest`]).
    pub fn pgbackrest(&self) -> Command {
        self.site.pgbackrest(&self.pg, self.pg.port)
    }
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    assert!(try_wait_for(limit, &mut f), "timed out after {limit:?} waiting for {what}");
    start.elapsed()
}

/// Polls `f` every 100 ms until it is true (true) or `limit` passed (false).
pub fn try_wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `psql -tAc SQL` through `port` as the superuser; Err(stderr) on failure.
pub fn sql(port: u16, query: &str) -> Result<String, String> {
    sql_at(Ipv4Addr::LOCALHOST, port, query)
}

/// `psql -tAc SQL` to `host:port` as the superuser; Err(stderr) on failure.
pub fn sql_at(host: Ipv4Addr, port: u16, query: &str) -> Result<String, String> {
    let out = psql_at(host, port).args(["-c", query]).output().expect("psql runs");
    if out.status.success() { Ok(text(&out.stdout).trim().to_owned()) } else { Err(text(&out.stderr)) }
}

/// psql to `port` on loopback as the superuser, unquiet about errors.
pub fn psql(port: u16) -> Command {
    psql_at(Ipv4Addr::LOCALHOST, port)
}

/// psql to `host:port` as the superuser, unquiet about errors.
pub fn psql_at(host: Ipv4Addr, port: u16) -> Command {
    let mut c = Command::new("psql");
    c.args(["-X", "-tA", "-v", "ON_ERROR_STOP=1"])
        .env("PGHOST", host.to_string())
        .env("PGPORT", port.to_string())
        .env("PGUSER", SUPERUSER)
        .env("PGDATABASE", "app")
        .env("PGPASSWORD", PASSWORD)
        .env("PGCONNECT_TIMEOUT", "2");
    c
}

pub fn stats_csv(port: u16, user: Option<(&str, &str)>) -> (u16, String) {
    let mut args = vec![
        "-s".to_owned(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "--max-time".into(),
        "5".into(),
    ];
    if let Some((u, p)) = user {
        args.extend(["-u".into(), format!("{u}:{p}")]);
    }
    args.push(format!("http://127.0.0.1:{port}/stats;csv"));
    let out = Command::new("curl").args(&args).output().expect("curl runs");
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// One column of each server of a listener, from the CSV stats.
pub fn server_column(csv: &str, proxy: &str, column: &str) -> BTreeMap<String, String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("stats CSV has {name}"));
    let (px, sv, c) = (col("pxname"), col("svname"), col(column));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > c.max(sv) && f[px] == proxy && f[sv] != "FRONTEND" && f[sv] != "BACKEND")
        .map(|f| (f[sv].to_owned(), f[c].to_owned()))
        .collect()
}

/// One column of one row (`svname` a server, FRONTEND or BACKEND) of a listener.
pub fn stat(csv: &str, proxy: &str, svname: &str, column: &str) -> Option<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv, c) = (col("pxname")?, col("svname")?, col(column)?);
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.len() > c.max(sv) && f[px] == proxy && f[sv] == svname)
        .map(|f| f[c].to_owned())
}

/// (status, check_status) of each server of a listener, from the CSV stats.
pub fn servers(csv: &str, proxy: &str) -> BTreeMap<String, (String, String)> {
    let checks = server_column(csv, proxy, "check_status");
    server_column(csv, proxy, "status").into_iter().map(|(k, s)| (k.clone(), (s, checks[&k].clone()))).collect()
}

/// What a healthcheck run returned.
#[derive(Debug)]
pub struct Health {
    pub code: i32,
    pub output: String,
}

impl Health {
    pub fn healthy(&self) -> bool {
        self.code == 0
    }
}

/// Test values of the secrets a compiled stack declares, by secret name.
pub const SECRETS: [(&str, &str); 8] = [
    ("postgres_user", SUPERUSER),
    ("postgres_password", PASSWORD),
    ("replication_password", REPL_PASSWORD),
    ("patroni_api_password", API_PASSWORD),
    ("backup_cipher_pass", CIPHER_PASS),
    ("monitor_password", MONITOR_PASSWORD),
    ("backup_s3_key", S3_KEY),
    ("backup_s3_key_secret", S3_KEY_SECRET),
];

/// Runs `hacompile build` on `spec_text` in a new temp dir (owned by
/// postgres, readable by all) and writes the Docker secrets as files in
/// its `secrets/`.
pub fn compile(spec_text: &str) -> (tempfile::TempDir, Site) {
    let root = tempfile::tempdir().expect("temp dir");
    chown_postgres(root.path());
    std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let out = root.path().join("out");
    std::fs::write(root.path().join("spec.toml"), spec_text).expect("write");
    // The example lock, plus placeholders for the images no registry serves offline (the Patroni image, etcd).
    std::fs::rename(super::examples_lock(root.path()), root.path().join("hacompile.lock")).expect("rename");
    let build = Command::new(env!("CARGO_BIN_EXE_hacompile"))
        .current_dir(root.path())
        .args(["build", "spec.toml", "-o", "out"])
        .output()
        .expect("build");
    ok(build, "hacompile build");
    let stack: StackFile =
        serde_yaml_ng::from_str(&std::fs::read_to_string(out.join("docker-stack.yml")).expect("stack written"))
            .expect("the emitted stack parses");

    // The Docker secrets, as files in a secrets directory.
    let secrets = root.path().join("secrets");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    for (name, value) in SECRETS {
        // Docker secrets created with `printf | docker secret create` have no newline; test with one anyway.
        std::fs::write(secrets.join(name), format!("{value}\n")).expect("write");
    }
    std::fs::write(secrets.join("haproxy_stats_users"), TEST_USERLIST).expect("write");
    chown_postgres(&secrets);
    let site = Site { root: root.path().to_owned(), out, secrets, stack };
    (root, site)
}

/// HAProxy running the compiled haproxy.cfg, localized.
pub struct Proxy {
    pub child: Child,
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
    /// haproxy.cfg as the binary wrote it, and as HAProxy runs it here.
    pub compiled_cfg: String,
    pub local_cfg: String,
}

/// Starts HAProxy on the site's haproxy.cfg, [`localize`]d with `services`
/// and every listener on a free port of 127.0.0.1; returns once it listens.
/// The ports are found by section: `postgres_write`, `postgres_read`, `stats`.
pub fn start_haproxy(site: &Site, services: &BTreeMap<String, SocketAddrV4>) -> Proxy {
    let compiled_cfg = std::fs::read_to_string(site.out.join("haproxy.cfg")).expect("emitted haproxy.cfg");
    let mut ports = BTreeMap::new();
    let mut by_section = BTreeMap::new();
    let mut section = "";
    for line in compiled_cfg.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [kind, name, ..] if !line.starts_with(' ') && ["listen", "frontend"].contains(kind) => section = name,
            ["bind", address, ..] => {
                let port: u16 = address.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a bind port");
                let local = *ports.entry(port).or_insert_with(free_port);
                by_section.insert(section.to_owned(), local);
            }
            _ => {}
        }
    }
    let port_of = |name: &str| *by_section.get(name).unwrap_or_else(|| panic!("haproxy.cfg has no {name} listener"));
    let (write_port, read_port) = (port_of("postgres_write"), port_of("postgres_read"));
    let stats_port = by_section.get("stats").copied().unwrap_or(0);
    let local_cfg = localize(&compiled_cfg, services, &ports);
    let local = site.root.join("haproxy.local.cfg");
    std::fs::write(&local, &local_cfg).expect("write");
    let mut haproxy_args = vec!["-db".to_owned(), "-f".into(), utf8(&local).into()];
    if compiled_cfg.contains("http_auth(hacompile_stats)") {
        haproxy_args.extend(["-f".into(), utf8(&site.secrets.join("haproxy_stats_users")).into()]);
    }
    let check = Command::new("haproxy").arg("-c").args(&haproxy_args[1..]).output().expect("haproxy");
    ok(check, "haproxy -c on the localized config");
    let child = Command::new("haproxy")
        .args(&haproxy_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy starts");
    let proxy = Proxy { child, write_port, read_port, stats_port, compiled_cfg, local_cfg };
    wait_for("HAProxy to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", write_port)).is_ok()
    });
    proxy
}

impl Cluster {
    /// Compiles `spec_text` and starts primary, replica and HAProxy.
    pub fn start(spec_text: &str) -> Cluster {
        Self::start_with(spec_text, BTreeMap::new())
    }

    /// As [`Cluster::start`], the replica entrypoint getting `replica_env` too.
    pub fn start_with(spec_text: &str, replica_env: BTreeMap<String, String>) -> Cluster {
        Self::start_full(spec_text, replica_env, &[])
    }

    /// As [`Cluster::start`], with more Docker secrets as files (name, the
    /// file that holds its value) before any server starts.
    pub fn start_with_secrets(spec_text: &str, secrets: &[(&str, &Path)]) -> Cluster {
        Self::start_full(spec_text, BTreeMap::new(), secrets)
    }

    fn start_full(spec_text: &str, replica_env: BTreeMap<String, String>, secrets: &[(&str, &Path)]) -> Cluster {
        let (root, site) = compile(spec_text);
        for (name, file) in secrets {
            std::fs::copy(file, site.secrets.join(name)).expect("copy a secret");
        }
        chown_postgres(&site.secrets);
        let replica_port = free_port();
        let primary = init_primary(&site, free_port(), replica_port, true)
            .unwrap_or_else(|log| panic!("the first start of the primary refused:\n{log}"));
        let mut replica = spawn_replica(&site, replica_port, primary.port, &replica_env);
        wait_replica(&mut replica, Duration::from_secs(60));

        let services = BTreeMap::from([
            (PRIMARY.to_owned(), SocketAddrV4::new(Ipv4Addr::LOCALHOST, primary.port)),
            (REPLICA.to_owned(), SocketAddrV4::new(Ipv4Addr::LOCALHOST, replica.port)),
        ]);
        let proxy = start_haproxy(&site, &services);
        Cluster {
            site,
            primary,
            replica,
            haproxy: Some(proxy.child),
            write_port: proxy.write_port,
            read_port: proxy.read_port,
            stats_port: proxy.stats_port,
            compiled_cfg: proxy.compiled_cfg,
            local_cfg: proxy.local_cfg,
            replica_env,
            root,
        }
    }

    /// Runs the pgBackRest wrapper the services run (`hacompile-pgbackrest
    /// ARGS`) with a service's environment, as its container would.
    pub fn pgbackrest(&self, service: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.pgbackrest_command(service, args, extra).output().expect("the wrapper runs")
    }

    /// The command [`Cluster::pgbackrest`] runs, to start it without waiting.
    pub fn pgbackrest_command(&self, service: &str, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let pg = if service == PRIMARY { &self.primary } else { &self.replica };
        let mut cmd = self.site.pgbackrest(pg, self.primary.port);
        cmd.args(args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the replica's entrypoint again and waits until it serves.
    pub fn restart_replica(&mut self) {
        self.spawn_replica();
        wait_replica(&mut self.replica, Duration::from_secs(60));
    }

    /// Starts the replica's entrypoint again (after [`Pg::stop`]); does not wait.
    pub fn spawn_replica(&mut self) {
        assert!(!self.replica.running(), "the replica was stopped first");
        self.replica = spawn_replica(&self.site, self.replica.port, self.primary.port, &self.replica_env);
    }

    pub fn restart_primary(&mut self) {
        assert!(!self.primary.running(), "the primary was stopped first");
        self.primary.child = Some(spawn_postgres(&self.site, &self.primary));
        let port = self.primary.port;
        wait_for("the primary to accept connections", Duration::from_secs(30), || sql(port, "select 1").is_ok());
    }

    /// A new primary volume at the same address: stops the primary, removes
    /// its data and starts it as a first start does, its entrypoint asking
    /// the replica first. `Err`: the entrypoint refused, with its log (the
    /// primary stays stopped, its volume empty).
    pub fn recreate_primary(&mut self) -> Result<(), String> {
        self.primary.stop();
        self.primary = init_primary(&self.site, self.primary.port, self.replica.port, true)?;
        Ok(())
    }

    /// [`Cluster::recreate_primary`] as if the replica could not be asked
    /// (a partition while the primary started): a new cluster beside it.
    pub fn recreate_primary_unasked(&mut self) {
        self.primary.stop();
        self.primary = init_primary(&self.site, self.primary.port, self.replica.port, false).expect("not asked");
    }

    /// Runs a service's compiled healthcheck as Docker would in its
    /// container (as root, with the service's environment, bounded by its
    /// `timeout`; a timeout counts as unhealthy, code 124).
    pub fn healthcheck(&self, service: &str) -> Health {
        let svc = self.site.service(service);
        let hc = svc.healthcheck.as_ref().expect("database services have a healthcheck");
        let pg = if service == PRIMARY { &self.primary } else { &self.replica };
        let env = self.site.env(pg, self.primary.port);
        let timeout = hc.timeout.trim_end_matches('s').parse::<u64>().expect("a timeout in seconds");
        let mut cmd = Command::new("timeout");
        cmd.arg(timeout.to_string()).env_clear().envs(&env);
        match hc.test.first().map(String::as_str) {
            Some("CMD") => {
                for w in &hc.test[1..] {
                    cmd.arg(self.site.config_file(service, w).map_or_else(|| w.clone(), |p| utf8(&p).to_owned()));
                }
            }
            Some("CMD-SHELL") => {
                // Compose's `$$` is a literal `$`; the image's server is at its default port.
                let script = hc.test[1]
                    .replace("$$", "$")
                    .replace("/run/secrets/", &format!("{}/", utf8(&self.site.secrets)))
                    .replace("-p 5432", &format!("-p {}", pg.port));
                cmd.args(["sh", "-c", &script]);
            }
            other => panic!("unexpected healthcheck {other:?}"),
        }
        let out = cmd.output().expect("healthcheck runs");
        Health {
            code: out.status.code().unwrap_or(-1),
            output: format!("{}{}", text(&out.stdout), text(&out.stderr)).trim().to_owned(),
        }
    }
}

/// Polls `f` every 200 ms until it is true; returns (elapsed, failed
/// attempts). Fails the test past `limit`.
pub fn measure(what: &str, limit: Duration, mut f: impl FnMut() -> Result<bool, ()>) -> (Duration, u32) {
    let start = Instant::now();
    let mut failed = 0;
    loop {
        match f() {
            Ok(true) => return (start.elapsed(), failed),
            Ok(false) => {}
            Err(()) => failed += 1,
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn in_recovery(port: u16) -> Result<bool, ()> {
    sql(port, "select pg_is_in_recovery()").map(|r| r == "t").map_err(|_| ())
}

/// Waits for a child (a psql session) to end; Some(success), None if it is
/// still running after `limit` (it is then killed).
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<bool> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.success());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes at least `bytes` of WAL on the server at `port`: rows into
/// `wal_filler`, then a segment switch and a checkpoint per round, so that
/// segments nobody holds are removed. Bounded in rounds and time.
pub fn write_wal(port: u16, bytes: u64) -> u64 {
    write_wal_at(Ipv4Addr::LOCALHOST, port, bytes)
}

/// [`write_wal`] on the server at `host:port`.
pub fn write_wal_at(host: Ipv4Addr, port: u16, bytes: u64) -> u64 {
    let sql = |port: u16, query: &str| sql_at(host, port, query);
    sql(port, "create table if not exists wal_filler (id serial primary key, pad text)").expect("create");
    let from = sql(port, "select pg_current_wal_lsn()").expect("lsn");
    let start = Instant::now();
    for _ in 0..64 {
        sql(port, "insert into wal_filler (pad) select repeat('w', 200) from generate_series(1, 2000)")
            .expect("insert");
        sql(port, "select pg_switch_wal()").expect("switch");
        sql(port, "checkpoint").expect("checkpoint");
        let written: u64 = sql(port, &format!("select pg_wal_lsn_diff(pg_current_wal_lsn(), '{from}')::bigint"))
            .expect("lsn diff")
            .parse()
            .expect("a number");
        if written >= bytes {
            return written;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{written} of {bytes} bytes of WAL in 90 s");
    }
    panic!("fewer than {bytes} bytes of WAL after 64 rounds");
}

/// GET on the stats listener: (status, body).
pub fn stats_get(port: u16, path: &str, user: Option<(&str, &str)>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5"]);
    if let Some((u, p)) = user {
        cmd.args(["-u", &format!("{u}:{p}")]);
    }
    let out = cmd.arg(format!("http://127.0.0.1:{port}{path}")).output().expect("curl runs");
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The value of one Prometheus sample whose labels include all of `labels`.
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().filter(|l| l.starts_with(&format!("{name}{{"))).find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        labels.iter().all(|want| head.contains(want)).then(|| value.parse().ok()).flatten()
    })
}

/// `application_name|state` of each walsender on the server at `port`.
pub fn replication(port: u16) -> String {
    sql(port, "select string_agg(application_name || '|' || state, ',') from pg_stat_replication").unwrap_or_default()
}

/// Walsenders streaming from the server at `port`, whatever their name.
pub fn streaming(port: u16) -> usize {
    sql(port, "select count(*) from pg_stat_replication where state = 'streaming'")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The last lines of a log that mention `needle`, for failure messages.
pub fn log_lines(log: &str, needle: &str) -> String {
    let hits: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
    hits[hits.len().saturating_sub(5)..].join("\n")
}
