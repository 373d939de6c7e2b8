//! The one shape of a validation failure: which field, and why, and the
//! bounds on how much of it is ever repeated back.
//!
//! A rejected value travels into a report, a gRPC status message and an
//! audit entry. None of those may grow with the input, so a reason quotes at
//! most a short prefix of the value ([`quote`]) and a list of errors is cut
//! to its first [`MAX_FIELD_ERRORS`] with a count of the rest ([`capped`]).

use std::fmt;

/// A reason tied to one field of a record, e.g. `subject.nhs_number`:
/// "check digit does not match".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Dotted path of the field within the record.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Most field errors reported for one record or request; the rest are
/// counted in one last entry.
pub const MAX_FIELD_ERRORS: usize = 20;

/// Most characters of a rejected value repeated in a reason.
pub const MAX_QUOTED_CHARS: usize = 32;

/// The field named by the entry that counts errors left out.
pub const MORE_ERRORS_FIELD: &str = "(more)";

/// A rejected value as a reason may show it: Rust-escaped and quoted (so
/// control characters and escape sequences are visible, never acted on),
/// at most [`MAX_QUOTED_CHARS`] characters, and, when cut, how long it was.
pub fn quote(value: &str) -> String {
    let total = value.chars().count();
    if total <= MAX_QUOTED_CHARS {
        format!("{value:?}")
    } else {
        let prefix: String = value.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{prefix:?}… ({total} characters)")
    }
}

/// Cuts `errors` to the first [`MAX_FIELD_ERRORS`], adding one entry that
/// counts the rest.
pub fn capped(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    if errors.len() > MAX_FIELD_ERRORS {
        let rest = errors.len() - MAX_FIELD_ERRORS;
        errors.truncate(MAX_FIELD_ERRORS);
        errors.push(FieldError::new(
            MORE_ERRORS_FIELD,
            format!("and {rest} more field errors"),
        ));
    }
    errors
}

/// Renders a list of field errors on one line, for reports and logs; at
/// most [`MAX_FIELD_ERRORS`] of them, then a count of the rest.
pub fn join(errors: &[FieldError]) -> String {
    let mut line = errors
        .iter()
        .take(MAX_FIELD_ERRORS)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > MAX_FIELD_ERRORS {
        line.push_str(&format!(
            "; and {} more field errors",
            errors.len() - MAX_FIELD_ERRORS
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_value_is_quoted_whole_and_escaped() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("a\u{1b}[31m"), "\"a\\u{1b}[31m\"");
        let at_bound = "x".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quote(&at_bound), format!("\"{at_bound}\""));
    }

    #[test]
    fn a_long_value_is_cut_to_a_prefix_with_its_length() {
        let long = "y".repeat(300_000);
        let q = quote(&long);
        assert!(q.len() < 64, "{q}");
        assert!(q.ends_with("… (300000 characters)"), "{q}");
        let one_past = "z".repeat(MAX_QUOTED_CHARS + 1);
        assert!(quote(&one_past).contains(&format!("({} characters)", MAX_QUOTED_CHARS + 1)));
    }

    #[test]
    fn error_lists_are_capped_with_a_count() {
        let make = |n: usize| -> Vec<FieldError> {
            (0..n)
                .map(|i| FieldError::new(format!("f{i}"), "bad"))
                .collect()
        };
        assert_eq!(capped(make(MAX_FIELD_ERRORS)).len(), MAX_FIELD_ERRORS);
        let cut = capped(make(MAX_FIELD_ERRORS + 5));
        assert_eq!(cut.len(), MAX_FIELD_ERRORS + 1);
        assert_eq!(cut[MAX_FIELD_ERRORS].field, MORE_ERRORS_FIELD);
        assert_eq!(cut[MAX_FIELD_ERRORS].reason, "and 5 more field errors");
        let line = join(&make(1000));
        assert!(line.ends_with("; and 980 more field errors"), "{line}");
        assert_eq!(line.matches("bad").count(), MAX_FIELD_ERRORS);
    }
}
