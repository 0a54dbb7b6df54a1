use std::fmt;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents, SourceCode,
    SourceSpan, SpanContents,
};

use crate::finding::{Finding, Severity};
use crate::{Report, Source};

impl SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        lines_before: usize,
        lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.as_ref().read_span(span, lines_before, lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

struct Shown<'a> {
    finding: &'a Finding,
    source: Option<&'a Source>,
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.finding.message)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.finding.message)
    }
}

impl std::error::Error for Shown<'_> {}

impl Diagnostic for Shown<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(format!("{} {}", self.finding.code, self.finding.rule)))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(&self.finding.help))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source?;
        let span = self.finding.span.clone();
        Some(Box::new(std::iter::once(LabeledSpan::new_primary_with_span(Some(self.finding.rule.to_owned()), span))))
    }
}

/// The file as shown: every value a secret rule found is replaced by `*`s of
/// the same byte length (so every span stays valid), so neither a finding's
/// snippet nor another finding's context lines print a credential.
fn masked(file: &crate::FileResult) -> Option<Source> {
    let source = file.source.as_ref()?;
    let mut secrets: Vec<_> =
        file.findings.iter().filter(|f| f.code.starts_with("HC1")).map(|f| f.span.clone()).collect();
    // A file that did not parse was never checked for secrets: mask the
    // value of any credential-shaped `key: value` on the lines shown.
    for f in file.findings.iter().filter(|f| f.code == crate::rules::UNREADABLE) {
        for line in f.line.saturating_sub(2).max(1)..=f.line + 2 {
            let text = source.line(line);
            let Some((key, value)) = text.split_once(':').or_else(|| text.split_once('=')) else { continue };
            let key = key.trim().trim_start_matches("- ").trim_matches(['"', '\'']);
            let value = value.trim_start();
            if crate::secrets::is_credential_key(key) && !value.trim().is_empty() {
                let start = source.offset(line, 0) + text.len() - value.len();
                secrets.push(start..start + value.len());
            }
        }
    }
    if secrets.is_empty() {
        return Some(source.clone());
    }
    let mut bytes = source.text.as_bytes().to_vec();
    for span in secrets {
        let end = span.end.min(bytes.len());
        for b in &mut bytes[span.start.min(end)..end] {
            if *b != b'\n' {
                *b = b'*';
            }
        }
    }
    // Masking whole UTF-8 sequences byte by byte keeps the text valid only if
    // spans are on char boundaries, which they are (they come from the parser).
    Some(Source::new(source.name.clone(), String::from_utf8_lossy(&bytes).into_owned()))
}

/// Diagnostics with snippets, then a summary line.
pub fn human(report: &Report, colour: bool) -> String {
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    let (mut errors, mut warnings, mut infos, mut suppressed) = (0, 0, 0, 0);
    for file in &report.files {
        let shown = masked(file);
        for f in &file.findings {
            if f.suppressed.is_some() {
                suppressed += 1;
                continue;
            }
            match f.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Info => infos += 1,
            }
            let _ = handler.render_report(&mut out, &Shown { finding: f, source: shown.as_ref() });
        }
    }
    let files = report.files.len();
    out.push_str(&format!(
        "{} finding{} ({errors} error{}, {warnings} warning{}, {infos} info) in {files} file{}{}\n",
        errors + warnings + infos,
        if errors + warnings + infos == 1 { "" } else { "s" },
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
        if suppressed > 0 { format!("; {suppressed} suppressed") } else { String::new() },
    ));
    out
}
