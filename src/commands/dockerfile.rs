//! `hacompile dockerfile`: the Patroni members' image recipe.

use std::path::PathBuf;

use hacompile_compile::patroni_dockerfile;
use hacompile_image::LOCK_FILE_NAME;
use hacompile_spec::{SourceFile, SpecErrors, load};

use crate::commands::build::read_lock;
use crate::{exit, output, report};

/// Print the Dockerfile of the Patroni members' image (topology `patroni`).
///
/// The image is the spec's `postgres` image, pinned by its digest in the
/// lock, plus Patroni from the PostgreSQL project's apt repository. It needs
/// only that image locked, so it works before the image it describes exists:
/// build and push it, then `hacompile lock` pins it as `patroni.image`.
/// `hacompile build` writes the same file as patroni.Dockerfile.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster spec (TOML).
    spec: PathBuf,
    /// The lock file with image digests [default: hacompile.lock beside the spec].
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let fail = |e: SpecErrors| {
        report::diagnostics(&e);
        exit::INPUT
    };
    let text = (|| {
        let source = SourceFile::read(&args.spec).map_err(fail)?;
        let spec = load(&source).map_err(fail)?;
        let lock_path = args.lock.clone().unwrap_or_else(|| args.spec.with_file_name(LOCK_FILE_NAME));
        let lock = read_lock(&lock_path, args.lock.is_some())?;
        patroni_dockerfile(&spec, &lock).map_err(fail)
    })();
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
