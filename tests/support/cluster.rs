//! A compiled cluster on loopback: PostgreSQL 15 primary and replica set up
//! by the scripts `hacompile build` emits, and HAProxy 2.6 running the
//! compiled haproxy.cfg with only what cannot exist outside a swarm changed
//! ([`localize`]). Everything started here is stopped on drop.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hacompile_haproxy::{Config, Directive, SectionKind};

use super::registry::free_port;
use super::{TEST_USERLIST, text};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const SUPERUSER: &str = "cluster_admin";
pub const PASSWORD: &str = "Pw-for-tests-only-1";
pub const REPL_PASSWORD: &str = "Repl:pw\\for-tests";
pub const STATS_USER: (&str, &str) = ("admin", "test");

/// The one change a swarm-only haproxy.cfg needs on loopback: each
/// `server-template` over `tasks.<service>` becomes a `server` at the
/// address given for that service (its DNS-only options dropped), the Docker
/// `resolvers` section goes (there is no 127.0.0.11 here), and listener ports
/// map to free ones. Checks, timeouts, `default-server`, listener order and
/// the stats section are left exactly as compiled.
pub fn localize(config: &mut Config, services: &BTreeMap<String, u16>, ports: &BTreeMap<u16, u16>) {
    config.sections.retain(|s| !matches!(s.kind, SectionKind::Resolvers(_)));
    for section in &mut config.sections {
        for d in &mut section.directives {
            match d {
                Directive::ServerTemplate { prefix, fqdn, options, .. } => {
                    let service = fqdn.strip_prefix("tasks.").expect("server-templates point at tasks.<service>");
                    let port = *services.get(service).unwrap_or_else(|| panic!("no address for {service}"));
                    let mut options = options.clone();
                    options.resolvers = None;
                    options.init_addr.clear();
                    options.resolve_prefer_ipv4 = false;
                    *d = Directive::Server { name: format!("{prefix}1"), address: "127.0.0.1".into(), port, options };
                }
                Directive::Bind { address, port } => {
                    if address.is_empty() {
                        *address = "127.0.0.1".into();
                    }
                    *port = *ports.get(port).unwrap_or(port);
                }
                _ => {}
            }
        }
    }
}

fn as_postgres(cmd: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--", cmd]);
    c.env("PATH", format!("{PG_BIN}:/usr/bin:/bin"));
    c
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}:\n{}{}", text(&o.stdout), text(&o.stderr));
    o
}

fn chown_postgres(p: &Path) {
    ok(Command::new("chown").args(["-R", "postgres:postgres"]).arg(p).output().expect("chown"), "chown");
}

