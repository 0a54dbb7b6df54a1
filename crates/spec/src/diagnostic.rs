use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// A spec file's name (as the user gave it) and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: String,
    text: Arc<str>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self { name: name.into(), text: text.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem in a spec, with a code, a location and help.
#[derive(Debug, Clone)]
pub struct SpecDiagnostic {
    pub code: &'static str,
    pub message: String,
    pub span: Range<usize>,
    pub label: String,
    pub help: Option<String>,
    /// A second location (e.g. the first of two colliding values).
    pub related: Option<(Range<usize>, String)>,
    source: NamedSource<String>,
    line: usize,
    column: usize,
}

impl SpecDiagnostic {
    pub fn new(source: &SourceFile, code: &'static str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, column) = source.line_col(span.start);
        Self {
            code,
            message: message.into(),
            label: String::from("here"),
            help: None,
            related: None,
            source: NamedSource::new(source.name(), source.text().to_owned()).with_language("toml"),
            span,
            line,
            column,
        }
    }

    /// Replaces the bytes of `secret` in the shown file with `"<redacted>"`,
    /// so that rendering the diagnostic never prints a credential.
    pub fn redacting(mut self, source: &SourceFile, secret: Range<usize>) -> Self {
        const MASK: &str = "\"<redacted>\"";
        let text = source.text();
        let mut shown = String::with_capacity(text.len());
        shown.push_str(&text[..secret.start]);
        shown.push_str(MASK);
        shown.push_str(&text[secret.end..]);
        let shift = |p: usize| {
            if p >= secret.end { p + MASK.len() - secret.len() } else { p }
        };
        let fix = |r: &Range<usize>| {
            if r.start >= secret.start && r.end <= secret.end {
                secret.start..secret.start + MASK.len()
            } else {
                shift(r.start)..shift(r.end)
            }
        };
        self.span = fix(&self.span);
        if let Some((r, l)) = self.related.take() {
            self.related = Some((fix(&r), l));
        }
        self.source = NamedSource::new(source.name(), shown).with_language("toml");
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn related(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related = Some((span, label.into()));
        self
    }

    pub fn file(&self) -> &str {
        self.source.name()
    }

    /// 1-based line of the primary span.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column of the primary span.
    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for SpecDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecDiagnostic {}

impl Diagnostic for SpecDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(Some(self.label.clone()), self.span.clone());
        let related =
            self.related.iter().map(|(span, label)| LabeledSpan::new_with_span(Some(label.clone()), span.clone()));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

/// Every problem found in one spec (at least one).
#[derive(Debug, Clone)]
pub struct SpecErrors {
    pub diagnostics: Vec<SpecDiagnostic>,
}

impl SpecErrors {
    pub fn one(d: SpecDiagnostic) -> Self {
        Self { diagnostics: vec![d] }
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.diagnostics.as_slice() {
            [one] => write!(f, "{one}"),
            many => write!(f, "{} problems in the spec", many.len()),
        }
    }
}

impl std::error::Error for SpecErrors {}

impl Diagnostic for SpecErrors {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.diagnostics.iter().map(|d| d as &dyn Diagnostic)))
    }
}
