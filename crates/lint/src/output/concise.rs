//! One line per finding, `file:line:col: CODE message`, as ruff and
//! hadolint print them, for terminals with hundreds of findings; then the
//! summary line of the human report.

use crate::Report;

pub fn concise(report: &Report) -> String {
    let mut out = String::new();
    for file in &report.files {
        // The name leads the line: it must not read as a workflow command.
        let name = hacompile_boundary::text::leading_path(&file.name);
        for f in file.findings.iter().filter(|f| f.suppressed.is_none()) {
            // Masked and sanitized like every format, then kept on its line:
            // a message over lines would read as findings of its own.
            let message = file.shown(&f.message);
            out.push_str(&format!(
                "{name}:{}:{}: {} {}\n",
                f.line,
                f.column,
                f.code,
                hacompile_boundary::text::line(&message)
            ));
        }
    }
    out.push_str(&super::human::summary(report));
    out
}
