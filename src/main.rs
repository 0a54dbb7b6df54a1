//! The `hacompile` binary: parses arguments, calls the library crates, and is
//! the only place that prints or chooses an exit code.

#![allow(clippy::print_stderr)]

mod commands;
mod output;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes of `build` and `schema`: 0 success, 2 invalid input or I/O error.
/// (`lint` also exits 1 for findings at or above its threshold.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Input = 2,
}

#[derive(Parser)]
#[command(
    name = "hacompile",
    version,
    about = "Compile a short cluster spec into a hardened docker-stack.yml and haproxy.cfg for highly available PostgreSQL on Docker Swarm"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Build(commands::build::Args),
    Lint(commands::lint::Args),
    Explain(commands::explain::Args),
    Lock(commands::lock::Args),
    Pin(commands::pin::Args),
    Schema(commands::schema::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Build(args) => commands::build::run(args) as u8,
        Command::Lint(args) => commands::lint::run(args),
        Command::Explain(args) => commands::explain::run(args),
        Command::Lock(args) => commands::lock::run(args),
        Command::Pin(args) => commands::pin::run(args),
        Command::Schema(args) => commands::schema::run(args) as u8,
    };
    ExitCode::from(code)
}
