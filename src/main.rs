//! The `hacompile` binary: parses arguments, calls the library crates, and is
//! the only place that prints or chooses an exit code.

#![allow(clippy::print_stderr)]

mod commands;
mod output;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes: 0 success, 1 findings (lint, drift), 2 invalid input or I/O error.
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
    Schema(commands::schema::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Schema(args) => commands::schema::run(args),
    };
    ExitCode::from(exit as u8)
}
