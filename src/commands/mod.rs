pub mod build;
pub mod explain;
pub mod lint;
pub mod schema;
