//! A linted file's text with a line index, for byte offsets and line/column.
//!
//! The parser counts positions in characters and findings report columns
//! in characters, while spans are bytes. Converting by counting from the
//! start of the line costs the line's length each time, which made a long
//! one-line (JSON) file with non-ASCII text quadratic. Instead, the byte
//! offset of every [`CHUNK`]-th character is recorded once, so each
//! conversion is a binary search plus at most [`CHUNK`] characters.

use std::sync::Arc;

/// Characters between two recorded byte offsets: the most a conversion walks.
const CHUNK: usize = 64;

#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
    line_starts: Vec<usize>,
    /// The byte offset of character `i * CHUNK`, for every `i`; empty when
    /// the text is ASCII (a character index is then a byte offset).
    marks: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        let marks =
            if text.is_ascii() { Vec::new() } else { text.char_indices().step_by(CHUNK).map(|(i, _)| i).collect() };
        Self { name: name.into(), text, line_starts, marks }
    }

    /// The byte offset of the character with this index (the text's length
    /// past its end).
    fn byte_of_char(&self, index: usize) -> usize {
        if self.marks.is_empty() {
            return index.min(self.text.len());
        }
        let Some(&base) = self.marks.get(index / CHUNK) else { return self.text.len() };
        match self.text[base..].char_indices().nth(index % CHUNK) {
            Some((i, _)) => base + i,
            None => self.text.len(),
        }
    }

    /// The index of the character that starts at (or contains) a byte offset.
    fn char_of_byte(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        if self.marks.is_empty() {
            return offset;
        }
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let chunk = self.marks.partition_point(|&m| m <= offset) - 1;
        chunk * CHUNK + self.text[self.marks[chunk]..offset].chars().count()
    }

    /// Byte offset of a parser position, given as its character index (and
    /// its line and column, which the index makes redundant).
    pub fn offset_of(&self, char_index: usize, _line: usize, _col_chars: usize) -> usize {
        self.byte_of_char(char_index)
    }

    /// Byte offset of a 1-based line and 0-based column counted in characters
    /// (the end of the line when the column is past it).
    pub fn offset(&self, line: usize, col_chars: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let end = self.line_starts.get(line).map_or(self.text.len(), |e| e - 1);
        self.byte_of_char(self.char_of_byte(start) + col_chars).min(end.max(start))
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset.min(self.text.len()))
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_of(offset);
        let start = self.line_starts[line - 1];
        (line, self.char_of_byte(offset) - self.char_of_byte(start) + 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The conversions agree with counting from the start, at every
    /// character of a text that mixes one- to four-byte characters over
    /// several chunks and lines.
    #[test]
    fn conversions_agree_with_counting() {
        let text: String = (0..500)
            .map(|i| match i % 7 {
                0 => 'a',
                1 => 'é',
                2 => '€',
                3 => '𝄞',
                4 if i % 50 == 4 => '\n',
                _ => 'x',
            })
            .collect();
        let src = Source::new("t", text.as_str());
        for (ci, (bi, _)) in text.char_indices().enumerate() {
            assert_eq!(src.byte_of_char(ci), bi);
            assert_eq!(src.char_of_byte(bi), ci);
            let line = text[..bi].matches('\n').count() + 1;
            let line_start = text[..bi].rfind('\n').map_or(0, |i| i + 1);
            let col = text[line_start..bi].chars().count();
            assert_eq!(src.line_col(bi), (line, col + 1));
            assert_eq!(src.offset(line, col), bi);
            assert_eq!(src.offset_of(ci, line, col), bi);
        }
        assert_eq!(src.byte_of_char(text.chars().count()), text.len());
        assert_eq!(src.byte_of_char(usize::MAX / 2), text.len());
        // Inside a multi-byte character: that character.
        let e = text.find('€').expect("€");
        assert_eq!(src.char_of_byte(e + 1), src.char_of_byte(e));
        // A column past the end of its line stops at the line's end.
        assert_eq!(src.offset(1, 10_000), text.find('\n').expect("a newline"));
        let ascii = Source::new("a", "ab\ncd");
        assert_eq!((ascii.line_col(4), ascii.offset(2, 1), ascii.offset_of(4, 2, 1)), ((2, 2), 4, 4));
    }
}
