pub mod build;
pub mod schema;
