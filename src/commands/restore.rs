//! `hacompile restore`: prints the commands that restore the spec's backups
//! into a new volume.

use std::path::PathBuf;

use crate::commands::build::{report_spec_errors, spec_and_lock};
use crate::{exit, output, report};
use hacompile_compile::restore::{Request, RestoreError, Target, plan};

/// Print the commands that restore this spec's pgBackRest repository into a new volume.
///
/// The restore is a swarm replicated job with the stack's own pgBackRest
/// config and wrapper (their content-hashed names), the database services'
/// image pinned by digest from the lock, the repository's secrets and
/// volume: it restores into the new volume, replays the archive to the
/// target, promotes and stops cleanly. Then the commands that wait for it,
/// show its log, and start a server on the restored copy. hacompile runs
/// nothing: review the commands, then run them on a manager (or
/// `eval "$(hacompile restore ...)"`). A volume the stack uses is refused.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["latest", "time", "name"])))]
pub struct Args {
    /// The cluster spec (TOML).
    spec: PathBuf,
    /// The new volume to restore into (never one the stack uses).
    #[arg(long, value_name = "VOLUME")]
    into: String,
    /// Replay to the end of the archive.
    #[arg(long)]
    latest: bool,
    /// Replay to this time, with its zone: "YYYY-MM-DD HH:MM:SS[.ffffff]+00".
    #[arg(long, value_name = "TS")]
    time: Option<String>,
    /// Replay to this restore point (`select pg_create_restore_point('NAME')`).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Run the job on this node [default: where the spec places its first database service].
    #[arg(long, value_name = "HOSTNAME")]
    node: Option<String>,
    /// The lock file with image digests [default: hacompile.lock beside the spec].
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let script = (|| {
        let (spec, lock) = spec_and_lock(&args.spec, args.lock.as_deref())?;
        let target = match (&args.time, &args.name) {
            (Some(t), _) => Target::Time(t.clone()),
            (_, Some(n)) => Target::Name(n.clone()),
            _ => Target::Latest,
        };
        let req = Request { into: args.into.clone(), target, node: args.node.clone() };
        match plan(&spec, &lock, &req) {
            Ok(p) => Ok(p.script()),
            Err(RestoreError::Spec(e)) => Err(report_spec_errors(e)),
            Err(RestoreError::Argument { flag, message, help }) => {
                report::error(&format!("{flag}: {message}"), Some(&help));
                Err(exit::INPUT)
            }
        }
    })();
    match script {
        Ok(text) => match output::stdout(hacompile_boundary::text::block(&text).as_bytes()) {
            Ok(()) => exit::OK,
            Err(e) => {
                report::error(&format!("cannot write to stdout: {e}"), None);
                exit::INPUT
            }
        },
        Err(code) => code,
    }
}
