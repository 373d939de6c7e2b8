//! From a verified ID token's claims to the acting user the console sends
//! to the hub, following `[console.oidc.claims]` and `role_map`.
//!
//! The role comes only from the provider's claim through the configured
//! map: a user whose claim is missing, or whose values map to no Kith role,
//! gets no session; nor does one whose values map to two different roles
//! (nobody picks their own role, and the console does not guess). Every
//! value is bounded before it reaches the session table or a log line.

use serde_json::{Map, Value};

use super::settings::OidcSection;
use crate::console::StaffIdentity;

/// Longest user id taken from a token.
pub const MAX_USER_ID: usize = 128;
/// Longest display name or team taken from a token (longer is cut).
pub const MAX_TEXT: usize = 120;
/// Most role-claim values looked at.
pub const MAX_ROLE_VALUES: usize = 200;

/// Why a verified sign-in gets no session. Names claims, never values
/// (the values may be personal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the ID token has no usable `{claim}` claim (the user id)")]
    NoUserId { claim: String },
    #[error("the ID token has no `{claim}` claim (the role)")]
    NoRoleClaim { claim: String, user_id: String },
    #[error("no value of the `{claim}` claim is mapped to a Kith role")]
    NoMappedRole { claim: String, user_id: String },
    #[error("values of the `{claim}` claim map to more than one Kith role")]
    SeveralRoles { claim: String, user_id: String },
}

impl Refusal {
    /// The claim the refusal is about.
    pub fn claim(&self) -> &str {
        match self {
            Refusal::NoUserId { claim }
            | Refusal::NoRoleClaim { claim, .. }
            | Refusal::NoMappedRole { claim, .. }
            | Refusal::SeveralRoles { claim, .. } => claim,
        }
    }

    /// The user refused, when the token named one (for the agent's log:
    /// the user id alone).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Refusal::NoUserId { .. } => None,
            Refusal::NoRoleClaim { user_id, .. }
            | Refusal::NoMappedRole { user_id, .. }
            | Refusal::SeveralRoles { user_id, .. } => Some(user_id),
        }
    }
}

/// A claim as text (a string, or a number as written), cleaned; `None`
/// when absent, of another type, or empty once cleaned.
fn text_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    let raw = match claims.get(name)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(clean(&raw)).filter(|s| !s.is_empty())
}

/// Drops control characters and cuts to [`MAX_TEXT`] characters.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect::<String>()
        .trim()
        .to_string()
}

