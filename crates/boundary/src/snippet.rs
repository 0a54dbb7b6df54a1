//! The source excerpt a diagnostic shows.
//!
//! miette reads a diagnostic's source through [`SourceCode`]; handed a whole
//! file it scans from the start for every diagnostic (quadratic on a report
//! with a finding per service), prints lines of any length (and panics past
//! column 65,535), and prints whatever bytes the file holds. An [`Excerpt`]
//! is built from the few lines a diagnostic shows and nothing else: each
//! line masked ([`crate::mask`]), sanitized ([`crate::text`]) and cropped
//! to a window around its label, with the labels moved onto that text. The
//! line and column miette prints are the real ones.

use std::ops::Range;

use miette::{LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::mask::{Masker, continues_secret};

/// Line starts and a character count every [`CHUNK`] bytes, so a line and
/// column costs a binary search plus at most one chunk, however long the line.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// Characters before each multiple of CHUNK bytes.
    chunk_chars: Vec<usize>,
    len: usize,
}

const CHUNK: usize = 1024;

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        starts.extend(memchr_all(bytes));
        let mut chunk_chars = Vec::with_capacity(bytes.len() / CHUNK + 1);
        let mut chars = 0usize;
        for chunk in bytes.chunks(CHUNK) {
            chunk_chars.push(chars);
            chars += chunk.iter().filter(|b| (**b & 0xC0) != 0x80).count();
        }
        chunk_chars.push(chars);
        Self { starts, chunk_chars, len: bytes.len() }
    }

    /// 0-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset.min(self.len)) - 1
    }

    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// Byte range of 0-based line `n`, without its line break.
    pub fn line_range(&self, text: &str, n: usize) -> Range<usize> {
        let start = self.starts.get(n).copied().unwrap_or(self.len);
        let mut end = self.starts.get(n + 1).map_or(self.len, |e| e - 1);
        if end > start && text.as_bytes().get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        start..end.max(start)
    }

    fn chars_before(&self, text: &str, offset: usize) -> usize {
        let offset = offset.min(self.len);
        let chunk = offset / CHUNK;
        let from = chunk * CHUNK;
        self.chunk_chars[chunk] + text.as_bytes()[from..offset].iter().filter(|b| (**b & 0xC0) != 0x80).count()
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.line_of(offset);
        let col = self.chars_before(text, offset) - self.chars_before(text, self.starts[line]);
        (line + 1, col + 1)
    }
}

fn memchr_all(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1)
}

/// One label of a diagnostic, in the real file's byte offsets.
#[derive(Debug, Clone)]
pub struct Label {
    pub span: Range<usize>,
    pub text: Option<String>,
    pub primary: bool,
}

/// Characters of a line shown at most; a longer line is shown as a window.
pub const MAX_LINE_CHARS: usize = 160;
/// A label over more lines than this is shown on its first line only.
pub const MAX_LABEL_LINES: usize = 12;

