//! `hacompile schema`: the JSON Schema of the spec.

use crate::{exit, output, report};

/// Print the JSON Schema of the cluster spec (for editors and validators).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> u8 {
    match output::stdout(hacompile_spec::json_schema().as_bytes()) {
        Ok(()) => exit::OK,
        Err(e) => {
            report::error(&format!("cannot write the schema: {e}"), None);
            exit::INPUT
        }
    }
}
