//! Text -> [`Spec`], keeping spans.
//!
//! Three steps: the TOML syntax (toml's own parser, which bounds nesting),
//! a pre-pass that refuses literal credentials anywhere in the document
//! (before serde can echo a value in a type error), then serde with
//! `deny_unknown_fields`, whose messages are turned into diagnostics with a
//! "did you mean".

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{SourceFile, SpecDiagnostic, SpecErrors};
use crate::model::{LITERAL_CREDENTIAL, Spec};
use crate::values::{is_credential_key, suggest};

/// A spec larger than this is refused before it is parsed: real specs are a
/// few kilobytes, and the limit bounds memory on hostile input.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// Keys whose value is a secret reference even though the name does not look
/// like a credential (`[postgres] user`, `[haproxy.stats] users`).
const SECRET_REF_PATHS: &[&[&str]] = &[&["postgres", "user"], &["haproxy", "stats", "users"]];

impl SourceFile {
    /// Reads a spec with bounded memory: at most [`MAX_SPEC_BYTES`] are read,
    /// and text that is not UTF-8 is refused with the place of the first bad byte.
    pub fn read(path: &Path) -> Result<Self, SpecErrors> {
        use hacompile_boundary::read::{ReadError, read_file};
        let name = path.display().to_string();
        let shown = hacompile_boundary::text::line(&name).into_owned();
        let file_error = |code: &'static str, message: String, help: &str| {
            let empty = SourceFile::new(name.clone(), "");
            SpecErrors::one(SpecDiagnostic::new(&empty, code, 0..0, message).help(help))
        };
        match read_file(path, MAX_SPEC_BYTES) {
            Ok(bytes) => Self::from_bytes(name, bytes),
            Err(ReadError::TooLarge { .. }) => Err(file_error(
                "spec::too-large",
                format!("the spec `{shown}` is larger than 1 MiB"),
                "a cluster spec is a few kilobytes; check that this is the right file",
            )),
            Err(e) => Err(file_error("spec::io", format!("cannot read the spec `{shown}`: {e}"), "check the path")),
        }
    }

    /// Checks size and UTF-8 of bytes read from anywhere (a file, stdin).
    pub fn from_bytes(name: String, bytes: Vec<u8>) -> Result<Self, SpecErrors> {
        if bytes.len() as u64 > MAX_SPEC_BYTES {
            let empty = SourceFile::new(name.clone(), "");
            return Err(SpecErrors::one(
                SpecDiagnostic::new(
                    &empty,
                    "spec::too-large",
                    0..0,
                    format!("the spec `{}` is larger than 1 MiB", hacompile_boundary::text::line(&name)),
                )
                .help("a cluster spec is a few kilobytes; check that this is the right file"),
            ));
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self::new(name, text)),
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
                let line = prefix.matches('\n').count() + 1;
                let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                // Show the valid part so the location can be rendered.
                let shown = SourceFile::new(name.clone(), prefix);
                let end = valid;
                Err(SpecErrors::one(
                    SpecDiagnostic::new(
                        &shown,
                        "spec::not-utf8",
                        end..end,
                        format!("the spec is not UTF-8: invalid byte at line {line}, column {col} (byte {valid})"),
                    )
                    .label("the text stops being UTF-8 here")
                    .help("save the file as UTF-8"),
                ))
            }
        }
    }
}

/// Parses a spec. Validation is a separate step ([`crate::validate`]).
pub fn parse(source: &SourceFile) -> Result<Spec, SpecErrors> {
    let text = source.text();
    let table = DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        // The snippet and message are masked by the file's masker (a line
        // scan, since the TOML does not parse): no credential shows.
        SpecErrors::one(
            SpecDiagnostic::new(source, "spec::syntax", span, format!("invalid TOML: {}", e.message()))
                .label("here")
                .help("see https://toml.io for the syntax"),
        )
    })?;

    let mut found = Vec::new();
    find_literal_credentials(table.get_ref(), &mut Vec::new(), &mut found);
    if !found.is_empty() {
        return Err(SpecErrors {
            diagnostics: found.into_iter().map(|(key, span)| literal_credential(source, &key, span)).collect(),
        });
    }

    Spec::deserialize(toml::de::Deserializer::from(table)).map_err(|e| SpecErrors::one(serde_error(source, &e)))
}

fn literal_credential(source: &SourceFile, key: &str, span: Range<usize>) -> SpecDiagnostic {
    let last = key.rsplit('.').next().unwrap_or(key);
    SpecDiagnostic::new(source, "spec::literal-credential", span.clone(), format!("{LITERAL_CREDENTIAL}: `{key}`"))
        .label("a credential written into the spec")
        .help(format!(
            "credentials come only from Docker secrets: create one with `printf '%s' \"$VALUE\" | docker secret create NAME -`, \
             declare it under [secrets.NAME] and write `{last} = {{ secret = \"NAME\" }}`"
        ))
}