#[derive(Debug, Clone)]
struct ShownLine {
    /// The real line's byte range.
    real: Range<usize>,
    /// The shown text's byte range in the excerpt.
    virt: Range<usize>,
    /// (real offset, shown offset) at each shown character start, and the end.
    map: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct Region {
    virt: Range<usize>,
    first_line: usize,
    lines: Range<usize>,
}

#[derive(Debug, Clone)]
struct Placed {
    virt: Range<usize>,
    text: Option<String>,
    primary: bool,
    line: usize,
    column: usize,
    line_virt: Range<usize>,
}

/// A diagnostic's excerpt: see the module documentation.
#[derive(Debug, Clone)]
pub struct Excerpt {
    name: String,
    text: String,
    regions: Vec<Region>,
    labels: Vec<Placed>,
}

impl Excerpt {
    /// `name` is shown as is: sanitize it first ([`crate::text::line`]).
    pub fn new(name: &str, text: &str, index: &LineIndex, labels: &[Label], context: usize, masker: &Masker) -> Self {
        let clamp = |r: &Range<usize>| {
            let s = floor(text, r.start.min(text.len()));
            let e = floor(text, r.end.min(text.len())).max(s);
            s..e
        };
        // Each label's lines, a long one cut to its first line.
        let mut spans: Vec<(Range<usize>, usize, usize)> = labels
            .iter()
            .map(|l| {
                let mut span = clamp(&l.span);
                let first = index.line_of(span.start);
                let mut last = index.line_of(span.end.saturating_sub(1).max(span.start));
                if last - first > MAX_LABEL_LINES {
                    span.end = index.line_range(text, first).end.max(span.start);
                    last = first;
                }
                (span, first, last)
            })
            .collect();
        let mut wanted: Vec<Range<usize>> = spans
            .iter()
            .map(|(_, first, last)| first.saturating_sub(context)..(last + context).min(index.line_count() - 1) + 1)
            .collect();
        wanted.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::new();
        for r in wanted {
            match merged.last_mut() {
                Some(prev) if r.start <= prev.end => prev.end = prev.end.max(r.end),
                _ => merged.push(r),
            }
        }
        // Only the start of a line matters to find the key a continuation line belongs to.
        let line_text = |n: usize| {
            let r = index.line_range(text, n);
            let end = floor(text, r.start + (r.end - r.start).min(CONTINUATION_PREFIX));
            Some(text[r.start..end].to_owned())
        };
        let mut out = String::new();
        let mut lines = Vec::new();
        let mut regions = Vec::new();
        for (ri, r) in merged.iter().enumerate() {
            let region_start = out.len();
            let first_shown = lines.len();
            for n in r.clone() {
                let real = index.line_range(text, n);
                let line = &text[real.clone()];
                // The window: around the first label starting on this line.
                let anchor = spans
                    .iter()
                    .map(|(s, _, _)| s.start)
                    .filter(|s| real.contains(s) || *s == real.end)
                    .min()
                    .map_or(0, |s| s - real.start);
                let (ws, we) = window(line, anchor);
                // Masks are computed over the window and a margin around it,
                // never the whole of a long line: work per diagnostic stays
                // bounded. (A key further away than the margin is not seen
                // by the line scan; the checkers' own places still are.)
                let (ms, me) =
                    (floor(line, ws.saturating_sub(MASK_MARGIN)), ceil(line, (we + MASK_MARGIN).min(line.len())));
                let mut masks: Vec<Range<usize>> = if (ms, me) == (0, line.len()) {
                    masker.whole_line_masks(line, real.start)
                } else {
                    masker
                        .line_masks(&line[ms..me], real.start + ms)
                        .into_iter()
                        .map(|m| m.start + ms..m.end + ms)
                        .collect()
                };
                if continues_secret(&line_text, n) {
                    masks.push(0..line.len());
                }
                let start_virt = out.len();
                let mut map = Vec::new();
                if ws > 0 {
                    out.push('…');
                }
                let mut hidden = vec![false; we - ws];
                for m in &masks {
                    let (a, b) = (m.start.clamp(ws, we), m.end.clamp(ws, we));
                    for h in &mut hidden[a - ws..b - ws] {
                        *h = true;
                    }
                }
                for (i, c) in line[ws..we].char_indices() {
                    let at = ws + i;
                    map.push((real.start + at, out.len()));
                    if hidden[i] {
                        out.push('*');
                    } else {
                        crate::text::push_snippet_char(&mut out, c);
                    }
                }
                map.push((real.start + we, out.len()));
                if we < line.len() {
                    out.push('…');
                }
                let end_virt = out.len();
                lines.push(ShownLine { real, virt: start_virt..end_virt, map });
                let last_of_region = n + 1 == r.end;
                if !(last_of_region && ri + 1 == merged.len()) {
                    out.push('\n');
                }
            }
            let region_end = lines.last().map_or(out.len(), |l: &ShownLine| l.virt.end);
            regions.push(Region {
                virt: region_start..region_end,
                first_line: r.start,
                lines: first_shown..lines.len(),
            });
        }
        let locate = |real: usize| -> usize {
            let i = lines.partition_point(|l| l.real.start <= real).saturating_sub(1);
            let Some(l) = lines.get(i) else { return 0 };
            if real <= l.map[0].0 {
                return l.map[0].1;
            }
            let j = l.map.partition_point(|(r, _)| *r <= real).saturating_sub(1);
            l.map[j].1
        };
        let placed = labels
            .iter()
            .zip(spans.iter_mut())
            .map(|(label, (span, first, _))| {
                let start = locate(span.start);
                let end = locate(span.end).max(start);
                let (line, column) = index.line_col(text, span.start);
                let i = lines.partition_point(|l| l.real.start <= span.start).saturating_sub(1);
                let line_virt = lines.get(i).map_or(0..0, |l| l.virt.clone());
                let _ = first;
                Placed {
                    virt: start..end,
                    text: label.text.clone(),
                    primary: label.primary,
                    line: line - 1,
                    column: column - 1,
                    line_virt,
                }
            })
            .collect();
        Self { name: name.to_owned(), text: out, regions, labels: placed }
    }

