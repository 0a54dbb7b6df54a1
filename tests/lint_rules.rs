//! Every rule: a fixture that must fire, one that must not, a snapshot of its
//! rendered diagnostics; and the registry's own invariants.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use hacompile_lint::RULES;
use hacompile_lint::rules::{DOC_SECTIONS, rules_page};
use support::*;

const FIXTURES: &str = "tests/lint/rules";

fn fixture(code: &str, stem: &str) -> PathBuf {
    let dir = Path::new(ROOT).join(FIXTURES).join(code);
    let found = fs::read_dir(&dir)
        .unwrap_or_else(|_| panic!("{code} has a fixture folder {FIXTURES}/{code}"))
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{stem}."))));
    found.unwrap_or_else(|| panic!("{code} has a `{stem}.*` fixture"))
}

fn lint(code: &str, file: &Path, format: &str) -> (i32, String) {
    let dir = file.parent().expect("in a folder");
    let args_file = dir.join("args");
    let extra: Vec<String> =
        fs::read_to_string(&args_file).map(|t| t.lines().map(str::to_owned).collect()).unwrap_or_default();
    let name = file.file_name().expect("name").to_string_lossy().into_owned();
    let out = bin()
        .current_dir(dir)
        .args(["lint", "--format", format, &name])
        .args(&extra)
        .output()
        .unwrap_or_else(|e| panic!("{code}: {e}"));
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

fn codes(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON output");
    v["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .filter(|f| f["suppressed"].is_null())
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect()
}

#[test]
fn every_rule_fires_on_its_fixture_and_not_on_the_clean_one() {
    for rule in RULES {
        let fires = fixture(rule.code, "fires");
        let (status, json) = lint(rule.code, &fires, "json");
        assert!(
            codes(&json).iter().any(|c| c == rule.code),
            "{} did not fire on {}:\n{json}",
            rule.code,
            fires.display()
        );
        let expected = if rule.code == "HC001" {
            2
        } else if rule.severity >= hacompile_lint::Severity::Warning {
            1
        } else {
            0
        };
        assert_eq!(status, expected, "{}: exit code", rule.code);

        let clean = fixture(rule.code, "clean");
        let (_, json) = lint(rule.code, &clean, "json");
        assert!(
            !codes(&json).iter().any(|c| c == rule.code),
            "{} fired on its clean fixture {}:\n{json}",
            rule.code,
            clean.display()
        );

        let (_, human) = lint(rule.code, &fires, "human");
        insta::assert_snapshot!(format!("rule_{}", rule.code), human);
    }
}

#[test]
fn the_registry_is_consistent() {
    let mut codes: Vec<&str> = RULES.iter().map(|r| r.code).collect();
    let mut names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
    assert!(codes.windows(2).all(|w| w[0] < w[1]), "RULES is sorted by code, each code once");
    codes.dedup();
    names.sort_unstable();
    names.dedup();
    assert_eq!(codes.len(), RULES.len());
    assert_eq!(names.len(), RULES.len(), "rule names are unique");
    for r in RULES {
        assert!(
            r.code.len() == 5 && r.code.starts_with("HC") && r.code[2..].bytes().all(|b| b.is_ascii_digit()),
            "{}",
            r.code
        );
        assert!(r.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{}: names are kebab-case", r.name);
        let mut at = 0;
        for section in DOC_SECTIONS {
            let found = r.doc[at..].find(section).unwrap_or_else(|| panic!("{} lacks `{section}` (in order)", r.code));
            at += found + section.len();
            let body = r.doc[at..].split("\n## ").next().unwrap_or("").trim();
            assert!(!body.is_empty(), "{}: `{section}` is empty", r.code);
        }
        let hundreds = &r.code[2..3];
        let family_digit = match r.family {
            hacompile_lint::Family::Input => "0",
            hacompile_lint::Family::Secrets => "1",
            hacompile_lint::Family::SupplyChain => "2",
            hacompile_lint::Family::Swarm => "3",
            hacompile_lint::Family::HighAvailability => "4",
            hacompile_lint::Family::Hardening => "5",
        };
        assert_eq!(hundreds, family_digit, "{}: code and family agree", r.code);
    }
}

#[test]
fn the_rules_page_is_current() {
    let committed = fs::read_to_string(Path::new(ROOT).join("docs/rules.md")).unwrap_or_default();
    assert!(
        committed == rules_page(),
        "docs/rules.md is stale; regenerate it with:\n    cargo run -q -- explain --markdown > docs/rules.md"
    );
}

#[test]
fn explain_shows_every_section() {
    for r in RULES {
        let out = bin().args(["explain", r.code]).output().expect("runs");
        assert!(out.status.success());
        let t = text(&out.stdout);
        for s in DOC_SECTIONS {
            assert!(t.contains(s), "{}: {s}", r.code);
        }
    }
    let out = bin().args(["explain", "HC999"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
}