/// The role claim's values: a string (also space-separated, as some
/// providers send several roles in one string) or an array of strings.
fn role_values(claims: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    match claims.get(name)? {
        Value::String(s) => Some(s.split_whitespace().map(str::to_string).collect()),
        Value::Array(items) => Some(
            items
                .iter()
                .take(MAX_ROLE_VALUES)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// The acting user for a verified token's `claims`, or why there is none.
pub fn map_claims(
    section: &OidcSection,
    claims: &Map<String, Value>,
) -> Result<StaffIdentity, Refusal> {
    let mapping = &section.claims;
    let user_id = match claims.get(&mapping.user_id) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if user_id.is_empty()
        || user_id.chars().count() > MAX_USER_ID
        || user_id.chars().any(char::is_control)
    {
        return Err(Refusal::NoUserId {
            claim: mapping.user_id.clone(),
        });
    }
    let values = role_values(claims, &mapping.role).ok_or_else(|| Refusal::NoRoleClaim {
        claim: mapping.role.clone(),
        user_id: user_id.clone(),
    })?;
    let mut roles: Vec<&str> = values
        .iter()
        .filter_map(|v| section.role_map.get(v).map(String::as_str))
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let role = match roles.as_slice() {
        [] => {
            return Err(Refusal::NoMappedRole {
                claim: mapping.role.clone(),
                user_id,
            });
        }
        [one] => one.to_string(),
        _ => {
            return Err(Refusal::SeveralRoles {
                claim: mapping.role.clone(),
                user_id,
            });
        }
    };
    let display_name = text_claim(claims, &mapping.display_name).unwrap_or_else(|| user_id.clone());
    let team = mapping
        .team
        .as_deref()
        .and_then(|t| text_claim(claims, t))
        .unwrap_or_default();
    Ok(StaffIdentity {
        user_id,
        display_name,
        team,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn section() -> OidcSection {
        toml::from_str(
            r#"
            issuer = "https://login.example.org"
            client_id = "kith"
            redirect_url = "https://console.example.org/oidc/callback"
            [claims]
            user_id = "preferred_username"
            role = "groups"
            team = "department"
            [role_map]
            "kith-social-workers" = "social_worker"
            "kith-sw-leads" = "social_worker"
            "kith-auditors" = "auditor"
            "#,
        )
        .unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_map_to_the_acting_user_from_a_string_or_an_array() {
        let s = section();
        let staff = map_claims(
            &s,
            &obj(json!({
                "sub": "x1", "preferred_username": "amara.okafor", "name": "Amara Okafor",
                "department": "MASH", "groups": ["all-staff", "kith-social-workers", "kith-sw-leads"]
            })),
        )
        .unwrap();
        assert_eq!(staff.user_id, "amara.okafor");
        assert_eq!(staff.display_name, "Amara Okafor");
        assert_eq!(staff.team, "MASH");
        assert_eq!(staff.role, "social_worker");
        let staff = map_claims(
            &s,
            &obj(json!({"preferred_username": "dpo", "groups": "staff kith-auditors"})),
        )
        .unwrap();
        assert_eq!(staff.role, "auditor");
        // No name claim: the user id stands in; no team claim: no team.
        assert_eq!(staff.display_name, "dpo");
        assert_eq!(staff.team, "");
    }

    #[test]
    fn no_mapped_role_a_missing_claim_or_two_roles_are_refused_naming_the_claim() {
        let s = section();
        let e = map_claims(
            &s,
            &obj(json!({"preferred_username": "cook", "groups": ["canteen"]})),
        )
        .unwrap_err();
        assert_eq!(
            e,
            Refusal::NoMappedRole {
                claim: "groups".into(),
                user_id: "cook".into()
            }
        );
        assert_eq!(e.user_id(), Some("cook"));
        assert!(!e.to_string().contains("cook"), "{e}");
        let e = map_claims(&s, &obj(json!({"preferred_username": "cook"}))).unwrap_err();
        assert!(
            matches!(e, Refusal::NoRoleClaim { ref claim, .. } if claim == "groups"),
            "{e:?}"
        );
        let e = map_claims(&s, &obj(json!({"preferred_username": "c", "groups": 7}))).unwrap_err();
        assert_eq!(e.claim(), "groups");
        let e = map_claims(
            &s,
            &obj(json!({"preferred_username": "both", "groups": ["kith-auditors", "kith-social-workers"]})),
        )
        .unwrap_err();
        assert!(
            matches!(e, Refusal::SeveralRoles { ref claim, .. } if claim == "groups"),
            "{e:?}"
        );
        let e = map_claims(&s, &obj(json!({"sub": "x", "groups": ["kith-auditors"]}))).unwrap_err();
        assert_eq!(
            e,
            Refusal::NoUserId {
                claim: "preferred_username".into()
            }
        );
        assert_eq!(e.user_id(), None);
    }

    #[test]
    fn values_are_bounded_and_cleaned() {
        let s = section();
        let long = "a".repeat(MAX_USER_ID + 1);
        let e = map_claims(
            &s,
            &obj(json!({"preferred_username": long, "groups": ["kith-auditors"]})),
        )
        .unwrap_err();
        assert_eq!(e.claim(), "preferred_username");
        let staff = map_claims(
            &s,
            &obj(json!({
                "preferred_username": "ok", "groups": ["kith-auditors"],
                "name": format!("Jo\u{0007} {}", "b".repeat(500)), "department": "\n"
            })),
        )
        .unwrap();
        assert_eq!(staff.display_name.chars().count(), MAX_TEXT);
        assert!(!staff.display_name.contains('\u{0007}'));
        assert_eq!(staff.team, "");
    }
}
