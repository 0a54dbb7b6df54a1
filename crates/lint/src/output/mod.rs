//! Rendering a [`crate::Report`]: human (miette), concise (a line per
//! finding), JSON, SARIF 2.1.0 and GitHub workflow annotations. Each returns text; the binary writes it.

mod concise;
mod github;
mod human;
mod json;
mod sarif;

pub use concise::concise;
pub use github::github;
pub use human::human;
pub use json::{json, json_to};
pub use sarif::{SarifLog, sarif};
