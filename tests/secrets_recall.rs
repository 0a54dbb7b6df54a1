#![allow(clippy::print_stdout)] // the recall report is this test's purpose
//! Secrets recall and precision against compose-lint (PyPI, pinned in
//! tests/setup.sh), on the project's own corpus of real-shape cases: lines
//! ending `# secret` hold a real secret, lines ending `# not-secret` are traps
//! that must stay quiet. A tool's finding counts on the line it reports.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::*;

type Place = (String, u64);

struct Corpus {
    files: Vec<String>,
    secrets: BTreeSet<Place>,
    traps: BTreeSet<Place>,
}

fn corpus() -> Corpus {
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
    Corpus { files, secrets, traps }
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

/// A tool's figures on the corpus.
struct Score {
    found: usize,
    false_alarms: usize,
    unlabelled: usize,
    secrets: usize,
}

impl Score {
    fn of(reported: &BTreeSet<Place>, c: &Corpus) -> Self {
        Score {
            found: reported.intersection(&c.secrets).count(),
            false_alarms: reported.intersection(&c.traps).count(),
            unlabelled: reported.iter().filter(|p| !c.secrets.contains(*p) && !c.traps.contains(*p)).count(),
            secrets: c.secrets.len(),
        }
    }
    fn recall(&self) -> f64 {
        self.found as f64 / self.secrets as f64
    }
    /// Over labelled lines: a finding on an unlabelled line is neither.
    fn precision(&self) -> f64 {
        let reported = self.found + self.false_alarms;
        if reported == 0 { 0.0 } else { self.found as f64 / reported as f64 }
    }
    fn line(&self, tool: &str) -> String {
        format!(
            "{tool:<13} recall {:5.1}% ({}/{}), precision {:5.1}% ({} true, {} false alarms), {} on unlabelled lines",
            100.0 * self.recall(),
            self.found,
            self.secrets,
            100.0 * self.precision(),
            self.found,
            self.false_alarms,
            self.unlabelled
        )
    }
}

#[test]
fn hacompile_finds_at_least_what_compose_lint_finds_with_95_percent_precision() {
    let c = corpus();
    let dir = Path::new(ROOT).join("tests/lint/secrets-corpus");
    assert!(c.secrets.len() + c.traps.len() >= 150, "the corpus labels at least 150 lines");
    assert!(c.secrets.len() >= 60 && c.traps.len() >= 60, "secrets and traps both");

    let ours = bin().current_dir(&dir).args(["lint", "--format", "json"]).args(&c.files).output().expect("runs");
    let ours = places(&text(&ours.stdout), &["HC1"], "code");

    let compose_lint = Path::new(ROOT).join("target/test-venv/bin/compose-lint");
    let theirs = tool(
        compose_lint.to_str().expect("utf-8 path"),
        &[
            &["check", "--format", "json", "--no-env", "--allow-partial-coverage", "--no-merge-overrides"][..],
            &c.files.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
        &dir,
    );
    let theirs = places(&text(&theirs.stdout), &["CL-0020", "CL-0021"], "rule_id");
    assert!(theirs.len() >= 50, "compose-lint ran and found secrets: {theirs:?}");

    let (us, them) = (Score::of(&ours, &c), Score::of(&theirs, &c));
    println!("secrets corpus: {} files, {} secrets, {} traps", c.files.len(), c.secrets.len(), c.traps.len());
    println!("{}", us.line("hacompile"));
    println!("{}", them.line("compose-lint"));
    let missed: Vec<_> = c.secrets.difference(&ours).collect();
    let false_alarms: Vec<_> = ours.intersection(&c.traps).collect();
    let only_ours: Vec<_> = ours.intersection(&c.secrets).filter(|p| !theirs.contains(*p)).collect();
    let their_false_alarms: Vec<_> = theirs.intersection(&c.traps).collect();
    println!("hacompile misses: {missed:?}");
    println!("hacompile false alarms: {false_alarms:?}");
    println!("found only by hacompile: {only_ours:?}");
    println!("compose-lint false alarms: {their_false_alarms:?}");

    // Every line hacompile reports is labelled, so its figures are whole.
    let unlabelled: Vec<_> = ours.iter().filter(|p| !c.secrets.contains(*p) && !c.traps.contains(*p)).collect();
    assert!(unlabelled.is_empty(), "hacompile reports unlabelled lines (label them): {unlabelled:?}");
    let behind: Vec<_> = theirs.intersection(&c.secrets).filter(|p| !ours.contains(*p)).collect();
    assert!(behind.is_empty(), "compose-lint found secrets hacompile did not: {behind:?}");
    assert!(us.recall() >= them.recall(), "recall: hacompile {} < compose-lint {}", us.recall(), them.recall());
    assert!(us.precision() >= 0.95, "hacompile's precision {:.3} is under 95%: {false_alarms:?}", us.precision());
    assert!(!only_ours.is_empty(), "hacompile finds secrets compose-lint misses");
}

/// The value written on a corpus line (`KEY: value`, `- KEY=value`), quotes
/// and the label removed; `None` for command lines and keys without one.
fn written_value(line: &str) -> Option<String> {
    let body = line.rsplit_once("  #").map_or(line, |(b, _)| b).trim();
    let body = body.strip_prefix("- ").unwrap_or(body).trim_matches(['"', '\'']);
    let key_end = body.find([':', '='])?;
    if ["command", "entrypoint", "test"].contains(&body[..key_end].trim()) {
        return None;
    }
    let value = body[key_end + 1..].trim().trim_matches(['"', '\'']);
    (value.len() >= 4).then(|| value.to_owned())
}

#[test]
fn the_secrets_it_reports_are_never_shown() {
    let c = corpus();
    let dir = Path::new(ROOT).join("tests/lint/secrets-corpus");
    let json = bin().current_dir(&dir).args(["lint", "--format", "json"]).args(&c.files).output().expect("runs");
    let reported = places(&text(&json.stdout), &["HC1"], "code");
    let mut checked = 0;
    for (file, line) in c.secrets.intersection(&reported) {
        // One file at a time: a file's masking covers that file's values.
        let human = bin().current_dir(&dir).args(["lint", file]).output().expect("runs");
        // The file's own text (context lines) and the messages, not the
        // rule names (`plaintext-secret-in-environment` names no secret).
        let shown: String = format!("{}{}", text(&human.stdout), text(&human.stderr))
            .lines()
            .filter(|l| l.contains(" │ ") || l.trim_start().starts_with(['×', '⚠', 'ℹ']) || l.contains("help:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let source = std::fs::read_to_string(dir.join(file)).expect("readable");
        let Some(value) = source.lines().nth(*line as usize - 1).and_then(written_value) else { continue };
        checked += 1;
        assert!(!shown.contains(&value), "{file}:{line}: `{value}` is shown:\n{shown}");
    }
    assert!(checked >= 60, "most reported secrets were checked ({checked})");
}
