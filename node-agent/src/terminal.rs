//! Making text safe to print on a person's terminal.
//!
//! What the agent prints comes in part from elsewhere: another authority's
//! user names and teams in notifications, custodians' key workers and
//! services in query answers, the hub's error messages, source files' lines
//! in ingest reports. A control character in any of them could move the
//! cursor, recolour or retitle the terminal, or hide text; a bidirectional
//! override could make a line read differently from what it holds. So every
//! line and table the agent prints for people passes through [`escape`] (a
//! single field or cell) or [`escape_lines`] (a whole block the agent laid
//! out itself), and every JSON document it prints through [`json_pretty`].
//!
//! An escaped character is shown as Rust writes it, `\u{1b}`, so an
//! operator can still see that it was there and which it was.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for a code point that must not reach a terminal as it is: every C0
/// and C1 control and DEL (category Cc), the bidirectional controls (LRE,
/// RLE, PDF, LRO, RLO U+202A–U+202E; LRI, RLI, FSI, PDI U+2066–U+2069; ALM
/// U+061C, LRM U+200E, RLM U+200F), and the Unicode line and paragraph
/// separators U+2028 and U+2029 (a line break to some terminals and viewers).
pub fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `text` with every dangerous character (see [`is_dangerous`]), line
/// breaks and tabs included, written as `\u{XX}`. For one field or cell:
/// nothing in it can start a new line or change how the terminal shows what
/// follows. Borrowed when there was nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_except(text, |_| false)
}

/// [`escape`], keeping line breaks (`\n`): for a block of lines that the
/// agent laid out itself (fields within it escaped with [`escape`]). A
/// carriage return, which could overwrite a line already printed, is
/// escaped.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_except(text, |c| c == '\n')
}

fn escape_except(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_dangerous(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_dangerous(c) && !keep(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` as pretty JSON that is safe on a terminal: serde_json already
/// writes C0 controls as `\u00XX`; this also writes DEL, the C1 controls and
/// the bidirectional and separator characters of [`is_dangerous`] as
/// `\uXXXX` escapes. The document means the same to any JSON reader (those
/// characters can only stand inside strings, where the escape is
/// equivalent).
pub fn json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    if !text.chars().any(|c| is_dangerous(c) && c != '\n') {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        // Outside strings, serde_json writes only ASCII structure and
        // whitespace ('\n' and ' ' in pretty output); inside them it has
        // already escaped every C0 control, '\n' included.
        if is_dangerous(c) && c != '\n' {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "Dr A. Rahman (a.rahman, ed_clinician) — Ōsaka, 0161 234 5000";
        assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        assert!(matches!(escape_lines("a\nb\n"), Cow::Borrowed("a\nb\n")));
    }

    #[test]
    fn terminal_escape_sequences_are_shown_not_obeyed() {
        assert_eq!(escape("\x1b[31mred\x1b[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        // An OSC title change ended by BEL, and the 8-bit CSI (C1).
        assert_eq!(escape("\x1b]0;owned\x07"), "\\u{1b}]0;owned\\u{7}");
        assert_eq!(escape("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(escape("nul\0del\x7f"), "nul\\u{0}del\\u{7f}");
    }

    #[test]
    fn every_c0_and_c1_control_is_escaped() {
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(c).unwrap();
            let s = c.to_string();
            let e = escape(&s);
            assert_eq!(e, format!("\\u{{{:x}}}", u32::from(c)), "{c:?}");
            assert!(!e.chars().any(char::is_control));
        }
        // The first printable characters either side are left alone.
        assert_eq!(escape(" ~\u{a0}"), " ~\u{a0}");
    }

    #[test]
    fn bidi_controls_and_separators_are_escaped_at_each_end_of_their_ranges() {
        for c in [
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{061c}', '\u{200e}', '\u{200f}',
            '\u{2028}', '\u{2029}',
        ] {
            assert!(is_dangerous(c), "{c:?}");
            assert_eq!(escape(&c.to_string()), format!("\\u{{{:x}}}", u32::from(c)));
        }
        // One past each end of each range is ordinary text.
        for c in [
            '\u{2027}', '\u{202f}', '\u{2065}', '\u{206a}', '\u{061b}', '\u{061d}', '\u{200d}',
            '\u{2010}',
        ] {
            assert!(!is_dangerous(c), "{c:?}");
            assert_eq!(escape(&c.to_string()), c.to_string());
        }
        // "Sam" with the rest reversed on screen by an RLO.
        assert_eq!(escape("Sam\u{202e}nimda"), "Sam\\u{202e}nimda");
    }

    #[test]
    fn a_field_cannot_start_a_line_but_a_block_keeps_its_own() {
        assert_eq!(
            escape("a\nBREAK GLASS\r\tx"),
            "a\\u{a}BREAK GLASS\\u{d}\\u{9}x"
        );
        assert_eq!(
            escape_lines("one\ntwo\r\n\x1b[2J"),
            "one\ntwo\\u{d}\n\\u{1b}[2J"
        );
    }

    #[test]
    fn json_stays_valid_and_means_the_same() {
        let value = serde_json::json!({
            "display_name": "\x1b[31mEvil\u{9b}\u{202e}x\u{2028}",
            "n": 1
        });
        let text = json_pretty(&value).unwrap();
        assert!(
            !text.chars().any(|c| is_dangerous(c) && c != '\n'),
            "{text}"
        );
        assert!(
            text.contains("\\u001b[31mEvil\\u009b\\u202ex\\u2028"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        // Nothing to escape: exactly serde_json's output.
        let plain = serde_json::json!({"a": "b"});
        assert_eq!(
            json_pretty(&plain).unwrap(),
            serde_json::to_string_pretty(&plain).unwrap()
        );
    }
}
