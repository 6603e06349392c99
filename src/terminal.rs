//! Text for people's terminals. Names the user supplies (the plan file, the output and CA
//! directories) and values quoted in messages are printed with the characters that would act
//! on the terminal escaped, so that a plan named "ok.toml: valid\nx.toml" cannot print a line
//! of its own and one named with escape sequences cannot move the cursor or clear the screen
//! (review V5). JSON output keeps the exact text: JSON escapes it.

use std::borrow::Cow;
use std::path::Path;

/// `text` with each character that would act on a terminal instead of showing written as a
/// Rust escape: `\n`, `\r`, `\t`, `\u{1b}`, `\u{2028}`.
pub fn text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if acts_on_terminal(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// A path as the user gave it, for a human message.
pub fn path(path: &Path) -> String {
    text(&path.to_string_lossy()).into_owned()
}

/// Control characters (C0, DEL, C1), the Unicode line and paragraph separators, and the
/// bidirectional controls that reorder what a terminal or a browser shows ("Trojan Source").
pub fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for plain in ["plans/mesh.toml", "网格.toml", "a b`c'd\"e\\f.toml", ""] {
            assert!(matches!(text(plain), Cow::Borrowed(t) if t == plain));
        }
    }

    #[test]
    fn what_acts_on_a_terminal_is_escaped_visibly() {
        assert_eq!(text("ok.toml: valid\nx.toml"), r"ok.toml: valid\nx.toml");
        assert_eq!(
            text("evil\u{1b}[1A\u{1b}[2K\rplan.toml"),
            r"evil\u{1b}[1A\u{1b}[2K\rplan.toml"
        );
        assert_eq!(text("a\tb\u{7f}\u{85}"), r"a\tb\u{7f}\u{85}");
        assert_eq!(text("x\u{2028}\u{202e}y"), r"x\u{2028}\u{202e}y");
    }

    #[test]
    fn every_escaped_character_is_printed_as_ascii() {
        let escaped: String = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| acts_on_terminal(c))
            .collect();
        let shown = text(&escaped);
        assert!(
            shown.is_ascii() && !shown.chars().any(acts_on_terminal),
            "{shown}"
        );
    }
}