pub struct Pg {
    pub port: u16,
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

pub struct Cluster {
    pub root: tempfile::TempDir,
    pub out: PathBuf,
    pub secrets: PathBuf,
    pub primary: Pg,
    pub replica: Pg,
    pub haproxy: Option<Child>,
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
    pub compiled_cfg: String,
    pub local_cfg: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut h) = self.haproxy.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `psql -tAc SQL` through `port` as the superuser; Err(stderr) on failure.
pub fn sql(port: u16, query: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c", query])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", SUPERUSER)
        .env("PGDATABASE", "app")
        .env("PGPASSWORD", PASSWORD)
        .env("PGCONNECT_TIMEOUT", "2")
        .output()
        .expect("psql runs");
    if out.status.success() { Ok(text(&out.stdout).trim().to_owned()) } else { Err(text(&out.stderr)) }
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

/// (status, check_status) of each server of a listener, from the CSV stats.
pub fn servers(csv: &str, proxy: &str) -> BTreeMap<String, (String, String)> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").trim_start_matches("# ").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("stats CSV has {name}"));
    let (px, sv, st, ck) = (col("pxname"), col("svname"), col("status"), col("check_status"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > ck && f[px] == proxy && f[sv] != "FRONTEND" && f[sv] != "BACKEND")
        .map(|f| (f[sv].to_owned(), (f[st].to_owned(), f[ck].to_owned())))
        .collect()
}

impl Cluster {
    /// Compiles `spec_text` and starts primary, replica and HAProxy.
    pub fn start(spec_text: &str) -> Cluster {
        let root = tempfile::tempdir().expect("temp dir");
        chown_postgres(root.path());
        std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let out = root.path().join("out");
        std::fs::write(root.path().join("spec.toml"), spec_text).expect("write");
        std::fs::write(root.path().join("hacompile.lock"), include_str!("../../examples/hacompile.lock"))
            .expect("write");
        let build = Command::new(env!("CARGO_BIN_EXE_hacompile"))
            .current_dir(root.path())
            .args(["build", "spec.toml", "-o", "out"])
            .output()
            .expect("build");
        ok(build, "hacompile build");

        // The Docker secrets, as files in a secrets directory.
        let secrets = root.path().join("secrets");
        std::fs::create_dir_all(&secrets).expect("mkdir");
        for (name, value) in
            [("postgres_user", SUPERUSER), ("postgres_password", PASSWORD), ("replication_password", REPL_PASSWORD)]
        {
            // Docker secrets created with `printf | docker secret create` have no newline; test with one anyway.
            std::fs::write(secrets.join(name), format!("{value}\n")).expect("write");
        }
        std::fs::write(secrets.join("haproxy_stats_users"), TEST_USERLIST).expect("write");
        chown_postgres(&secrets);

        let primary = start_primary(root.path(), &out, &secrets);
        let replica = start_replica(root.path(), &out, &secrets, primary.port);

        // HAProxy with the compiled config, localized.
        let (write_port, read_port, stats_port, health) = (free_port(), free_port(), free_port(), free_port());
        let spec = hacompile_spec::load(&hacompile_spec::SourceFile::new("spec.toml", spec_text)).expect("valid spec");
        let lock = hacompile_image::LockFile::parse(include_str!("../../examples/hacompile.lock")).expect("lock");
        let compiled = hacompile_compile::compile(&spec, &lock).expect("compiles");
        let compiled_cfg = std::fs::read_to_string(out.join("haproxy.cfg")).expect("emitted haproxy.cfg");
        assert_eq!(compiled.haproxy.render(), compiled_cfg, "the model is the emitted file");
        let s = spec.spec();
        let mut cfg = compiled.haproxy.clone();
        let services =
            BTreeMap::from([("pg-primary".to_owned(), primary.port), ("pg-replica-1".to_owned(), replica.port)]);
        let mut ports = BTreeMap::from([
            (*s.haproxy.write_port.get(), write_port),
            (*s.haproxy.read_port.get(), read_port),
            (hacompile_spec::HAPROXY_HEALTH_PORT, health),
        ]);
        if let Some(st) = &s.haproxy.stats {
            ports.insert(*st.port.get(), stats_port);
        }
        localize(&mut cfg, &services, &ports);
        let local_cfg = cfg.render();
        std::fs::write(root.path().join("haproxy.local.cfg"), &local_cfg).expect("write");
        let mut haproxy_args =
            vec!["-db".to_owned(), "-f".into(), root.path().join("haproxy.local.cfg").display().to_string()];
        if s.haproxy.stats.is_some() {
            haproxy_args.extend(["-f".into(), secrets.join("haproxy_stats_users").display().to_string()]);
        }
        let check = Command::new("haproxy").arg("-c").args(&haproxy_args[1..]).output().expect("haproxy");
        ok(check, "haproxy -c on the localized config");
        let haproxy = Command::new("haproxy")
            .args(&haproxy_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts");
        let cluster = Cluster {
            root,
            out,
            secrets,
            primary,
            replica,
            haproxy: Some(haproxy),
            write_port,
            read_port,
            stats_port,
            compiled_cfg,
            local_cfg,
        };
        wait_for("HAProxy to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", write_port)).is_ok()
        });
        cluster
    }

    pub fn restart_replica(&mut self) {
        let port = self.replica.port;
        self.replica = start_replica_at(self.root.path(), &self.out, &self.secrets, self.primary.port, port, false);
    }

    pub fn restart_primary(&mut self) {
        let p = &self.primary;
        let child = spawn_postgres(&p.data, p.port, &p.socket, &p.log);
        self.primary.child = Some(child);
        let port = self.primary.port;
        wait_for("the primary to accept connections", Duration::from_secs(30), || sql(port, "select 1").is_ok());
    }
}

/// How the harness runs a server: its data, port and socket, on loopback only.
fn server_args(data: &Path, port: u16, socket: &Path) -> Vec<String> {
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    vec![
        "-D".into(),
        path(data),
        "-p".into(),
        port.to_string(),
        "-k".into(),
        path(socket),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
    ]
}

fn spawn_postgres(data: &Path, port: u16, socket: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
    as_postgres("postgres")
        .args(server_args(data, port, socket))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres starts")
}

