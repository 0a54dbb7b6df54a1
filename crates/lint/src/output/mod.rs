//! Rendering a [`crate::Report`]: human (miette), JSON, SARIF 2.1.0 and
//! GitHub workflow annotations. Each returns text; the binary writes it.

mod github;
mod human;
mod json;
mod sarif;

pub use github::github;
pub use human::human;
pub use json::{json, json_to};
pub use sarif::{SarifLog, sarif};
