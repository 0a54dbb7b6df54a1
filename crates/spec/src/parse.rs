//! Text -> [`Spec`], keeping spans.
//!
//! Three steps: the TOML syntax (toml's own parser, which bounds nesting),
//! a pre-pass that refuses literal credentials anywhere in the document
//! (before serde can echo a value in a type error), then serde with
//! `deny_unknown_fields`, whose messages are turned into diagnostics with a
//! "did you mean".

use std::io::Read;
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
        let name = path.display().to_string();
        let file_error = |message: String, help: &str| {
            let empty = SourceFile::new(name.clone(), "");
            SpecErrors::one(SpecDiagnostic::new(&empty, "spec::io", 0..0, message).help(help))
        };
        let file = std::fs::File::open(path)
            .map_err(|e| file_error(format!("cannot read the spec `{name}`: {e}"), "check the path"))?;
        let mut bytes = Vec::new();
        file.take(MAX_SPEC_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| file_error(format!("cannot read the spec `{name}`: {e}"), "check the path"))?;
        Self::from_bytes(name, bytes)
    }

    /// Checks size and UTF-8 of bytes read from anywhere (a file, stdin).
    pub fn from_bytes(name: String, bytes: Vec<u8>) -> Result<Self, SpecErrors> {
        if bytes.len() as u64 > MAX_SPEC_BYTES {
            let empty = SourceFile::new(name.clone(), "");
            return Err(SpecErrors::one(
                SpecDiagnostic::new(&empty, "spec::too-large", 0..0, format!("the spec `{name}` is larger than 1 MiB"))
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
        let mut d = SpecDiagnostic::new(source, "spec::syntax", span.clone(), format!("invalid TOML: {}", e.message()))
            .label("here")
            .help("see https://toml.io for the syntax");
        if let Some(value) = credential_on_line(text, span.start) {
            d = d.redacting(source, value);
        }
        SpecErrors::one(d)
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
        .redacting(source, span)
}

fn find_literal_credentials<'a>(table: &DeTable<'a>, path: &mut Vec<String>, found: &mut Vec<(String, Range<usize>)>) {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        match value.get_ref() {
            DeValue::String(_) => {
                let name = path.last().map_or("", String::as_str);
                let is_ref_path =
                    SECRET_REF_PATHS.iter().any(|p| p.iter().copied().eq(path.iter().map(String::as_str)));
                // `secret = "NAME"` inside a reference names a secret; it is not one.
                if (is_credential_key(name) && name != "secret") || is_ref_path {
                    found.push((path.join("."), value.span()));
                }
            }
            DeValue::Table(inner) => find_literal_credentials(inner, path, found),
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

/// On a syntax error, the value of a credential-shaped key on the same line,
/// so the rendered snippet does not show it.
fn credential_on_line(text: &str, offset: usize) -> Option<Range<usize>> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[start..end];
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(['"', '\'']);
    let key = key.rsplit('.').next().unwrap_or(key);
    if !is_credential_key(key) {
        return None;
    }
    let eq = start + line.find('=')? + 1;
    Some(eq..end)
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
    fn credential_on_line_finds_dotted_keys() {
        let text = "a = 1\npostgres.password = \"x\n";
        let r = credential_on_line(text, 10).expect("found");
        assert_eq!(&text[r], " \"x");
        assert!(credential_on_line("user = \"x\n", 3).is_none());
    }
}
