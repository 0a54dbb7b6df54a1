#![allow(clippy::print_stdout)] // the recall report is this test's purpose
//! Secrets recall against compose-lint (PyPI, pinned in tests/setup.sh), on
//! the project's own corpus: lines ending `# secret` hold a real secret,
//! lines ending `# not-secret` are traps that must stay quiet.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::*;

type Place = (String, u64);

fn corpus() -> (Vec<String>, BTreeSet<Place>, BTreeSet<Place>) {
    let dir = Path::new(ROOT).join("tests/lint/secrets-corpus");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    files.sort();
    let (mut secrets, mut traps) = (BTreeSet::new(), BTreeSet::new());
    for f in &files {
        let text = std::fs::read_to_string(dir.join(f)).expect("readable");
        for (i, line) in text.lines().enumerate() {
            let place = (f.clone(), i as u64 + 1);
            if line.trim_end().ends_with("# secret") {
                secrets.insert(place);
            } else if line.trim_end().ends_with("# not-secret") {
                traps.insert(place);
            }
        }
    }
    (files, secrets, traps)
}

fn places(json: &str, codes: &[&str], code_key: &str) -> BTreeSet<Place> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("JSON: {e}\n{json}"));
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| codes.iter().any(|c| f[code_key].as_str().is_some_and(|k| k.starts_with(c))))
        .map(|f| (f["file"].as_str().expect("file").to_owned(), f["line"].as_u64().expect("line")))
        .collect()
}

#[test]
fn hacompile_finds_every_secret_compose_lint_finds_and_more() {
    let (files, secrets, traps) = corpus();
    let dir = Path::new(ROOT).join("tests/lint/secrets-corpus");
    assert!(secrets.len() >= 20, "the corpus has real secrets to find");

    let ours = bin().current_dir(&dir).args(["lint", "--format", "json"]).args(&files).output().expect("runs");
    let ours = places(&text(&ours.stdout), &["HC1"], "code");

    let compose_lint = Path::new(ROOT).join("target/test-venv/bin/compose-lint");
    let theirs = tool(
        compose_lint.to_str().expect("utf-8 path"),
        &[
            &["check", "--format", "json", "--no-env", "--allow-partial-coverage", "--no-merge-overrides"][..],
            &files.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
        &dir,
    );
    let theirs = places(&text(&theirs.stdout), &["CL-0020", "CL-0021"], "rule_id");
    assert!(theirs.len() >= 10, "compose-lint ran and found secrets: {theirs:?}");

    let missed: Vec<_> = secrets.difference(&ours).collect();
    assert!(missed.is_empty(), "hacompile missed known secrets: {missed:?}");
    let false_positives: Vec<_> = traps.intersection(&ours).collect();
    assert!(false_positives.is_empty(), "hacompile reported non-secrets: {false_positives:?}");
    let behind: Vec<_> = theirs.difference(&ours).collect();
    assert!(behind.is_empty(), "compose-lint found secrets hacompile did not: {behind:?}");
    let ahead: Vec<_> = ours.intersection(&secrets).filter(|p| !theirs.contains(*p)).collect();
    assert!(!ahead.is_empty(), "hacompile finds secrets compose-lint misses");

    let their_recall = theirs.intersection(&secrets).count();
    let our_recall = ours.intersection(&secrets).count();
    println!(
        "secrets recall on {} known secrets in {} files: hacompile {our_recall}, compose-lint {their_recall}; only hacompile: {ahead:?}",
        secrets.len(),
        files.len()
    );
}
