//! Strings a client controls (usernames, client ids, topics, `by`, notes), made safe to
//! log or audit: at most [`MAX_LOGGED_BYTES`] bytes, with control characters escaped, so
//! that a client can neither grow the logs at will nor forge lines in them.

use std::borrow::Cow;
use std::fmt::Write;

/// The most bytes of one client-controlled string that reach a log line or audit entry.
pub const MAX_LOGGED_BYTES: usize = 128;

/// `text` truncated to [`MAX_LOGGED_BYTES`] (a suffix says how long it was) with `\`,
/// control characters and bidirectional overrides escaped (`\u{1b}`), so that what is
/// logged is unambiguous and one line.
pub fn clip(text: &str) -> Cow<'_, str> {
    let plain = |c: char| c != '\\' && !needs_escape(c);
    if text.len() <= MAX_LOGGED_BYTES && text.chars().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(MAX_LOGGED_BYTES + 24);
    for c in text.chars() {
        let before = out.len();
        if c == '\\' {
            out.push_str("\\\\");
        } else if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
        if out.len() > MAX_LOGGED_BYTES {
            out.truncate(before);
            let _ = write!(out, "…({} bytes)", text.len());
            break;
        }
    }
    Cow::Owned(out)
}

/// Characters that could end a log line, move the cursor or reorder what a reader sees.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_plain_text_is_kept_as_it_is() {
        assert!(matches!(clip("cuff-17"), Cow::Borrowed("cuff-17")));
        assert_eq!(clip(""), "");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_says_its_length() {
        let long = "é".repeat(40_000);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_LOGGED_BYTES + 24, "{}", clipped.len());
        assert!(clipped.ends_with("…(80000 bytes)"), "{clipped}");
        assert!(clipped.starts_with("éé"));
    }

    #[test]
    fn control_characters_cannot_forge_a_line() {
        let forged = "dev\n2026-01-01 INFO admin logged in\u{1b}[2J\\u{a}\u{202e}";
        let clipped = clip(forged);
        assert!(!clipped.contains('\n') && !clipped.contains('\u{1b}'));
        assert!(!clipped.contains('\u{202e}'));
        assert!(clipped.contains("dev\\u{a}2026"), "{clipped}");
        // A literal backslash sequence stays distinguishable from an escaped newline.
        assert!(clipped.contains("\\\\u{a}"), "{clipped}");
    }
}
