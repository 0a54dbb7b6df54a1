//! The human report: miette's graphical rendering of each finding over an
//! [`Excerpt`] of the lines it shows (masked, sanitized, cropped; bounded
//! work per finding), then a summary line.

use std::fmt;

use hacompile_boundary::snippet::{Excerpt, Label, LineIndex};
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};

use crate::finding::{Finding, Severity};
use crate::{FileResult, Report};

struct Shown {
    code: String,
    message: String,
    help: String,
    severity: Severity,
    excerpt: Option<Excerpt>,
}

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Shown {}

impl Diagnostic for Shown {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(&self.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(&self.help))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.excerpt.as_ref().map(|e| e as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.excerpt.as_ref().map(|e| Box::new(e.labels()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
}

fn shown(file: &FileResult, index: Option<&LineIndex>, f: &Finding) -> Shown {
    let label = Label { span: f.span.clone(), text: Some(f.rule.to_owned()), primary: true };
    let excerpt = match file.source.as_ref().zip(index) {
        Some((src, index)) => Excerpt::new(&file.shown_name(), &src.text, index, &[label], 1, &file.masker),
        // Nothing to show (a missing file, a FIFO, a binary file): an empty
        // excerpt, whose header still names the file and the place, 1:1,
        // as every other finding's does. Without it, several unreadable
        // inputs were told apart by nothing.
        None => Excerpt::new(&file.shown_name(), "", &LineIndex::new(""), &[label], 1, &file.masker),
    };
    Shown {
        code: format!("{} {}", f.code, f.rule),
        message: file.shown(&f.message).into_owned(),
        help: file.shown(&f.help).into_owned(),
        severity: f.severity,
        excerpt: Some(excerpt),
    }
}

/// Diagnostics with snippets, then a summary line.
pub fn human(report: &Report, colour: bool) -> String {
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for file in &report.files {
        let mut index = None;
        for f in file.findings.iter().filter(|f| f.suppressed.is_none()) {
            // Built once per file, and only for a file with something to show.
            if index.is_none() {
                index = file.source.as_ref().map(|s| LineIndex::new(&s.text));
            }
            let _ = handler.render_report(&mut out, &shown(file, index.as_ref(), f));
        }
    }
    out.push_str(&summary(report));
    out
}

/// `3 findings (1 error, 2 warnings, 0 info) in 2 files; 1 suppressed; 2
/// YAML files skipped: ...`, with its newline.
pub(crate) fn summary(report: &Report) -> String {
    let (mut errors, mut warnings, mut infos, mut suppressed) = (0, 0, 0, 0);
    for f in report.files.iter().flat_map(|file| &file.findings) {
        match (f.suppressed.is_some(), f.severity) {
            (true, _) => suppressed += 1,
            (false, Severity::Error) => errors += 1,
            (false, Severity::Warning) => warnings += 1,
            (false, Severity::Info) => infos += 1,
        }
    }
    let files = report.files.len();
    format!(
        "{} finding{} ({errors} error{}, {warnings} warning{}, {infos} info) in {files} file{}{}{}\n",
        errors + warnings + infos,
        if errors + warnings + infos == 1 { "" } else { "s" },
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
        if suppressed > 0 { format!("; {suppressed} suppressed") } else { String::new() },
        report.skipped_note().map(|n| format!("; {n}")).unwrap_or_default(),
    )
}
