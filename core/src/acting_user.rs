//! The acting user: which of its staff an authority says is acting, in what
//! role and team.
//!
//! The authority is accountable for this assertion (the certificate proves
//! only the authority), but the hub still bounds what it will repeat: every
//! field is trimmed, and the bound applies to the trimmed value, which is
//! also what is stored and audited. A display name is shown to other
//! authorities' staff (access notifications), so control characters are
//! refused, not merely escaped at the far end.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::validate::{MAX_CODE_LEN, check_identifier};

/// Longest user id, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;
/// Longest display name or team, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The acting user, as the calling authority asserts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActingUser {
    pub user_id: String,
    pub display_name: String,
    pub role: String,
    pub team: String,
}

impl ActingUser {
    /// The same user with every field trimmed: the form that is checked,
    /// stored and audited.
    pub fn trimmed(self) -> Self {
        let trim = |s: String| {
            let t = s.trim();
            if t.len() == s.len() { s } else { t.to_string() }
        };
        Self {
            user_id: trim(self.user_id),
            display_name: trim(self.display_name),
            role: trim(self.role),
            team: trim(self.team),
        }
    }

    /// Field-level errors under `prefix` (`acting_user`): a user id and a
    /// role are required; every field is bounded and printable. Checks the
    /// values as they are: call on a [`trimmed`](Self::trimmed) user.
    pub fn check(&self, prefix: &str, errors: &mut Vec<FieldError>) {
        let field = |name: &str| format!("{prefix}.{name}");
        if self.user_id.trim().is_empty() {
            errors.push(FieldError::new(field("user_id"), "is required"));
        } else {
            check_printable(&field("user_id"), &self.user_id, MAX_USER_ID_CHARS, errors);
        }
        if self.role.trim().is_empty() {
            errors.push(FieldError::new(field("role"), "is required"));
        } else {
            check_identifier(&field("role"), &self.role, MAX_CODE_LEN, errors);
        }
        check_printable(
            &field("display_name"),
            &self.display_name,
            MAX_NAME_CHARS,
            errors,
        );
        check_printable(&field("team"), &self.team, MAX_NAME_CHARS, errors);
    }
}

/// At most `max` characters, none of them a control character or a
/// bidirectional-text override (which can make a terminal or page show
/// text other than what is stored).
pub fn check_printable(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) {
    let chars = value.chars().count();
    if chars > max {
        errors.push(FieldError::new(
            field,
            format!("is {chars} characters; at most {max}"),
        ));
    } else if value.chars().any(is_unprintable) {
        errors.push(FieldError::new(
            field,
            "contains control or text-direction characters",
        ));
    }
}

/// Control characters and the Unicode bidirectional embeddings, overrides
/// and isolates (U+202A–U+202E, U+2066–U+2069).
pub fn is_unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> ActingUser {
        ActingUser {
            user_id: "jsmith".into(),
            display_name: "J. Smith".into(),
            role: "social_worker".into(),
            team: "Children's Services".into(),
        }
    }

    fn fields(u: &ActingUser) -> Vec<String> {
        let mut errors = Vec::new();
        u.clone().trimmed().check("acting_user", &mut errors);
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_normal_user_passes() {
        assert!(fields(&user()).is_empty());
    }

    #[test]
    fn user_and_role_are_required() {
        let mut u = user();
        u.user_id = "   ".into();
        u.role = String::new();
        assert_eq!(fields(&u), ["acting_user.user_id", "acting_user.role"]);
    }

    #[test]
    fn bounds_apply_to_the_trimmed_value_at_and_past_the_bound() {
        let mut u = user();
        // Ten characters and a million spaces is ten characters once
        // trimmed, and the trimmed value is what is kept.
        u.display_name = format!("J. Smith 1{}", " ".repeat(1_000_000));
        let t = u.clone().trimmed();
        assert_eq!(t.display_name, "J. Smith 1");
        assert!(fields(&u).is_empty());

        u.display_name = "x".repeat(MAX_NAME_CHARS);
        u.team = "y".repeat(MAX_NAME_CHARS + 1);
        u.user_id = "z".repeat(MAX_USER_ID_CHARS + 1);
        assert_eq!(fields(&u), ["acting_user.user_id", "acting_user.team"]);
    }

    #[test]
    fn control_and_direction_characters_are_refused() {
        let mut u = user();
        u.display_name = "J. \u{1b}[31mSmith".into();
        u.team = "team \u{202E}evil".into();
        assert_eq!(fields(&u), ["acting_user.display_name", "acting_user.team"]);
        let mut u = user();
        u.role = "social worker".into();
        assert_eq!(fields(&u), ["acting_user.role"]);
    }
}
