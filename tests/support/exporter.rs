//! Debian's `prometheus-postgres-exporter` run with the environment and
//! command a compiled exporter service has, localized the way the cluster
//! harness localizes the databases: only the database's address, the
//! secret's path and the listen address change. Stopped on drop.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cluster::{Site, utf8};
use super::registry::free_port;

pub const EXPORTER_BIN: &str = "prometheus-postgres-exporter";

pub struct Exporter {
    pub service: String,
    /// Where it serves /metrics on 127.0.0.1.
    pub port: u16,
    /// The environment it runs with, after localizing.
    pub env: BTreeMap<String, String>,
    child: Child,
}

impl Exporter {
    /// Starts the exporter of compiled service `service` (e.g.
    /// `pg-primary-exporter`) against the database listening at `db`,
    /// as the unprivileged user `nobody` the official image runs as; waits
    /// until it serves /metrics.
    pub fn start(site: &Site, service: &str, db: SocketAddrV4) -> Exporter {
        let svc = site.service(service);
        let mut env = BTreeMap::new();
        for (k, v) in &svc.environment {
            let local = match k.as_str() {
                "DATA_SOURCE_URI" => {
                    let (host, rest) = v.split_once(':').expect("DATA_SOURCE_URI is host:port/...");
                    let rest = rest.strip_prefix("5432/").expect("the database's own port");
                    assert!(!host.is_empty() && !host.contains(['@', '/']), "a bare service name: {v}");
                    format!("{db}/{rest}")
                }
                _ => match v.strip_prefix("/run/secrets/") {
                    Some(name) => utf8(&site.secrets.join(name)).to_owned(),
                    None => v.clone(),
                },
            };
            env.insert(k.clone(), local);
        }
        let port = free_port();
        let command = svc.command.as_ref().expect("the exporter's command sets its listen address");
        let args: Vec<String> = command
            .iter()
            .map(|a| match a.strip_prefix("--web.listen-address=:") {
                Some(_) => format!("--web.listen-address=127.0.0.1:{port}"),
                None => site.localize_paths(service, a),
            })
            .collect();
        assert!(args.iter().any(|a| a.ends_with(&format!("127.0.0.1:{port}"))), "a listen address: {command:?}");
        let log = std::fs::File::create(site.root.join(format!("{service}.log"))).expect("log");
        let child = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", EXPORTER_BIN])
            .args(&args)
            .env_clear()
            .envs(&env)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("`{EXPORTER_BIN}` must be installed (tests/setup.sh): {e}"));
        let mut exporter = Exporter { service: service.into(), port, env, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while exporter.metrics().is_none() {
            let exited = exporter.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{service} does not serve /metrics (exit: {exited:?}); its log:\n{}",
                exporter.log(site)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        exporter
    }

    /// One scrape of /metrics, or None when nothing answers.
    pub fn metrics(&self) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{}/metrics", self.port))
            .output()
            .expect("curl runs");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The exporter's own log (what it printed to stderr).
    pub fn log(&self, site: &Site) -> String {
        std::fs::read_to_string(site.root.join(format!("{}.log", self.service))).unwrap_or_default()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
