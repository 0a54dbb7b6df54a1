//! `hacompile preflight`: would the compiled stack converge on this swarm?

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use hacompile_boundary::text::block;
use hacompile_spec::{SourceFile, SpecErrors, ValidSpec, load};
use hacompile_swarm::docker::DockerCli;
use hacompile_swarm::probe::{LocalBind, NoProbe, PortProbe};
use hacompile_swarm::{Report, Snapshot};

use super::resolving::Format;
use crate::{exit, output, report};

/// Ask the live swarm whether the spec's stack would converge there.
///
/// Compiles the spec (images need no lock: they do not change placement)
/// and reads the swarm through the docker CLI, which honours DOCKER_HOST and
/// the docker context; preflight must talk to a manager. It checks that
/// enough active, ready nodes meet each service's placement constraints,
/// that every external secret exists, that no service of another stack
/// publishes the stack's ports (and, when the daemon runs on this machine,
/// that the ports can be bound here), and that every node's engine and the
/// API are recent enough for the features the stack uses. Each problem is
/// printed with the command that fixes it. Exit codes: 0 the deploy would
/// converge, 1 it would not, 2 invalid spec or docker unreachable / not a
/// swarm manager.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster spec (TOML).
    spec: PathBuf,
    /// The docker CLI to run [default: docker on PATH].
    #[arg(long, value_name = "PATH", default_value = "docker")]
    docker: PathBuf,
    /// Seconds one docker call may take.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    timeout: u64,
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

pub fn run(args: Args) -> u8 {
    let spec = match load_spec(&args) {
        Ok(s) => s,
        Err(e) => {
            report::diagnostics(&e);
            return exit::INPUT;
        }
    };
    let compiled = match hacompile_swarm::stack_of(&spec) {
        Ok(c) => c,
        Err(e) => {
            report::diagnostics(&e);
            return exit::INPUT;
        }
    };
    let cli = DockerCli {
        program: args.docker.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        ..DockerCli::default()
    };
    let swarm = match cli.snapshot() {
        Ok(s) => s,
        Err(e) => {
            report::error(&e.to_string(), Some(e.help()));
            return exit::INPUT;
        }
    };
    let stack_name = spec.spec().stack.get().clone();
    let probe: Box<dyn PortProbe> = if daemon_is_here(&swarm) { Box::new(LocalBind) } else { Box::new(NoProbe) };
    let result = hacompile_swarm::check(&stack_name, &compiled, &swarm, probe.as_ref());
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&result).expect("the report is strings, numbers and lists") + "\n",
        Format::Human => human(&result),
    };
    if let Err(e) = output::stdout(text.as_bytes()) {
        report::error(&format!("cannot write the report to stdout: {e}"), None);
        return exit::INPUT;
    }
    if result.converges() { exit::OK } else { exit::FINDINGS }
}

fn load_spec(args: &Args) -> Result<ValidSpec, SpecErrors> {
    let source = SourceFile::read(&args.spec)?;
    load(&source)
}

/// Ports are tested by binding them only when the daemon is this machine:
/// DOCKER_HOST unset or a unix socket, and the swarm's local node has this
/// machine's hostname.
fn daemon_is_here(swarm: &Snapshot) -> bool {
    let host_env = std::env::var("DOCKER_HOST").unwrap_or_default();
    if !(host_env.is_empty() || host_env.starts_with("unix://")) {
        return false;
    }
    let Ok(hostname) = std::fs::read_to_string("/proc/sys/kernel/hostname") else { return false };
    swarm.nodes.iter().any(|n| n.id == swarm.local_node_id && n.hostname == hostname.trim())
}

fn human(r: &Report) -> String {
    let mut out = Vec::new();
    let _ = writeln!(
        out,
        "preflight: stack {} against a swarm of {} node(s), {} active and ready",
        r.stack, r.nodes, r.schedulable
    );
    for f in &r.findings {
        let _ = writeln!(out, "  problem ({}): {}", f.kind, f.message);
        for fix in &f.fixes {
            let _ = writeln!(out, "    fix: {}", fix.command);
            let _ = writeln!(out, "         # {}", fix.why);
        }
        if let Some(help) = &f.help {
            let _ = writeln!(out, "    help: {help}");
        }
    }
    for p in &r.passed {
        let _ = writeln!(out, "  ok: {p}");
    }
    for u in &r.unseen {
        let _ = writeln!(out, "  not seen: {u}");
    }
    let verdict = if r.converges() {
        "the deploy would converge".to_owned()
    } else {
        format!("the deploy would not converge: {} problem(s)", r.findings.len())
    };
    let _ = writeln!(out, "{verdict}");
    // Everything above was sanitized where it was made; this is the last pass.
    block(&String::from_utf8_lossy(&out)).into_owned()
}