    /// The labels, in the excerpt's offsets, for [`miette::Diagnostic::labels`].
    pub fn labels(&self) -> impl Iterator<Item = LabeledSpan> + '_ {
        self.labels.iter().map(|l| {
            let span = SourceSpan::from(l.virt.clone());
            if l.primary {
                LabeledSpan::new_primary_with_span(l.text.clone(), span)
            } else {
                LabeledSpan::new_with_span(l.text.clone(), span)
            }
        })
    }

    /// The text as shown (for tests).
    pub fn shown(&self) -> &str {
        &self.text
    }
}

/// Bytes of a long line scanned for masks on each side of its window.
const MASK_MARGIN: usize = 1024;
/// Bytes of a line read to tell whether it continues a credential value.
const CONTINUATION_PREFIX: usize = 512;

fn ceil(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn floor(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The byte window of `line` shown: all of it when short, else
/// [`MAX_LINE_CHARS`] characters starting a little before `anchor`.
fn window(line: &str, anchor: usize) -> (usize, usize) {
    if line.len() <= MAX_LINE_CHARS || line.chars().count() <= MAX_LINE_CHARS {
        return (0, line.len());
    }
    let anchor = floor(line, anchor.min(line.len()));
    let lead = MAX_LINE_CHARS / 4;
    let start = line[..anchor].char_indices().rev().nth(lead - 1).map_or(0, |(i, _)| i);
    let end = line[start..].char_indices().nth(MAX_LINE_CHARS).map_or(line.len(), |(i, _)| start + i);
    (start, end)
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let offset = span.offset();
        if context_lines_before == 0 && context_lines_after == 0 {
            // miette asks for a label's own span for the `[file:line:col]` header.
            if let Some(l) = self.labels.iter().find(|l| l.virt.start == offset) {
                return Ok(Box::new(MietteSpanContents::new_named(
                    self.name.clone(),
                    &self.text.as_bytes()[l.line_virt.clone()],
                    SourceSpan::from(l.line_virt.clone()),
                    l.line,
                    l.column,
                    1,
                )));
            }
        }
        let region = self
            .regions
            .iter()
            .find(|r| r.virt.start <= offset && offset <= r.virt.end)
            .or_else(|| self.regions.last())
            .ok_or(MietteError::OutOfBounds)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[region.virt.clone()],
            SourceSpan::from(region.virt.clone()),
            region.first_line,
            0,
            region.lines.len(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excerpt(text: &str, span: Range<usize>) -> Excerpt {
        let index = LineIndex::new(text);
        let masker = Masker::new(text, Vec::new(), []);
        Excerpt::new("f.yml", text, &index, &[Label { span, text: Some("here".into()), primary: true }], 1, &masker)
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "é: 1\nabc\n";
        let index = LineIndex::new(text);
        assert_eq!(index.line_col(text, 0), (1, 1));
        assert_eq!(index.line_col(text, 2), (1, 2));
        assert_eq!(index.line_col(text, 7), (2, 2));
        let long = format!("{}x", "ü".repeat(5000));
        let index = LineIndex::new(&long);
        assert_eq!(index.line_col(&long, long.len() - 1), (1, 5001));
    }

    #[test]
    fn shows_only_context_lines_masked_and_sanitized() {
        let text = "a: 1\nb: 2\nPASSWORD: hunter2\nc: \u{1b}[2J\nd: 4\ne: 5\n";
        let at = text.find("c:").expect("c");
        let e = excerpt(text, at..at + 1);
        assert_eq!(e.shown(), "PASSWORD: *******\nc: \\u{001b}[2J\nd: 4");
    }

    #[test]
    fn long_lines_are_windows() {
        let text = format!("k: {}TARGET{}\n", "x".repeat(100_000), "y".repeat(100_000));
        let at = text.find("TARGET").expect("target");
        let e = excerpt(&text, at..at + 6);
        let first = e.shown().lines().next().expect("a line");
        assert!(first.chars().count() <= MAX_LINE_CHARS + 2, "{}", first.len());
        let label = e.labels().next().expect("label");
        assert_eq!(&e.shown()[label.offset()..label.offset() + label.len()], "TARGET");
    }
}
