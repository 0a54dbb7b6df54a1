//! `hacompile init`: a commented starter spec from a few answers.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use hacompile_image::ImageRef;
use hacompile_spec::starter::{self, Answers, StarterTopology};
use hacompile_spec::{SourceFile, load, values};

use crate::{exit, output, report};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Topology {
    /// A fixed primary and replicas, each pinned to its node.
    Pinned,
    /// Patroni members with automatic failover, and etcd.
    Patroni,
}

/// Write a commented starter spec for a few answers.
///
/// On a terminal, every answer not given as a flag is asked for (Enter takes
/// the default shown). When stdin is not a terminal, or with --yes, a
/// missing answer takes its default and stderr says which ones did: init
/// never waits for input a script cannot give. The spec is checked before it
/// is written (it builds once its images are locked) and lists, in its
/// header, the node labels, the `docker secret create` commands and the
/// steps of the first deploy. An existing file is never replaced without
/// --force. Exit codes: 0 written, 2 an invalid answer, an existing file or
/// an I/O error.
#[derive(clap::Args)]
pub struct Args {
    /// Where to write the spec [default: spec.toml].
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// pinned: a fixed primary and replicas; patroni: automatic failover [default: pinned].
    #[arg(long, value_enum)]
    topology: Option<Topology>,
    /// Database nodes: the primary plus its replicas (pinned, 2..=17) or the
    /// Patroni members (2..=16) [default: 2 pinned, 3 patroni]. etcd gets 3 members.
    #[arg(long, value_name = "N")]
    nodes: Option<usize>,
    /// The stack name you deploy with [default: ha_db].
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,
    /// The PostgreSQL image (official flavor), with a tag [default: postgres:16].
    #[arg(long, value_name = "IMAGE")]
    postgres_image: Option<String>,
    /// The HAProxy image, with a tag [default: haproxy:2.8].
    #[arg(long, value_name = "IMAGE")]
    haproxy_image: Option<String>,
    /// The Patroni members' image you build from patroni.Dockerfile (patroni
    /// topology) [default: registry.example.com/ha_db/patroni:16].
    #[arg(long, value_name = "IMAGE")]
    patroni_image: Option<String>,
    /// The etcd image (patroni topology) [default: quay.io/coreos/etcd:v3.5.17].
    #[arg(long, value_name = "IMAGE")]
    etcd_image: Option<String>,
    /// Ask nothing: every answer not given as a flag takes its default.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

const DEFAULT_STACK: &str = "ha_db";
const DEFAULT_POSTGRES: &str = "postgres:16";
const DEFAULT_HAPROXY: &str = "haproxy:2.8";
const DEFAULT_PATRONI: &str = "registry.example.com/ha_db/patroni:16";
const DEFAULT_ETCD: &str = "quay.io/coreos/etcd:v3.5.17";
const DEFAULT_OUTPUT: &str = "spec.toml";
/// Wrong answers to one question before init gives up (exit 2).
const MAX_ATTEMPTS: usize = 5;
/// The longest answer line read from a terminal.
const MAX_LINE: u64 = 4096;

/// Where answers come from: the terminal, or defaults (said on stderr).
struct Asker {
    interactive: bool,
    defaulted: Vec<String>,
    why: &'static str,
}

impl Asker {
    /// The flag's value, checked; else the answer typed at the prompt, else
    /// the default. Err is the exit code.
    fn answer<T: std::fmt::Display>(
        &mut self,
        flag: &str,
        question: &str,
        given: Option<T>,
        default: T,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, u8> {
        if let Some(v) = given {
            // Flags were checked already (check_flags), with every error at once.
            return Ok(v);
        }
        if !self.interactive {
            self.defaulted.push(format!("--{flag} {default}"));
            return Ok(default);
        }
        for _ in 0..MAX_ATTEMPTS {
            let mut err = std::io::stderr();
            let _ = write!(err, "{question} [{default}]: ");
            let _ = err.flush();
            let Some(line) = read_line() else {
                // End of input: take the default, as a script would.
                let _ = writeln!(err);
                return Ok(default);
            };
            let line = line.trim();
            if line.is_empty() {
                return Ok(default);
            }
            match check(line) {
                Ok(v) => return Ok(v),
                Err(why) => report::error(&format!("`{line}`: {why}"), None),
            }
        }
        report::error(&format!("no valid answer for {flag} after {MAX_ATTEMPTS} tries"), None);
        Err(exit::INPUT)
    }
}

fn read_line() -> Option<String> {
    let mut buf = Vec::new();
    let n = std::io::stdin().lock().take(MAX_LINE).read_until(b'\n', &mut buf).ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf).into_owned())
}

