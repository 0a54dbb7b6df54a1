//! The cluster spec (`spec.toml`).
//!
//! Parsing keeps byte spans for every value the validator may complain
//! about; validation is a separate pass over the parsed model that collects
//! every problem at once. Both produce [`SpecDiagnostic`]s that carry a code,
//! a labelled span into the user's file and help text; a diagnostic about a
//! literal credential shows the file with that value redacted.

mod diagnostic;
mod model;
pub mod params;
mod parse;
mod schema;
pub mod starter;
mod validate;
pub mod values;

pub use diagnostic::{SourceFile, SpecDiagnostic, SpecErrors};
pub use model::*;
pub use parse::{MAX_SPEC_BYTES, credential_decoded, credential_values, parse};
pub use schema::json_schema;
pub use validate::{
    DEFAULT_REPO_PATH, DEFAULT_REPO_VOLUME, DEFAULT_S3_PATH, DbService, HAPROXY_HEALTH_PORT, POSTGRES_PORT, Role,
    ValidSpec, validate,
};

/// Parses and validates in one step: what `build` and `lint` want.
pub fn load(source: &SourceFile) -> Result<ValidSpec, SpecErrors> {
    let spec = parse(source)?;
    validate(spec, source)
}
