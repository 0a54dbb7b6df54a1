use crate::{Report, Severity};

/// GitHub's workflow command escaping: data escapes `%`, CR, LF; property
/// values also `:` and `,`.
fn data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::error file=...,line=...::message` lines for GitHub Actions.
pub fn github(report: &Report) -> String {
    let mut out = String::new();
    for (file, f) in report
        .files
        .iter()
        .flat_map(|file| file.findings.iter().map(move |f| (file, f)))
        .filter(|(_, f)| f.suppressed.is_none())
    {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        out.push_str(&format!(
            "::{level} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
            property(&file.shown_name()),
            f.line,
            f.column,
            f.end_line,
            f.end_column,
            property(&format!("{} {}", f.code, f.rule)),
            data(&format!("{} ({})", file.shown(&f.message), file.shown(&f.help))),
        ));
    }
    // What was linted and what was skipped, so a file the walk passed over
    // is visible in the run's log.
    out.push_str(&format!("::notice::{}\n", data(&report.files_note())));
    out
}