fn parse_topology(s: &str) -> Result<StarterTopology, String> {
    match s {
        "pinned" => Ok(StarterTopology::Pinned),
        "patroni" => Ok(StarterTopology::Patroni),
        _ => Err("the topology is `pinned` or `patroni`".into()),
    }
}

fn topology_name(t: StarterTopology) -> &'static str {
    match t {
        StarterTopology::Pinned => "pinned",
        StarterTopology::Patroni => "patroni",
    }
}

fn nodes_range(t: StarterTopology) -> (usize, usize) {
    match t {
        StarterTopology::Pinned => (starter::MIN_NODES, starter::MAX_NODES_PINNED),
        StarterTopology::Patroni => (starter::MIN_NODES, starter::MAX_NODES_PATRONI),
    }
}

fn check_nodes(t: StarterTopology, n: usize) -> Result<usize, String> {
    let (min, max) = nodes_range(t);
    if (min..=max).contains(&n) {
        return Ok(n);
    }
    Err(match t {
        StarterTopology::Pinned => {
            format!("the pinned topology has {min} to {max} database nodes: the primary and 1 to {} replicas", max - 1)
        }
        StarterTopology::Patroni => format!("the patroni topology has {min} to {max} members (3 recommended)"),
    })
}

fn parse_nodes(t: StarterTopology, s: &str) -> Result<usize, String> {
    let n = s.parse::<usize>().map_err(|_| "expected a whole number".to_owned())?;
    check_nodes(t, n)
}

fn check_stack(s: &str) -> Result<String, String> {
    values::check_stack_name(s).map(|()| s.to_owned()).map_err(|why| format!("not a valid stack name: {why}"))
}

fn check_image(what: &str, s: &str) -> Result<String, String> {
    let r = ImageRef::parse(s).map_err(|e| format!("not a valid image reference: {e}"))?;
    if r.tag().is_none() && r.digest().is_none() {
        return Err(format!("the {what} image needs a tag, e.g. `{}:16`; the lock pins its digest", r.name()));
    }
    if what == "postgres" {
        let repo = r.repository();
        if repo.starts_with("bitnami/") || repo.starts_with("bitnamilegacy/") {
            return Err(
                "init writes a spec for the official `postgres` image; for the Bitnami image start from examples/bitnami.toml"
                    .into(),
            );
        }
    }
    Ok(s.to_owned())
}

/// Every flag value checked at once; each error printed. True when all are valid.
fn check_flags(args: &Args, topology: Option<StarterTopology>) -> bool {
    let mut ok = true;
    let mut fail = |flag: &str, value: &str, why: String| {
        report::error(&format!("--{flag} {value}: {why}"), None);
        ok = false;
    };
    if let Some(n) = args.nodes {
        let t = topology.unwrap_or(StarterTopology::Pinned);
        if let Err(why) = check_nodes(t, n) {
            fail("nodes", &n.to_string(), why);
        }
    }
    if let Some(s) = &args.stack
        && let Err(why) = check_stack(s)
    {
        fail("stack", s, why);
    }
    for (flag, what, v) in [
        ("postgres-image", "postgres", &args.postgres_image),
        ("haproxy-image", "haproxy", &args.haproxy_image),
        ("patroni-image", "patroni", &args.patroni_image),
        ("etcd-image", "etcd", &args.etcd_image),
    ] {
        if let Some(v) = v
            && let Err(why) = check_image(what, v)
        {
            fail(flag, v, why);
        }
    }
    if topology == Some(StarterTopology::Pinned) {
        for (flag, v) in [("patroni-image", &args.patroni_image), ("etcd-image", &args.etcd_image)] {
            if v.is_some() {
                fail(flag, v.as_deref().unwrap_or_default(), "only the patroni topology uses it".into());
            }
        }
    }
    ok
}

pub fn run(args: Args) -> u8 {
    match init(args) {
        Ok(()) => exit::OK,
        Err(code) => code,
    }
}

