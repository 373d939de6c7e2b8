//! Plain-text tables for the commands' output.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::terminal::escape;

/// Lays out rows under headers, columns padded to their widest cell, two
/// spaces apart, with no trailing spaces. Every cell is escaped first
/// ([`crate::terminal::escape`]): a cell cannot hold a control character,
/// a bidirectional override or a line break, so it cannot recolour the
/// terminal or forge a row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let headers: Vec<Cow<'_, str>> = headers.iter().map(|h| escape(h)).collect();
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|c| escape(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[Cow<'_, str>]| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&headers);
    for row in &rows {
        line(row);
    }
    out
}

/// The text, or "-" when there is none.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_without_trailing_spaces() {
        let out = super::table(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), String::new()],
            ],
        );
        assert_eq!(out, "A          LONGER\nwide cell  x\ny\n");
    }

    #[test]
    fn cells_are_escaped_and_padded_by_what_is_shown() {
        let out = super::table(
            &["NAME", "TEAM"],
            &[
                vec!["\x1b[31mEve".into(), "a\nFAKE ROW".into()],
                vec!["Bob".into(), "\u{202e}x".into()],
            ],
        );
        assert_eq!(
            out,
            "NAME           TEAM\n\\u{1b}[31mEve  a\\u{a}FAKE ROW\nBob            \\u{202e}x\n"
        );
        assert_eq!(out.lines().count(), 3);
        assert!(
            !out.chars()
                .any(|c| crate::terminal::is_dangerous(c) && c != '\n')
        );
    }
}
