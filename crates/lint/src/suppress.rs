//! Inline suppressions: `# hacompile-ignore CODE[,CODE]: reason`.
//!
//! - on its own line: the next line that is not blank or a comment;
//! - after code on a line: that line;
//! - `# hacompile-ignore-start CODE: reason` ... `# hacompile-ignore-end`: the block;
//! - `# hacompile-ignore-file CODE: reason`: the whole file.
//!
//! A reason is required; without one, or with an unknown code, the comment
//! suppresses nothing and is itself reported (HC002).

use crate::source::Source;

#[derive(Debug, Clone)]
pub struct Suppression {
    pub codes: Vec<String>,
    pub reason: String,
    /// 1-based inclusive line range it covers.
    pub lines: (usize, usize),
    /// Where the comment is (for reporting it).
    pub span: std::ops::Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub span: std::ops::Range<usize>,
    pub message: String,
}

pub struct Parsed {
    pub suppressions: Vec<Suppression>,
    pub problems: Vec<Problem>,
}

const MARK: &str = "hacompile-ignore";

pub fn parse(src: &Source, known: impl Fn(&str) -> bool) -> Parsed {
    let mut suppressions = Vec::new();
    let mut problems = Vec::new();
    let mut open: Option<(Vec<String>, String, usize, std::ops::Range<usize>)> = None;
    let text = &src.text;
    // Cheap exit for the common case (and the 2,000-service benchmark).
    if !text.contains(MARK) {
        return Parsed { suppressions, problems };
    }
    let total = src.line_count();
    for n in 1..=total {
        let line = src.line(n);
        let Some(hash) = line.find('#') else { continue };
        let comment = line[hash + 1..].trim();
        let Some(rest) = comment.strip_prefix(MARK) else { continue };
        let line_start = src.offset(n, 0);
        let span = line_start + hash..line_start + line.len();
        let (kind, rest) = if let Some(r) = rest.strip_prefix("-start") {
            ("start", r)
        } else if let Some(r) = rest.strip_prefix("-end") {
            ("end", r)
        } else if let Some(r) = rest.strip_prefix("-file") {
            ("file", r)
        } else {
            ("line", rest)
        };
        if kind == "end" {
            match open.take() {
                Some((codes, reason, from, span)) => {
                    suppressions.push(Suppression { codes, reason, lines: (from, n), span })
                }
                None => problems
                    .push(Problem { span, message: "`hacompile-ignore-end` without a matching `-start`".into() }),
            }
            continue;
        }
        let (codes_text, reason) = match rest.split_once(':') {
            Some((c, r)) => (c, r.trim()),
            None => (rest, ""),
        };
        let codes: Vec<String> = codes_text
            .split([',', ' '])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        if codes.is_empty() {
            problems.push(Problem { span, message: "the suppression names no rule code".into() });
            continue;
        }
        if let Some(bad) = codes.iter().find(|c| !known(c)) {
            problems.push(Problem { span, message: format!("the suppression names `{bad}`, which is not a rule") });
            continue;
        }
        if reason.is_empty() {
            problems
                .push(Problem { span, message: format!("the suppression of {} gives no reason", codes.join(", ")) });
            continue;
        }
        let reason = reason.to_owned();
        match kind {
            "start" => open = Some((codes, reason, n, span)),
            "file" => suppressions.push(Suppression { codes, reason, lines: (1, total), span }),
            _ => {
                let trailing = !line[..hash].trim().is_empty();
                let target = if trailing {
                    n
                } else {
                    (n + 1..=total)
                        .find(|&m| {
                            let t = src.line(m).trim();
                            !t.is_empty() && !t.starts_with('#')
                        })
                        .unwrap_or(n)
                };
                suppressions.push(Suppression { codes, reason, lines: (target, target), span });
            }
        }
    }
    if let Some((_, _, _, span)) = open {
        problems.push(Problem {
            span,
            message: "`hacompile-ignore-start` is never closed with `hacompile-ignore-end`".into(),
        });
    }
    Parsed { suppressions, problems }
}
