use hacompile_spec::{SourceFile, load};

#[test]
fn example_parses_and_validates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ha-postgres.toml");
    let src = SourceFile::read(std::path::Path::new(path)).expect("readable");
    let spec = load(&src).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(spec.db_services().len(), 2);
}