/// Every value a spec holds as a credential, of any type: the value of a
/// credential-shaped key or of a secret-reference path (a string, a number,
/// an array, a date), and inside a table under such a key every value but
/// `secret = "NAME"` (which names a Docker secret). Both the
/// literal-credential error and the masking of everything shown come from it.
fn find_literal_credentials(table: &DeTable<'_>, path: &mut Vec<String>, found: &mut Vec<(String, Range<usize>)>) {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        let name = path.last().map_or("", String::as_str);
        let is_ref_path = SECRET_REF_PATHS.iter().any(|p| p.iter().copied().eq(path.iter().map(String::as_str)));
        // `[secrets.NAME]` declares Docker secrets: their names are not credentials.
        let declaration = path.len() <= 2 && path[0] == "secrets";
        let credential = !declaration && ((is_credential_key(name) && name != "secret") || is_ref_path);
        match value.get_ref() {
            DeValue::Table(inner) if credential => secret_reference_table(inner, path, found),
            DeValue::Table(inner) => find_literal_credentials(inner, path, found),
            _ if credential => found.push((path.join("."), value.span())),
            DeValue::Array(items) => {
                for item in items {
                    if let DeValue::Table(inner) = item.get_ref() {
                        find_literal_credentials(inner, path, found);
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// Words a misspelt credential key still contains (`passwrod`, `tokne`).
const LOOSE_CREDENTIAL: &[&str] = &["pass", "pwd", "secre", "tok", "cred", "auth", "priv"];

fn loose_credentials(table: &DeTable<'_>, out: &mut Vec<Range<usize>>) {
    for (key, value) in table {
        let k = key.get_ref().to_ascii_lowercase();
        match value.get_ref() {
            DeValue::Table(inner) if k != "secrets" => loose_credentials(inner, out),
            DeValue::Table(_) => {}
            DeValue::String(_) | DeValue::Integer(_) | DeValue::Float(_) | DeValue::Array(_)
                if k != "secret" && LOOSE_CREDENTIAL.iter().any(|w| k.contains(w)) =>
            {
                out.push(value.span());
            }
            _ => {}
        }
    }
}

/// `{ secret = "NAME" }`: anything else in it is a literal credential.
fn secret_reference_table(table: &DeTable<'_>, path: &mut Vec<String>, found: &mut Vec<(String, Range<usize>)>) {
    for (key, value) in table {
        let k = key.get_ref().to_string();
        if k == "secret" && matches!(value.get_ref(), DeValue::String(_)) {
            continue;
        }
        path.push(k);
        found.push((path.join("."), value.span()));
        path.pop();
    }
}

/// The byte ranges of every credential value in a spec's text: from the
/// TOML when it parses, else from a line scan (a file with a syntax error
/// is still shown without its credentials).
pub fn credential_values(text: &str) -> Vec<Range<usize>> {
    if let Ok(table) = DeTable::parse(text) {
        let mut found = Vec::new();
        find_literal_credentials(table.get_ref(), &mut Vec::new(), &mut found);
        let mut ranges: Vec<Range<usize>> = found.into_iter().map(|(_, r)| r).collect();
        // A misspelt credential key (`passwrod = "..."`) is an unknown key
        // whose diagnostic shows its line: hide values of keys that look
        // like credential words too, without refusing them as credentials.
        loose_credentials(table.get_ref(), &mut ranges);
        ranges.sort_by_key(|r| (r.start, r.end));
        ranges.dedup();
        return ranges;
    }
    hacompile_boundary::mask::scan_text(text)
}

/// The decoded text of the credential values at `ranges` that are written
/// with escapes (`"Zq9x\u0053ECRETq"`): the masker searches for these too,
/// since the same value may be written plainly elsewhere.
pub fn credential_decoded(text: &str, ranges: &[Range<usize>]) -> Vec<String> {
    ranges
        .iter()
        .filter_map(|r| {
            let raw = text.get(r.clone()).filter(|raw| raw.contains('\\'))?;
            let table: toml::Table = toml::from_str(&format!("v = {raw}")).ok()?;
            table.get("v")?.as_str().map(str::to_owned)
        })
        .collect()
}

/// Turns a serde error into a diagnostic with a code and help.
fn serde_error(source: &SourceFile, e: &toml::de::Error) -> SpecDiagnostic {
    let span = e.span().unwrap_or(0..0);
    let message = e.message();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let help = match suggest(field, candidates.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None if candidates.is_empty() => "this table takes no keys".to_owned(),
            None => format!("valid keys here: {}", candidates.join(", ")),
        };
        return SpecDiagnostic::new(source, "spec::unknown-key", span, format!("unknown key `{field}`"))
            .label("not a key of this table")
            .help(help);
    }
    if message.starts_with(LITERAL_CREDENTIAL) {
        return literal_credential(source, "credential", span);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return SpecDiagnostic::new(source, "spec::missing-key", span, format!("missing required key `{field}`"))
            .label("in this table")
            .help(format!("add `{field} = ...`; `hacompile schema` lists every key"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let help = match suggest(value, candidates.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("one of: {}", candidates.join(", ")),
        };
        return SpecDiagnostic::new(source, "spec::invalid-value", span, format!("`{value}` is not an accepted value"))
            .label("not accepted here")
            .help(help);
    }
    let message = message.trim_end_matches('\n');
    SpecDiagnostic::new(source, "spec::type", span, message.to_owned())
        .label("wrong type")
        .help("`hacompile schema` shows the type of every key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_values_of_every_type() {
        let text = "[postgres]\npassword = 98765432101\nuser = { secret = \"u\", value = \"hunter2\" }\nx = 1\n";
        let found: Vec<&str> = credential_values(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(found, ["98765432101", "\"hunter2\""]);
        let broken = "[postgres\npassword = \"hunter2\"\n";
        let found: Vec<&str> = credential_values(broken).into_iter().map(|r| &broken[r]).collect();
        assert!(found.contains(&"\"hunter2\""), "{found:?}");
    }
}
