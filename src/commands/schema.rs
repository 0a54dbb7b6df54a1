//! `hacompile schema`: the JSON Schema of the spec.

use crate::{Exit, output, report};

/// Print the JSON Schema of the cluster spec (for editors and validators).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> Exit {
    match output::stdout(hacompile_spec::json_schema().as_bytes()) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            report::error(&format!("cannot write the schema: {e}"), None);
            Exit::Input
        }
    }
}
