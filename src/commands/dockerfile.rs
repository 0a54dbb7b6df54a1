//! `hacompile dockerfile`: the Patroni members' image recipe.

use std::path::PathBuf;

use hacompile_compile::image_dockerfile;

use crate::commands::build::{report_spec_errors, spec_and_lock};
use crate::{exit, output, report};

/// Print the Dockerfile of the database image the spec names.
///
/// Topology `patroni`: the spec's `postgres` image, pinned by its digest in
/// the lock, plus Patroni (and pgBackRest with `[backup]`) from the
/// PostgreSQL project's apt repository; `patroni.image` names it. Topology
/// `pinned` with `[backup]`: the `postgres` image plus pgBackRest;
/// `backup.image` names it. It needs only `postgres.image` locked, so it
/// works before the image it describes exists: build and push it, then
/// `hacompile lock` pins it. `hacompile build` writes the same file beside
/// the stack (patroni.Dockerfile or postgres.Dockerfile).
#[derive(clap::Args)]
pub struct Args {
    /// The cluster spec (TOML).
    spec: PathBuf,
    /// The lock file with image digests [default: hacompile.lock beside the spec].
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let text = spec_and_lock(&args.spec, args.lock.as_deref())
        .and_then(|(spec, lock)| image_dockerfile(&spec, &lock).map(|(_, text)| text).map_err(report_spec_errors));
    match text {
        Ok(text) => match output::stdout(text.as_bytes()) {
            Ok(()) => exit::OK,
            Err(e) => {
                report::error(&format!("cannot write to stdout: {e}"), None);
                exit::INPUT
            }
        },
        Err(code) => code,
    }
}
