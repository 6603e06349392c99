//! The plan text as read, with the name it is reported under, and an index of its lines so
//! that every finding finds its line and column in logarithmic time: a plan of 64 MiB can hold
//! a million findings, and scanning from the start for each was quadratic (review R3).

use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// A plan file's name (as the user gave it) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name diagnostics and generated-file headers use, e.g. `plans/gke.toml`.
    pub name: String,
    /// The UTF-8 text of the plan.
    pub text: Arc<str>,
    /// Built on first use: `check` of a valid plan never needs it.
    lines: OnceLock<Arc<LineIndex>>,
}

impl Source {
    /// Wraps a name and text.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
            lines: OnceLock::new(),
        }
    }

    /// Decodes raw bytes. Invalid UTF-8 is not an I/O failure but a broken plan, so the text is
    /// decoded lossily (to show it) and the byte offset of the first bad byte is returned.
    pub fn from_bytes(name: impl Into<String>, bytes: &[u8]) -> (Self, Option<usize>) {
        match std::str::from_utf8(bytes) {
            Ok(text) => (Source::new(name, text), None),
            Err(err) => {
                let text = String::from_utf8_lossy(bytes);
                (Source::new(name, text.as_ref()), Some(err.valid_up_to()))
            }
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let index = self.line_index();
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let line = index.line_of(offset);
        let start = index.line(line).start;
        let column = index.chars_before(&self.text, offset) - index.chars_before(&self.text, start);
        (line + 1, column + 1)
    }

    /// The index of the text's lines, built once.
    pub fn line_index(&self) -> &LineIndex {
        self.lines
            .get_or_init(|| Arc::new(LineIndex::new(&self.text)))
    }
}

/// Where each line of a text starts, and how many characters precede every
/// [`CHAR_CHECKPOINT`]-th byte: a line's number and a column in characters are then a binary
/// search and a count of at most that many bytes away.
#[derive(Debug)]
pub struct LineIndex {
    /// Byte offset of each line's first byte; the first is 0. A line ends at the next's start
    /// (after its `\n`), the last at the end of the text.
    starts: Vec<usize>,
    /// Characters in `text[..k * CHAR_CHECKPOINT]`, for each k.
    chars: Vec<usize>,
    /// The text's length in bytes.
    len: usize,
}

/// Small enough that a column costs little to count, large enough that the index is an eighth
/// of the text's size at most (on 64-bit).
const CHAR_CHECKPOINT: usize = 64;

impl LineIndex {
    /// Indexes a text: one pass over its bytes.
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        // A plan's lines are ~18 bytes: room for one start per 16 bytes is rarely grown.
        let mut starts = Vec::with_capacity(bytes.len() / 16 + 1);
        starts.push(0);
        line_starts(bytes, &mut starts);
        let mut chars = Vec::with_capacity(bytes.len() / CHAR_CHECKPOINT + 1);
        let mut count = 0;
        chars.push(0);
        for block in bytes.chunks(CHAR_CHECKPOINT) {
            count += char_starts(block);
            chars.push(count);
        }
        LineIndex {
            starts,
            chars,
            len: bytes.len(),
        }
    }

    /// The number of lines (a text ending in `\n` has an empty last line).
    pub fn lines(&self) -> usize {
        self.starts.len()
    }

    /// The 0-based line holding a byte offset (offsets past the end are on the last line).
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset) - 1
    }

    /// The bytes of a 0-based line, its `\n` included; empty past the last line.
    pub fn line(&self, line: usize) -> Range<usize> {
        let start = self.starts.get(line).copied().unwrap_or(self.len);
        let end = self.starts.get(line + 1).copied().unwrap_or(self.len);
        start..end
    }

    /// Characters of `text[..offset]`; `offset` is a char boundary of the text indexed.
    pub fn chars_before(&self, text: &str, offset: usize) -> usize {
        let offset = offset.min(self.len);
        let block = offset / CHAR_CHECKPOINT;
        let from = block * CHAR_CHECKPOINT;
        self.chars.get(block).copied().unwrap_or(0) + char_starts(&text.as_bytes()[from..offset])
    }
}

/// Pushes the offset after every `\n`: eight bytes at a time, the high bit of each byte that
/// is `\n` (exact per byte: no carry crosses a byte), then one offset per bit.
fn line_starts(bytes: &[u8], starts: &mut Vec<usize>) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut word_bytes = [0u8; 8];
        word_bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(word_bytes) ^ (ONES * u64::from(b'\n'));
        let mut mask = !(((x & LOW7) + LOW7) | x) & (ONES << 7);
        while mask != 0 {
            starts.push(at + (mask.trailing_zeros() / 8) as usize + 1);
            mask &= mask - 1;
        }
        at += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == b'\n' {
            starts.push(at + i + 1);
        }
    }
}

/// Characters that start in a run of UTF-8 bytes: every byte but continuation bytes.
fn char_starts(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_starts_are_every_offset_after_a_newline() {
        // `Ê` is C3 8A: a byte whose low seven bits are `\n`'s; newlines at every place in a
        // word of eight, and in the tail.
        let text = "a\nÊ\n\nbcdefgh\nÊÊÊÊ\r\n\n12345678\nx\n\n";
        for cut in 0..=text.len() {
            let Some(text) = text.get(cut..) else {
                continue;
            };
            let mut starts = Vec::new();
            line_starts(text.as_bytes(), &mut starts);
            let naive: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
            assert_eq!(starts, naive, "{text:?}");
        }
    }

    #[test]
    fn line_column_counts_characters_not_bytes() {
        let source = Source::new("p.toml", "a = 1\nname = \"é x\"\n");
        assert_eq!(source.line_column(0), (1, 1));
        assert_eq!(source.line_column(6), (2, 1));
        let x = source.text.find('x').unwrap();
        assert_eq!(source.line_column(x), (2, 11));
    }

    #[test]
    fn line_column_agrees_with_counting_from_the_start() {
        let long = "é".repeat(3 * CHAR_CHECKPOINT);
        let text = format!("a = 1\r\n\nname = \"{long}x\"\n\nz = [{long}]\nlast");
        let source = Source::new("p.toml", text.as_str());
        for (offset, _) in text.char_indices().chain([(text.len(), ' ')]) {
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[start..].chars().count() + 1;
            assert_eq!(
                source.line_column(offset),
                (line, column),
                "offset {offset}"
            );
        }
        // Past the end, or inside a character: where the character or the text ends.
        assert_eq!(
            source.line_column(text.len() + 10),
            source.line_column(text.len())
        );
        let e = text.find('é').unwrap();
        assert_eq!(source.line_column(e + 1), source.line_column(e));
    }

    #[test]
    fn lines_are_indexed_with_their_newline() {
        let index = LineIndex::new("ab\n\ncd");
        assert_eq!(index.lines(), 3);
        assert_eq!(
            (index.line(0), index.line(1), index.line(2)),
            (0..3, 3..4, 4..6)
        );
        assert_eq!(index.line(3), 6..6);
        assert_eq!(
            [0, 2, 3, 4, 6, 9].map(|offset| index.line_of(offset)),
            [0, 0, 1, 2, 2, 2]
        );
    }

    #[test]
    fn invalid_utf8_reports_the_first_bad_byte() {
        let (source, bad) = Source::from_bytes("p.toml", b"id = \"\xff\"");
        assert_eq!(bad, Some(6));
        assert!(source.text.starts_with("id = \""));
    }
}
