use std::borrow::Cow;

use serde::Serialize;

use crate::Report;

/// The `--format json` document. Field names are a stable interface.
#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    findings: Vec<Item<'a>>,
    summary: Summary,
}

#[derive(Serialize)]
struct Item<'a> {
    code: &'a str,
    rule: &'a str,
    severity: &'a str,
    file: Cow<'a, str>,
    line: usize,
    column: usize,
    end: End,
    message: Cow<'a, str>,
    help: Cow<'a, str>,
    /// The reason of the inline suppression that silenced it, if any.
    suppressed: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct End {
    line: usize,
    column: usize,
}

#[derive(Serialize)]
struct Summary {
    files: usize,
    errors: usize,
    warnings: usize,
    infos: usize,
    suppressed: usize,
    /// Files the walk found and did not lint, counted by kind and reason.
    skipped: Vec<SkippedItem>,
    exit_code: u8,
}

#[derive(Serialize)]
struct SkippedItem {
    kind: &'static str,
    reason: &'static str,
    files: usize,
}

/// The JSON report as a string.
pub fn json(report: &Report) -> String {
    let mut out = Vec::new();
    json_to(report, &mut out).expect("writing to memory does not fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Writes the JSON report to `w` (the binary streams it to stdout).
pub fn json_to(report: &Report, w: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut findings = Vec::new();
    let mut s = Summary {
        files: report.files.len(),
        errors: 0,
        warnings: 0,
        infos: 0,
        suppressed: 0,
        skipped: report
            .skipped_counts()
            .into_iter()
            .map(|c| SkippedItem { kind: c.kind, reason: c.reason, files: c.files })
            .collect(),
        exit_code: report.exit_code(),
    };
    for (file, f) in report.files.iter().flat_map(|file| file.findings.iter().map(move |f| (file, f))) {
        match (f.suppressed.is_some(), f.severity) {
            (true, _) => s.suppressed += 1,
            (false, crate::Severity::Error) => s.errors += 1,
            (false, crate::Severity::Warning) => s.warnings += 1,
            (false, crate::Severity::Info) => s.infos += 1,
        }
        findings.push(Item {
            code: f.code,
            rule: f.rule,
            severity: f.severity.as_str(),
            file: file.shown_name(),
            line: f.line,
            column: f.column,
            end: End { line: f.end_line, column: f.end_column },
            message: file.shown(&f.message),
            help: file.shown(&f.help),
            suppressed: f.suppressed.as_deref().map(|r| file.shown(r)),
        });
    }
    serde_json::to_writer_pretty(&mut *w, &Doc { version: 1, findings, summary: s })?;
    w.write_all(b"\n")
}
