//! The plan text as read, with the name it is reported under.

use std::sync::Arc;

/// A plan file's name (as the user gave it) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name diagnostics and generated-file headers use, e.g. `plans/gke.toml`.
    pub name: String,
    /// The UTF-8 text of the plan.
    pub text: Arc<str>,
}

impl Source {
    /// Wraps a name and text.
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
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
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
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
    fn line_column_counts_characters_not_bytes() {
        let source = Source::new("p.toml", "a = 1\nname = \"é x\"\n");
        assert_eq!(source.line_column(0), (1, 1));
        assert_eq!(source.line_column(6), (2, 1));
        let x = source.text.find('x').unwrap();
        assert_eq!(source.line_column(x), (2, 11));
    }

    #[test]
    fn invalid_utf8_reports_the_first_bad_byte() {
        let (source, bad) = Source::from_bytes("p.toml", b"id = \"\xff\"");
        assert_eq!(bad, Some(6));
        assert!(source.text.starts_with("id = \""));
    }
}
