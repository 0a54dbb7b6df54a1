use crate::model::Spec;

/// The JSON Schema of the spec, pretty-printed with a trailing newline (the
/// form committed under `schemas/`).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Spec);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}
