//! A linted file's text with a line index, for byte offsets and line/column.

use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
    line_starts: Vec<usize>,
    /// All ASCII: a character index is a byte offset.
    ascii: bool,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        let ascii = text.is_ascii();
        Self { name: name.into(), text, line_starts, ascii }
    }

    /// Byte offset of a parser position given as a character index plus
    /// line/column; the index is used directly when the text is ASCII.
    pub fn offset_of(&self, char_index: usize, line: usize, col_chars: usize) -> usize {
        if self.ascii { char_index.min(self.text.len()) } else { self.offset(line, col_chars) }
    }

    /// Byte offset of a 1-based line and 0-based column counted in characters.
    pub fn offset(&self, line: usize, col_chars: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        match rest.char_indices().nth(col_chars) {
            Some((i, _)) => start + i,
            None => self.text.len().min(start + rest.len()),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let mut end = offset;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        (line, self.text[start..end].chars().count() + 1)
    }

    /// The text of a 1-based line, without its newline.
    pub fn line(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else { return "" };
        let end = self.line_starts.get(line).map_or(self.text.len(), |e| e - 1);
        self.text[start..end.max(start)].trim_end_matches('\r')
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }
}
