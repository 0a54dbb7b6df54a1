//! One sanitizer for every text that leaves the program carrying input.
//!
//! A file name, a value or a message from input can hold characters that a
//! terminal or a parser reads as structure: C0/C1 controls (escape sequences
//! that move the cursor or rewrite the title bar), DEL, the line breaks
//! YAML 1.1 and JavaScript know beyond `\n` (NEL U+0085, LINE SEPARATOR
//! U+2028, PARAGRAPH SEPARATOR U+2029), bidirectional overrides that make a
//! line read differently from what it is ("Trojan Source"), and the BOM.
//! Each is written as a visible `\u{XXXX}` escape, so nothing is lost from
//! what the user sees and nothing acts.
//!
//! So is the `[` of `##[`: GitHub Actions' runner looks for its older
//! workflow commands (`##[error]...`, `##[add-matcher]...`,
//! `##[stop-commands]...`) anywhere in every line a step prints, in any
//! format, where the newer `::command::` form must start the line (see
//! [`leading_path`]). `##\u{005b}error]` reads the same and does nothing.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Is `c` a character that must not reach a terminal or a file raw?
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{061c}' | '\u{200e}' | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}')
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) && !s.contains(LEGACY_COMMAND) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        push_escaped(&mut out, c, &keep);
    }
    Cow::Owned(out)
}

/// Appends `c` to `out`, escaped when it is unsafe (and not kept) or when it
/// is the `[` of a `##[`. `out`, not the input, is looked at: a `#` escaped
/// just before does not count.
fn push_escaped(out: &mut String, c: char, keep: impl Fn(char) -> bool) {
    if (is_unsafe(c) && !keep(c)) || (c == '[' && out.ends_with("##")) {
        let _ = write!(out, "\\u{{{:04x}}}", c as u32);
    } else {
        out.push(c);
    }
}

/// What a snippet keeps raw: tabs, which are columns.
fn snippet_keeps(c: char) -> bool {
    c == '\t'
}

/// What GitHub Actions' runner searches each printed line for.
const LEGACY_COMMAND: &str = "##[";

/// A text that must stay on one line (a file name, a value, a comment):
/// every unsafe character escaped, tabs included.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// A file's name where it starts a printed line (`name:line:col: ...`):
/// as [`line`], and never `::` first, even after spaces: GitHub Actions
/// runs such a log line as a workflow command (`::error file=...::` forges
/// an annotation, `::stop-commands::` silences the ones that follow). A
/// name that would is written `./name`, which names the same file.
pub fn leading_path(s: &str) -> Cow<'_, str> {
    let shown = line(s);
    if !shown.trim_start().starts_with("::") {
        return shown;
    }
    Cow::Owned(format!("./{shown}"))
}

/// A text that may span lines (a message, help): `\n` and tabs kept,
/// everything else unsafe escaped (`\r` too, which would overwrite a line).
pub fn block(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n' || c == '\t')
}

/// Text shown inside a source snippet: tabs kept (they are columns), the
/// rest of the unsafe characters escaped. Use on one line at a time.
pub fn snippet_line(s: &str) -> Cow<'_, str> {
    escape(s, snippet_keeps)
}

/// One character of a snippet, appended to `out`, which a snippet builds a
/// character at a time (for its masks and columns): as [`snippet_line`],
/// with the `##[` that `out` and `c` would make broken as well.
pub fn push_snippet_char(out: &mut String, c: char) {
    push_escaped(out, c, snippet_keeps);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_acts() {
        assert_eq!(line("plain name.toml"), "plain name.toml");
        assert!(matches!(line("plain"), Cow::Borrowed(_)));
        assert_eq!(line("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(line("a\u{1b}[2Jb"), "a\\u{001b}[2Jb");
        assert_eq!(line("a\nb\rc\u{85}d"), "a\\u{000a}b\\u{000d}c\\u{0085}d");
        assert_eq!(line("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(block("one\ntwo\u{7}"), "one\ntwo\\u{0007}");
        assert_eq!(block("x\ty"), "x\ty");
        assert_eq!(line("ü é 漢字 🙂"), "ü é 漢字 🙂");
    }

    #[test]
    fn no_text_holds_an_older_workflow_command() {
        assert_eq!(line("a##[error]b"), "a##\\u{005b}error]b");
        assert_eq!(block("x\n##[stop-commands]t\n"), "x\n##\\u{005b}stop-commands]t\n");
        assert_eq!(snippet_line("\t###[[x"), "\t###\\u{005b}[x");
        assert!(matches!(line("## [not one] #[x] #\\[y"), Cow::Borrowed(_)));
        // A `#` that was escaped is not a `#` of the output.
        assert_eq!(line("#\u{7}#[x"), "#\\u{0007}#[x");
        let mut out = String::from("x ");
        for c in "a##[b\u{7}##[c".chars() {
            push_snippet_char(&mut out, c);
        }
        assert_eq!(out, "x a##\\u{005b}b\\u{0007}##\\u{005b}c");
        for s in ["##[", "a##[##[b", "##\u{85}##[", "#\n#["] {
            assert!(!line(s).contains("##["), "{s:?}");
            assert!(!block(s).contains("##["), "{s:?}");
            assert!(!snippet_line(s).contains("##["), "{s:?}");
        }
    }

    #[test]
    fn a_leading_path_never_starts_a_workflow_command() {
        assert_eq!(leading_path("deploy/docker-stack.yml"), "deploy/docker-stack.yml");
        assert!(matches!(leading_path("a::b.yml"), Cow::Borrowed(_)));
        assert_eq!(leading_path("::error x::y.yml"), "./::error x::y.yml");
        assert_eq!(leading_path(" \u{a0}::warning::y.yml"), "./ \u{a0}::warning::y.yml");
        // A line break is escaped first: it cannot start a line of its own.
        assert_eq!(leading_path("a\n::error::b.yml"), "a\\u{000a}::error::b.yml");
        assert_eq!(leading_path("\t::error::b.yml"), "\\u{0009}::error::b.yml");
    }
}
