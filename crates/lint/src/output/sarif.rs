//! SARIF 2.1.0 from a typed model. Only the parts hacompile fills are
//! modelled; `results` is always present, even when empty.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::rules::RULES;
use crate::{Report, Severity};

pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct SarifLog {
    #[serde(rename = "$schema")]
    pub schema: String,
    pub version: String,
    pub runs: Vec<Run>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub tool: Tool,
    pub results: Vec<SarifResult>,
    pub column_kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invocations: Vec<Invocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<RunProperties>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    pub execution_successful: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_execution_notifications: Vec<Notification>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Notification {
    pub level: String,
    pub message: Message,
}

/// What the run linted and what the walk skipped, and why.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunProperties {
    pub files_linted: usize,
    pub skipped: Vec<SkippedFiles>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SkippedFiles {
    pub kind: String,
    pub reason: String,
    pub files: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Tool {
    pub driver: Driver,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    pub name: String,
    pub version: String,
    pub rules: Vec<ReportingDescriptor>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportingDescriptor {
    pub id: String,
    pub name: String,
    pub short_description: Message,
    pub full_description: Message,
    pub help: MultiformatMessage,
    pub default_configuration: Configuration,
    pub properties: RuleProperties,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Message {
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MultiformatMessage {
    pub text: String,
    pub markdown: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Configuration {
    pub level: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RuleProperties {
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SarifResult {
    pub rule_id: String,
    pub rule_index: usize,
    pub level: String,
    pub message: Message,
    pub locations: Vec<Location>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressions: Vec<Suppression>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub physical_location: PhysicalLocation,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalLocation {
    pub artifact_location: ArtifactLocation,
    pub region: Region,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ArtifactLocation {
    pub uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub start_line: usize,
    pub start_column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Suppression {
    pub kind: String,
    pub justification: String,
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// Bytes a path keeps in its URI: RFC 3986's unreserved characters, and `/`
/// between its segments. Everything else is percent-encoded: `%` and `#`
/// and `?` (raw, they would decode to another path or start a query or a
/// fragment), `:` (a scheme in a first segment), `\` (a character of the
/// name on the systems this runs on, not a separator), spaces, controls,
/// and every byte of a non-ASCII character.
const PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// A file's name as a relative URI reference (what code scanning maps to
/// the repository): the name as given, less a leading `./`, each byte
/// kept or encoded by [`PATH`], so it decodes to that name and nothing else.
fn uri(file: &str) -> String {
    utf8_percent_encode(file.strip_prefix("./").unwrap_or(file), PATH).to_string()
}

pub fn sarif(report: &Report) -> String {
    let rules = RULES
        .iter()
        .map(|r| ReportingDescriptor {
            id: r.code.to_owned(),
            name: r.name.to_owned(),
            short_description: Message { text: r.summary.to_owned() },
            full_description: Message { text: r.summary.to_owned() },
            help: MultiformatMessage { text: r.doc.trim().to_owned(), markdown: r.doc.trim().to_owned() },
            default_configuration: Configuration { level: level(r.severity).to_owned() },
            // Code scanning filters by tag: a swarm-only rule says so.
            properties: RuleProperties {
                tags: std::iter::once(r.family.title().to_owned())
                    .chain((r.targets().len() == 1).then(|| "swarm-only".to_owned()))
                    .collect(),
            },
        })
        .collect();
    let results = report
        .files
        .iter()
        .flat_map(|file| file.findings.iter().map(move |f| (file, f)))
        .map(|(file, f)| SarifResult {
            rule_id: f.code.to_owned(),
            rule_index: RULES.iter().position(|r| r.code == f.code).expect("findings come from registered rules"),
            level: level(f.severity).to_owned(),
            message: Message { text: format!("{} Help: {}", file.shown(&f.message), file.shown(&f.help)) },
            locations: vec![Location {
                physical_location: PhysicalLocation {
                    // The raw name: encoding makes every control character
                    // inert, and the sanitizer's `\u{..}` would name another file.
                    artifact_location: ArtifactLocation { uri: uri(&file.name) },
                    region: Region {
                        start_line: f.line,
                        start_column: f.column,
                        end_line: f.end_line,
                        end_column: f.end_column,
                    },
                },
            }],
            suppressions: f
                .suppressed
                .iter()
                .map(|reason| Suppression { kind: "inSource".into(), justification: file.shown(reason).into_owned() })
                .collect(),
        })
        .collect();
    let log = SarifLog {
        schema: SARIF_SCHEMA.to_owned(),
        version: "2.1.0".to_owned(),
        runs: vec![Run {
            tool: Tool {
                driver: Driver { name: "hacompile".into(), version: env!("CARGO_PKG_VERSION").into(), rules },
            },
            results,
            column_kind: "unicodeCodePoints".into(),
            invocations: vec![Invocation {
                // Unreadable input (exit 2) is a run that did not do its job.
                execution_successful: report.exit_code() != 2,
                tool_execution_notifications: vec![Notification {
                    level: "note".into(),
                    message: Message { text: report.files_note() },
                }],
            }],
            properties: Some(RunProperties {
                files_linted: report.files.len(),
                skipped: report
                    .skipped_counts()
                    .into_iter()
                    .map(|c| SkippedFiles { kind: c.kind.into(), reason: c.reason.into(), files: c.files })
                    .collect(),
            }),
        }],
    };
    let mut text = serde_json::to_string_pretty(&log).expect("plain data serializes");
    text.push('\n');
    text
}
