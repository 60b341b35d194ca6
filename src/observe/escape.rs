//! Strings a client chose (a path, a room's name, a close reason), as a text log line shows
//! them: control and other invisible characters escaped, so a client cannot start a line of
//! its own or rewrite the terminal, and the length bounded, so a client cannot fill the log.
//! JSON log lines escape through serde_json; this is for the text format and the message.

use std::fmt;

/// Characters of a client's string shown at most; the rest is replaced by `…`.
pub(crate) const SHOWN_CHARACTERS: usize = 200;

/// `text` escaped and cut for a log line (see the module's comment).
pub(crate) struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, character) in self.0.chars().enumerate() {
            if index == SHOWN_CHARACTERS {
                return f.write_str("…");
            }
            if character.is_control() || is_invisible(character) {
                write!(f, "{}", character.escape_default())?;
            } else {
                write!(f, "{character}")?;
            }
        }
        Ok(())
    }
}

/// Formatting characters that change how the rest of a line reads without showing
/// themselves: bidirectional overrides and isolates, zero-width joiners and spaces.
fn is_invisible(character: char) -> bool {
    matches!(
        character,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_invisible_characters_are_escaped_and_the_rest_kept() {
        let shown = Escaped("bye\nINFO forged\r\u{1b}[31mred\u{202e}ü \"q\"").to_string();
        assert_eq!(shown, "bye\\nINFO forged\\r\\u{1b}[31mred\\u{202e}ü \"q\"");
        assert!(!shown.contains('\n'));
    }

    #[test]
    fn long_strings_are_cut_with_an_ellipsis() {
        let shown = Escaped(&"é".repeat(1000)).to_string();
        assert_eq!(shown.chars().count(), SHOWN_CHARACTERS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(Escaped("short").to_string(), "short");
    }
}
