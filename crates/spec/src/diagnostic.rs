use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use hacompile_boundary::mask::Masker;
use hacompile_boundary::snippet::{Excerpt, Label, LineIndex};
use hacompile_boundary::text;
use miette::{Diagnostic, LabeledSpan, SourceCode};

/// A spec file's name (as the user gave it), its text, and what every
/// rendering of it must hide.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: String,
    text: Arc<str>,
    index: Arc<LineIndex>,
    /// Computed on first use: only a diagnostic needs it.
    masker: Arc<OnceLock<Masker>>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let index = Arc::new(LineIndex::new(&text));
        Self { name: name.into(), text, index, masker: Arc::new(OnceLock::new()) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        self.index.line_col(&self.text, offset)
    }

    /// Every credential value written in the spec (of any type, anywhere),
    /// or, when the TOML does not parse, what a line scan finds: the one
    /// masking pass applies it to every snippet and message shown.
    pub fn masker(&self) -> &Masker {
        self.masker.get_or_init(|| {
            let ranges = crate::parse::credential_values(&self.text);
            let decoded = crate::parse::credential_decoded(&self.text, &ranges);
            Masker::new(&self.text, ranges, decoded)
        })
    }

    /// The file's line index (shared by every diagnostic of the file).
    pub fn index(&self) -> &LineIndex {
        &self.index
    }
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
    source: SourceFile,
    line: usize,
    column: usize,
    /// Built when first rendered.
    excerpt: OnceLock<Excerpt>,
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
            source: source.clone(),
            span,
            line,
            column,
            excerpt: OnceLock::new(),
        }
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

    /// The message as it may be shown: masked, then sanitized.
    pub fn shown_message(&self) -> String {
        shown(&self.source, &self.message)
    }

    /// The help as it may be shown: masked, then sanitized.
    pub fn shown_help(&self) -> Option<String> {
        self.help.as_deref().map(|h| shown(&self.source, h))
    }

    /// 1-based line of the primary span.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column of the primary span.
    pub fn column(&self) -> usize {
        self.column
    }

    fn excerpt(&self) -> &Excerpt {
        self.excerpt.get_or_init(|| {
            let mut labels =
                vec![Label { span: self.span.clone(), text: Some(shown(&self.source, &self.label)), primary: true }];
            if let Some((span, label)) = &self.related {
                labels.push(Label { span: span.clone(), text: Some(shown(&self.source, label)), primary: false });
            }
            let name = text::line(self.source.name());
            Excerpt::new(&name, self.source.text(), self.source.index(), &labels, 2, self.source.masker())
        })
    }
}

fn shown(source: &SourceFile, s: &str) -> String {
    text::block(&source.masker().text(s)).into_owned()
}

impl fmt::Display for SpecDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown_message())
    }
}

impl std::error::Error for SpecDiagnostic {}

impl Diagnostic for SpecDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.shown_help().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.excerpt())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.excerpt().labels()))
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