/// Does what the official image's entrypoint does on first start (initdb
/// with the user and password from their `_FILE`s, a socket-only temporary
/// server, the scripts in /docker-entrypoint-initdb.d, `host all all all
/// scram-sha-256`), running the init script hacompile emitted.
fn start_primary(root: &Path, out: &Path, secrets: &Path) -> Pg {
    let data = root.join("primary/data/pgdata");
    let socket = root.join("primary/sock");
    std::fs::create_dir_all(&socket).expect("mkdir");
    std::fs::create_dir_all(data.parent().expect("parent")).expect("mkdir");
    chown_postgres(&root.join("primary"));
    let log = root.join("primary.log");
    ok(
        as_postgres("initdb")
            .args([
                "-D",
                data.to_str().expect("utf-8"),
                "--username",
                SUPERUSER,
                "--pwfile",
                secrets.join("postgres_password").to_str().expect("utf-8"),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
            ])
            .output()
            .expect("initdb"),
        "initdb",
    );
    std::fs::write(data.join("pg_hba.conf.extra"), "").ok();
    let port = free_port();
    // The temporary init-time server: socket only.
    ok(
        as_postgres("pg_ctl")
            .args([
                "-D",
                data.to_str().expect("utf-8"),
                "-w",
                "-o",
                &format!("-c listen_addresses='' -p {port} -k {}", socket.display()),
                "start",
                "-l",
                log.to_str().expect("utf-8"),
            ])
            .output()
            .expect("pg_ctl"),
        "temporary server",
    );
    ok(
        as_postgres("createdb")
            .args(["-h", socket.to_str().expect("utf-8"), "-p", &port.to_string(), "-U", SUPERUSER, "app"])
            .output()
            .expect("createdb"),
        "POSTGRES_DB",
    );
    let init = as_postgres("bash")
        .arg(out.join("pg-primary-init.sh"))
        .env("PGDATA", &data)
        .env("POSTGRES_USER", SUPERUSER)
        .env("PGHOST", &socket)
        .env("PGPORT", port.to_string())
        .env("HACOMPILE_REPLICATION_USER", "replicator")
        .env("HACOMPILE_REPLICATION_PASSWORD_FILE", secrets.join("replication_password"))
        .output()
        .expect("init script");
    ok(init, "the emitted pg-primary-init.sh");
    ok(
        as_postgres("pg_ctl")
            .args(["-D", data.to_str().expect("utf-8"), "-w", "-m", "fast", "stop"])
            .output()
            .expect("pg_ctl"),
        "stop the temporary server",
    );
    // The official image appends this after initdb (POSTGRES_HOST_AUTH_METHOD unset).
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).expect("hba");
    std::fs::write(data.join("pg_hba.conf"), format!("{hba}host all all all scram-sha-256\n")).expect("write");
    let child = spawn_postgres(&data, port, &socket, &log);
    let pg = Pg { port, data, socket, child: Some(child), log };
    wait_for("the primary to accept connections", Duration::from_secs(30), || sql(port, "select 1").is_ok());
    pg
}

fn start_replica(root: &Path, out: &Path, secrets: &Path, primary_port: u16) -> Pg {
    start_replica_at(root, out, secrets, primary_port, free_port(), true)
}

/// Runs the emitted pg-replica-entrypoint.sh, which takes the base backup on
/// first start and then execs the server command given to it.
fn start_replica_at(root: &Path, out: &Path, secrets: &Path, primary_port: u16, port: u16, first: bool) -> Pg {
    let volume = root.join("replica/data");
    let data = volume.join("pgdata");
    let socket = root.join("replica/sock");
    if first {
        std::fs::create_dir_all(&socket).expect("mkdir");
        std::fs::create_dir_all(&volume).expect("mkdir");
        chown_postgres(&root.join("replica"));
    }
    let log = root.join("replica.log");
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log");
    let child = as_postgres("bash")
        .arg(out.join("pg-replica-entrypoint.sh"))
        .arg(format!("{PG_BIN}/postgres"))
        .args(server_args(&data, port, &socket))
        .env("PGDATA", &data)
        .env("HACOMPILE_PRIMARY_HOST", "127.0.0.1")
        .env("HACOMPILE_PRIMARY_PORT", primary_port.to_string())
        .env("HACOMPILE_REPLICATION_USER", "replicator")
        .env("HACOMPILE_REPLICATION_PASSWORD_FILE", secrets.join("replication_password"))
        .env("HACOMPILE_PGPASS_FILE", volume.join("hacompile.pgpass"))
        .env("HACOMPILE_BASEBACKUP_ATTEMPTS", "10")
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("replica entrypoint");
    let pg = Pg { port, data, socket, child: Some(child), log };
    wait_for("the replica to accept connections", Duration::from_secs(60), || {
        sql(port, "select pg_is_in_recovery()").is_ok_and(|r| r == "t")
    });
    pg
}
