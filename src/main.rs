//! The `hacompile` binary: parses arguments, calls the library crates, and is
//! the only place that prints or chooses an exit code.

#![allow(clippy::print_stderr)]

mod commands;
mod output;
mod progress;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, the same for every command.
pub mod exit {
    /// Success; nothing at or above the threshold.
    pub const OK: u8 = 0;
    /// Findings at or above the threshold (`lint`), drift (`lock --check`, `pin --check`).
    pub const FINDINGS: u8 = 1;
    /// Usage, invalid or unreadable input, I/O or registry error.
    pub const INPUT: u8 = 2;
}

#[derive(Parser)]
#[command(
    name = "hacompile",
    version,
    about = "Compile a short cluster spec into a hardened docker-stack.yml and haproxy.cfg for highly available PostgreSQL on Docker Swarm"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Build(commands::build::Args),
    Dockerfile(commands::dockerfile::Args),
    Graph(commands::graph::Args),
    Init(commands::init::Args),
    Lint(commands::lint::Args),
    Explain(commands::explain::Args),
    Lock(commands::lock::Args),
    Pin(commands::pin::Args),
    Preflight(commands::preflight::Args),
    Restore(commands::restore::Args),
    Schema(commands::schema::Args),
    Completions(commands::completions::Args),
    Man(commands::completions::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Dockerfile(args) => commands::dockerfile::run(args),
        Command::Graph(args) => commands::graph::run(args),
        Command::Init(args) => commands::init::run(args),
        Command::Lint(args) => commands::lint::run(args),
        Command::Explain(args) => commands::explain::run(args),
        Command::Lock(args) => commands::lock::run(args),
        Command::Pin(args) => commands::pin::run(args),
        Command::Preflight(args) => commands::preflight::run(args),
        Command::Restore(args) => commands::restore::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man(args) => commands::completions::man(args),
    };
    ExitCode::from(code)
}
