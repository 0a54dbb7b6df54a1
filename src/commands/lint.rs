//! `hacompile lint`: stack/compose files, cluster specs and haproxy.cfg.

use std::io::IsTerminal;
use std::path::PathBuf;

use hacompile_boundary::read::{self, limits};
use hacompile_lint::{Config, Input, Options, Severity, TargetSetting, output};

use crate::{exit, output as out, report};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Human,
    /// One line per finding: `file:line:col: CODE message`.
    Concise,
    Json,
    Sarif,
    Github,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TargetArg {
    Swarm,
    Compose,
    Auto,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// Lint stack/compose files, cluster specs and haproxy.cfg files.
///
/// Directories are walked (respecting .gitignore) for docker-stack*.yml,
/// *stack*.y*ml, compose*.y*ml, docker-compose*.y*ml, any other YAML file
/// with a top-level `services:` (the first 64 KiB are read to tell), cluster
/// specs (*.toml with a [postgres] table) and haproxy*.cfg; the summary says
/// how many files were skipped and why. `-` reads stdin. Exit codes: 0
/// nothing at or above the failure threshold, 1 findings at or above it, 2
/// usage error or unreadable input (other files are still linted).
#[derive(clap::Args)]
pub struct Args {
    /// Files, directories, or `-` for stdin [default: .]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// A lock file to compare image digests with (HC205).
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Use this config instead of the nearest .hacompile.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Report inline `# hacompile-ignore` comments instead of honouring them.
    #[arg(long)]
    no_inline_suppressions: bool,
    /// Fail (exit 1) on findings at or above this severity [default: from config, else warning].
    #[arg(long, value_enum)]
    fail_on: Option<Level>,
    /// What stack/compose files are deployed with: swarm-only rules (HC3xx
    /// and some HC4xx/HC5xx) are not run on compose files [default: from
    /// config, else auto: `deploy:` or a *stack* name is swarm, a
    /// docker-compose*/compose* name without `deploy:` is compose].
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
}

pub fn run(args: Args) -> u8 {
    let mut options = Options {
        forbid_inline: args.no_inline_suppressions,
        fail_on: args.fail_on.map(|l| match l {
            Level::Info => Severity::Info,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
        }),
        target: args.target.map(|t| match t {
            TargetArg::Swarm => TargetSetting::Swarm,
            TargetArg::Compose => TargetSetting::Compose,
            TargetArg::Auto => TargetSetting::Auto,
        }),
        ..Options::default()
    };
    if let Some(path) = &args.lock {
        let text = match read::read_text(path, limits::LOCK) {
            Ok(t) => t,
            Err(e) => {
                report::error(&format!("cannot read the lock file {}: {e}", path.display()), Some("check the path"));
                return exit::INPUT;
            }
        };
        match hacompile_image::LockFile::parse(&text) {
            Ok(l) => options.lock = Some(l),
            Err(e) => {
                report::error(&format!("{}: {e}", path.display()), Some("regenerate it with `hacompile lock SPEC`"));
                return exit::INPUT;
            }
        }
    }
    if let Some(path) = &args.config {
        let parsed =
            read::read_text(path, limits::CONFIG).map_err(|e| format!("cannot read {}: {e}", path.display())).and_then(
                |t| Config::parse(path, &t).map_err(|e| format!("{}: {} ({})", path.display(), e.message, e.help)),
            );
        match parsed {
            Ok(c) => options.config = Some(c),
            Err(e) => {
                report::error(&e, None);
                return exit::INPUT;
            }
        }
    }
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths };
    // A path that cannot be read (missing, a FIFO, unreadable) is an entry
    // of the report, so every format reports it and the rest is still linted.
    let inputs = paths
        .into_iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                Input::Stdin(read::read_bounded(std::io::stdin().lock(), limits::STACK))
            } else {
                Input::Path(p)
            }
        })
        .collect();
    let result = hacompile_lint::run(inputs, &options);
    let written = match args.format {
        // Streamed: a large report is not built in memory first.
        Format::Json => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            match output::json_to(&result, &mut w).and_then(|()| std::io::Write::flush(&mut w)) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            }
        }
        Format::Human => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            out::stdout(output::human(&result, colour).as_bytes())
        }
        Format::Sarif => out::stdout(output::sarif(&result).as_bytes()),
        Format::Github => out::stdout(output::github(&result).as_bytes()),
        Format::Concise => out::stdout(output::concise(&result).as_bytes()),
    };
    if let Err(e) = written {
        report::error(&format!("cannot write the report: {e}"), None);
        return exit::INPUT;
    }
    let code = result.exit_code();
    // The process ends right after this: freeing a report of a large file
    // (hundreds of thousands of small allocations) would only delay the exit.
    std::mem::forget(result);
    code
}
