//! Reads a [`Snapshot`] through the docker CLI.
//!
//! Each call has a deadline (the CLI is killed past it) and a bound on what
//! it may write (killed past that too), so a hung daemon or a hostile answer
//! can neither hang preflight nor fill its memory. The CLI itself handles
//! `DOCKER_HOST`, `DOCKER_CONTEXT` and TLS settings.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::snapshot::{self, ParseError, Snapshot};

/// How preflight calls docker.
#[derive(Debug, Clone)]
pub struct DockerCli {
    pub program: PathBuf,
    /// The deadline of one call.
    pub timeout: Duration,
    /// The most one call may write to stdout (stderr: 64 KiB).
    pub max_output: u64,
}

impl Default for DockerCli {
    fn default() -> Self {
        Self { program: "docker".into(), timeout: Duration::from_secs(20), max_output: 16 * 1024 * 1024 }
    }
}

const MAX_STDERR: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot run `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`docker {call}` did not answer within {secs} s")]
    Timeout { call: String, secs: u64 },
    #[error("`docker {call}` wrote more than {limit} bytes")]
    TooLarge { call: String, limit: u64 },
    #[error("`docker {call}` failed: {stderr}")]
    Failed { call: String, stderr: String },
    #[error("`docker {call}` wrote text that is not UTF-8")]
    NotUtf8 { call: String },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("this docker daemon is not part of an active swarm (its state: {state})")]
    NoSwarm { state: String },
    #[error("this docker daemon is a swarm worker; preflight reads the swarm from a manager")]
    NotManager,
}

impl DockerError {
    pub fn help(&self) -> &'static str {
        match self {
            DockerError::Spawn { .. } => "install the docker CLI or name it with --docker PATH",
            DockerError::Timeout { .. } => "check that the daemon answers (`docker info`), or raise --timeout",
            DockerError::TooLarge { .. } | DockerError::NotUtf8 { .. } | DockerError::Parse(_) => {
                "this is not the answer of a docker CLI; check --docker and DOCKER_HOST"
            }
            DockerError::Failed { .. } => "check DOCKER_HOST / the docker context and that the daemon runs",
            DockerError::NoSwarm { .. } => {
                "run preflight against a swarm manager: set DOCKER_HOST (or `docker context use`), or create one with `docker swarm init`"
            }
            DockerError::NotManager => {
                "point DOCKER_HOST (or `docker context use`) at a manager; `docker node ls` on a manager lists them"
            }
        }
    }
}

impl DockerCli {
    /// Runs `docker ARGS`; its stdout as text.
    pub fn run(&self, args: &[&str]) -> Result<String, DockerError> {
        let call = args.iter().take(3).copied().collect::<Vec<_>>().join(" ");
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DockerError::Spawn { program: self.program.display().to_string(), source })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        // Each pipe read in its own thread, bounded: one limit past the bound
        // tells "too large" from "exactly at the limit".
        let limit = self.max_output;
        let out = thread::spawn(move || read_up_to(stdout, limit));
        let err = thread::spawn(move || read_up_to(stderr, MAX_STDERR));
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => break None,
            }
        };
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A reader may still wait on a pipe a grandchild holds open: give it
        // a moment, then leave it (it holds at most its bound).
        let grace = Instant::now() + Duration::from_secs(1);
        let stdout = join_by(out, grace);
        let stderr = join_by(err, grace);
        if stdout.as_ref().is_some_and(|o| o.len() as u64 > limit) {
            return Err(DockerError::TooLarge { call, limit });
        }
        let (Some(status), Some(stdout)) = (status, stdout) else {
            return Err(DockerError::Timeout { call, secs: self.timeout.as_secs() });
        };
        let stderr = stderr.unwrap_or_default();
        if !status.success() {
            let text = String::from_utf8_lossy(&stderr);
            let text = text.trim();
            let shown: String = text.chars().take(400).collect();
            return Err(DockerError::Failed { call, stderr: shown });
        }
        String::from_utf8(stdout).map_err(|_| DockerError::NotUtf8 { call })
    }

    /// Reads the whole snapshot: info, version, nodes, secrets, services and
    /// the nodes of the tasks of services publishing a port in host mode.
    pub fn snapshot(&self) -> Result<Snapshot, DockerError> {
        let membership = snapshot::parse_info(&self.run(&["info", "--format", "{{json .}}"])?)?;
        if membership.state != "active" {
            let state = if membership.state.is_empty() { "unknown".to_owned() } else { membership.state };
            return Err(DockerError::NoSwarm { state });
        }
        if !membership.manager {
            return Err(DockerError::NotManager);
        }
        let (client_api, server_api) = snapshot::parse_version(&self.run(&["version", "--format", "{{json .}}"])?)?;
        let ids = words(&self.run(&["node", "ls", "-q"])?);
        let nodes = if ids.is_empty() {
            Vec::new()
        } else {
            snapshot::parse_nodes(&self.run(&args(&["node", "inspect"], &ids))?)?
        };
        let secrets = snapshot::parse_secrets(&self.run(&["secret", "ls", "--format", "{{json .}}"])?)?;
        let ids = words(&self.run(&["service", "ls", "-q"])?);
        let mut services = if ids.is_empty() {
            Vec::new()
        } else {
            snapshot::parse_services(&self.run(&args(&["service", "inspect"], &ids))?)?
        };
        // The running tasks of every service publishing a port in host mode,
        // in one call (and their nodes in one more): the number of calls,
        // each with its deadline, does not grow with the swarm. Only plain
        // IDs are passed on, after `--`.
        let host: Vec<String> = services
            .iter()
            .filter(|s| s.ports.iter().any(|p| p.mode == "host"))
            .map(|s| s.id.clone())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .collect();
        if !host.is_empty() {
            let ps = ["service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running"];
            let tasks = words(&self.run(&args(&ps, &host))?);
            if !tasks.is_empty() {
                let placed = snapshot::parse_task_nodes(&self.run(&args(&["inspect", "--type", "task"], &tasks))?)?;
                let mut by_service: std::collections::BTreeMap<String, Vec<String>> = Default::default();
                for (service, node) in placed {
                    by_service.entry(service).or_default().push(node);
                }
                for s in &mut services {
                    s.task_nodes = by_service.remove(&s.id).unwrap_or_default();
                }
            }
        }
        Ok(Snapshot { local_node_id: membership.node_id, client_api, server_api, nodes, secrets, services })
    }
}

fn join_by(reader: thread::JoinHandle<Vec<u8>>, deadline: Instant) -> Option<Vec<u8>> {
    while !reader.is_finished() {
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
    reader.join().ok()
}

fn read_up_to(reader: impl Read, limit: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = reader.take(limit.saturating_add(1)).read_to_end(&mut bytes);
    bytes
}

/// IDs one per line; anything that is not an ID is dropped (a hostile CLI
/// must not smuggle options into the next call).
fn words(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned)
        .collect()
}

fn args<'a>(head: &[&'a str], ids: &'a [String]) -> Vec<&'a str> {
    let mut v: Vec<&str> = head.to_vec();
    v.push("--");
    v.extend(ids.iter().map(String::as_str));
    v
}
