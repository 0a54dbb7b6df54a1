//! What a rule reports, and the rule table entry that describes a rule.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Severity, ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The family a rule belongs to (its code's hundreds digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Input,
    Secrets,
    SupplyChain,
    Swarm,
    HighAvailability,
    Hardening,
}

impl Family {
    pub fn title(self) -> &'static str {
        match self {
            Family::Input => "Input",
            Family::Secrets => "Secrets in plain text",
            Family::SupplyChain => "Supply chain",
            Family::Swarm => "Swarm correctness",
            Family::HighAvailability => "High availability of a database cluster",
            Family::Hardening => "Hardening and network",
        }
    }
}

/// One problem a rule found: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub span: Range<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl Hit {
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Self { span, message: message.into(), help: None }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A finding in a file, with its rule's code and the effective severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub rule: &'static str,
    pub severity: Severity,
    pub file: String,
    pub span: Range<usize>,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: String,
    pub help: String,
    /// The reason given by an inline suppression that silenced it.
    pub suppressed: Option<String>,
}
