//! Cross-site request forgery: every form carries the session's token in a
//! hidden `csrf` field, and every POST is refused unless it matches
//! (compared in constant time). Before sign-in, the sign-in form's token is
//! a double-submit cookie. `SameSite=Strict` cookies are the first line;
//! this is the second.

use subtle::ConstantTimeEq;

/// The hidden field's name.
pub const FIELD: &str = "csrf";

/// The pre-sign-in cookie holding the sign-in form's token.
pub fn pre_cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-kith-signin"
    } else {
        "kith-signin"
    }
}

/// Whether a posted token matches the expected one.
pub fn matches(expected: &str, posted: Option<&str>) -> bool {
    match posted {
        Some(p) if !expected.is_empty() => expected.as_bytes().ct_eq(p.as_bytes()).into(),
        _ => false,
    }
}

/// The posted form's `csrf` field, if any (the rest of the form is ignored).
pub fn posted_token(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_wrong_or_empty_token_does_not_match() {
        assert!(matches("abc", Some("abc")));
        assert!(!matches("abc", Some("abd")));
        assert!(!matches("abc", Some("")));
        assert!(!matches("abc", None));
        assert!(!matches("", Some("")));
        assert_eq!(
            posted_token(b"nhs_number=1&csrf=t%2B1&purpose=x").as_deref(),
            Some("t+1")
        );
        assert_eq!(posted_token(b"nhs_number=1"), None);
    }
}
