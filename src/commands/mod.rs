pub mod build;
pub mod completions;
pub mod dockerfile;
pub mod explain;
pub mod lint;
pub mod lock;
pub mod pin;
mod resolving;
pub mod schema;
