//! The committed JSON Schema is current, and every example satisfies it.

mod support;

use support::*;

const SCHEMA: &str = "schemas/hacompile-spec.schema.json";

#[test]
fn committed_schema_is_current() {
    let run = bin().arg("schema").output().expect("runs");
    assert!(run.status.success());
    let committed = std::fs::read_to_string(format!("{ROOT}/{SCHEMA}")).unwrap_or_default();
    assert!(
        committed == text(&run.stdout),
        "{SCHEMA} is stale; regenerate it with:\n    cargo run -q -- schema > {SCHEMA}"
    );
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/{SCHEMA}")).expect("schema exists"))
            .expect("JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

fn as_json(toml_text: &str) -> serde_json::Value {
    let value: toml::Value = toml::from_str(toml_text).expect("TOML");
    serde_json::to_value(value).expect("TOML values map to JSON")
}

#[test]
fn every_example_validates_against_the_schema() {
    let v = validator();
    for spec in examples() {
        let doc = as_json(&std::fs::read_to_string(&spec).expect("readable"));
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", spec.display());
    }
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    let v = validator();
    let example = std::fs::read_to_string(format!("{ROOT}/examples/ha-postgres.toml")).expect("readable");
    let unknown = example.replace("database = \"app\"", "database = \"app\"\ndatabse = \"x\"");
    assert!(!v.is_valid(&as_json(&unknown)), "unknown keys are refused");
    let literal = example.replace("password = { secret = \"postgres_password\" }", "password = \"hunter2\"");
    assert!(!v.is_valid(&as_json(&literal)), "a literal password is refused");
    let bad_flavor = example.replace("flavor = \"official\"", "flavor = \"alpine\"");
    assert!(!v.is_valid(&as_json(&bad_flavor)));
}