fn init(args: Args) -> Result<(), u8> {
    let given_topology = args.topology.map(|t| match t {
        Topology::Pinned => StarterTopology::Pinned,
        Topology::Patroni => StarterTopology::Patroni,
    });
    if !check_flags(&args, given_topology) {
        report::note("nothing was written");
        return Err(exit::INPUT);
    }
    let tty = std::io::stdin().is_terminal();
    let mut ask = Asker {
        interactive: tty && !args.yes,
        defaulted: Vec::new(),
        why: if args.yes { "--yes" } else { "stdin is not a terminal" },
    };
    let topology = ask.answer(
        "topology",
        "Topology: pinned (fixed primary) or patroni (automatic failover)",
        given_topology.map(Named),
        Named(StarterTopology::Pinned),
        |s| parse_topology(s).map(Named),
    )?;
    let topology = topology.0;
    if args.nodes.is_some() && given_topology.is_none() {
        // --nodes was checked against pinned's range; patroni's is narrower.
        if let Some(n) = args.nodes
            && let Err(why) = check_nodes(topology, n)
        {
            report::error(&format!("--nodes {n}: {why}"), None);
            return Err(exit::INPUT);
        }
    }
    let (min, max) = nodes_range(topology);
    let nodes = ask.answer(
        "nodes",
        &match topology {
            StarterTopology::Pinned => format!("Database nodes, the primary and its replicas ({min}-{max})"),
            StarterTopology::Patroni => format!("Patroni members ({min}-{max})"),
        },
        args.nodes,
        match topology {
            StarterTopology::Pinned => 2,
            StarterTopology::Patroni => 3,
        },
        |s| parse_nodes(topology, s),
    )?;
    let stack = ask.answer("stack", "Stack name", args.stack.clone(), DEFAULT_STACK.to_owned(), check_stack)?;
    let postgres_image = ask.answer(
        "postgres-image",
        "PostgreSQL image",
        args.postgres_image.clone(),
        DEFAULT_POSTGRES.to_owned(),
        |s| check_image("postgres", s),
    )?;
    let haproxy_image =
        ask.answer("haproxy-image", "HAProxy image", args.haproxy_image.clone(), DEFAULT_HAPROXY.to_owned(), |s| {
            check_image("haproxy", s)
        })?;
    let (patroni_image, etcd_image) = if topology == StarterTopology::Patroni {
        (
            ask.answer(
                "patroni-image",
                "Patroni members' image (you build it from patroni.Dockerfile)",
                args.patroni_image.clone(),
                DEFAULT_PATRONI.to_owned(),
                |s| check_image("patroni", s),
            )?,
            ask.answer("etcd-image", "etcd image", args.etcd_image.clone(), DEFAULT_ETCD.to_owned(), |s| {
                check_image("etcd", s)
            })?,
        )
    } else {
        if args.patroni_image.is_some() || args.etcd_image.is_some() {
            report::error("--patroni-image and --etcd-image are for the patroni topology only", None);
            return Err(exit::INPUT);
        }
        (String::new(), String::new())
    };
    let path = match args.output.clone() {
        Some(p) => p,
        None if ask.interactive => {
            PathBuf::from(
                ask.answer("output", "Write the spec to", None, DEFAULT_OUTPUT.to_owned(), |s| Ok(s.to_owned()))?,
            )
        }
        None => PathBuf::from(DEFAULT_OUTPUT),
    };
    if !ask.defaulted.is_empty() {
        report::note(&format!("note: {}: using the defaults {}", ask.why, ask.defaulted.join(" ")));
    }

    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let answers =
        Answers { topology, nodes, stack, postgres_image, haproxy_image, patroni_image, etcd_image, file_name };
    let text = starter::render(&answers);
    // The answers were checked one by one; the whole spec is checked too, so
    // init never writes a spec that `build` refuses.
    if let Err(e) = load(&SourceFile::new(path.display().to_string(), text.clone())) {
        report::diagnostics(&e);
        report::error("these answers make no valid spec; nothing was written", None);
        return Err(exit::INPUT);
    }
    write(&path, text.as_bytes(), args.force)?;

    let shown = path.display().to_string();
    let mut next = format!(
        "wrote {shown}: {} topology, {nodes} database nodes. Next: label the nodes and create the secrets (see its header), then ",
        topology_name(topology)
    );
    if topology == StarterTopology::Patroni {
        next.push_str(&format!("build the members' image (`hacompile dockerfile {shown}`), "));
    }
    next.push_str(&format!("`hacompile lock {shown}` and `hacompile build {shown} -o deploy/`"));
    report::note(&next);
    Ok(())
}

fn write(path: &Path, contents: &[u8], force: bool) -> Result<(), u8> {
    let refuse = || {
        report::error(
            &format!("{} exists; nothing was written", path.display()),
            Some("pass --force to replace it, or name another file with -o"),
        );
        exit::INPUT
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        report::error(&format!("{} is a directory; nothing was written", path.display()), Some("name a file with -o"));
        return Err(exit::INPUT);
    }
    let result = if force {
        output::write_atomic(path, contents, false)
    } else {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(refuse());
        }
        output::write_new(path, contents)
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(refuse()),
        Err(e) => {
            report::error(&format!("cannot write {}: {e}", path.display()), None);
            Err(exit::INPUT)
        }
    }
}

/// A topology shown by its name in prompts and notes.
#[derive(Clone, Copy)]
struct Named(StarterTopology);

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(topology_name(self.0))
    }
}
