//! A subscription request: one contract, checked by the same code wherever a
//! subscription is asked for or received.
//!
//! An authority involved with a person subscribes to hear when another
//! authority starts, changes, ends or withdraws a relationship with them
//! (issue #17). The agent's command line and drop folder build a
//! [`SubscribeRequest`] (every field as given) and call
//! [`SubscribeRequest::check`]; the hub calls it again, with its own limits
//! (default and maximum duration) and its policy set's categories. Whether
//! the authority may subscribe at all is the policy set's decision
//! (`subscribe`), not this module's.

use chrono::{Duration, NaiveDate};

use crate::acting_user::ActingUser;
use crate::codes::{Purpose, RelationshipType};
use crate::error::{FieldError, capped, quote};
use crate::nhs_number::NhsNumber;
use crate::validate::{MAX_CODE_LEN, check_identifier};

/// Most relationship types, and most categories, one subscription names.
pub const MAX_SUBSCRIPTION_CODES: usize = 20;

/// Most current subscriptions one authority holds for one person.
pub const MAX_SUBSCRIPTIONS_PER_SUBJECT: usize = 20;

/// A subscription's default and maximum duration, in days (the hub's
/// `[subscriptions]` config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionLimits {
    pub default_days: u32,
    pub max_days: u32,
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        Self {
            default_days: 90,
            max_days: 365,
        }
    }
}

/// A subscription as asked for: every field as given. `malformed` holds what
/// could not even be parsed (a code out of range on the wire).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeRequest {
    pub user: ActingUser,
    pub nhs_number: String,
    pub relationship_types: Vec<RelationshipType>,
    pub categories: Vec<String>,
    pub purpose: Option<Purpose>,
    /// YYYY-MM-DD as given; `None` (or empty) for the default duration.
    pub ends_on: Option<String>,
    pub malformed: Vec<FieldError>,
}

/// A request that passed [`SubscribeRequest::check`]: types and categories
/// sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSubscribe {
    pub user: ActingUser,
    pub nhs_number: NhsNumber,
    pub relationship_types: Vec<RelationshipType>,
    pub categories: Vec<String>,
    pub purpose: Purpose,
    /// The last day the subscription is current.
    pub ends_on: NaiveDate,
}

impl SubscribeRequest {
    /// Checks the whole request as of `today`. `limits` sets the default end
    /// and refuses one past the maximum; `is_category` says whether a
    /// category is known (the hub passes its policy set's; the agent, which
    /// does not know them, `None`: only their spelling is checked). `Err`
    /// lists every failing field, under the wire's names.
    pub fn check(
        &self,
        today: NaiveDate,
        limits: SubscriptionLimits,
        is_category: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<CheckedSubscribe, Vec<FieldError>> {
        let mut errors = self.malformed.clone();
        let user = self.user.clone().trimmed();
        user.check("acting_user", &mut errors);
        let nhs_number = match self.nhs_number.trim() {
            "" => {
                errors.push(FieldError::new("nhs_number", "is required"));
                None
            }
            text => match text.parse::<NhsNumber>() {
                Ok(n) => Some(n),
                Err(e) => {
                    errors.push(FieldError::new("nhs_number", e.to_string()));
                    None
                }
            },
        };
        if self.purpose.is_none() && !errors.iter().any(|e| e.field == "purpose") {
            errors.push(FieldError::new(
                "purpose",
                format!("is required: one of {}", Purpose::expected()),
            ));
        }
        let mut types = self.relationship_types.clone();
        types.sort_by_key(|t| t.as_str());
        types.dedup();
        if types.len() > MAX_SUBSCRIPTION_CODES {
            errors.push(FieldError::new(
                "relationship_types",
                format!(
                    "{} types; at most {MAX_SUBSCRIPTION_CODES}",
                    self.relationship_types.len()
                ),
            ));
        }
        let mut categories: Vec<String> = Vec::new();
        if self.categories.len() > MAX_SUBSCRIPTION_CODES {
            errors.push(FieldError::new(
                "categories",
                format!(
                    "{} categories; at most {MAX_SUBSCRIPTION_CODES}",
                    self.categories.len()
                ),
            ));
        } else {
            for (i, c) in self.categories.iter().enumerate() {
                let field = format!("categories[{i}]");
                let c = c.trim();
                let before = errors.len();
                check_identifier(&field, c, MAX_CODE_LEN, &mut errors);
                if errors.len() == before {
                    if is_category.is_some_and(|known| !known(c)) {
                        errors.push(FieldError::new(
                            field,
                            format!("unknown category {}", quote(c)),
                        ));
                    } else {
                        categories.push(c.to_string());
                    }
                }
            }
        }
        categories.sort();
        categories.dedup();
        if self.relationship_types.is_empty()
            && self.categories.is_empty()
            && !errors
                .iter()
                .any(|e| e.field.starts_with("relationship_types"))
        {
            errors.push(FieldError::new(
                "relationship_types",
                "name at least one relationship type or category to hear of",
            ));
        }
        let latest = today + Duration::days(i64::from(limits.max_days));
        let ends_on = match self.ends_on.as_deref().map(str::trim) {
            None | Some("") => Some(today + Duration::days(i64::from(limits.default_days))),
            Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Err(_) => {
                    errors.push(FieldError::new(
                        "ends_on",
                        format!("{} is not a date (YYYY-MM-DD)", quote(text)),
                    ));
                    None
                }
                Ok(d) if d <= today => {
                    errors.push(FieldError::new(
                        "ends_on",
                        format!("{d} is not after today ({today})"),
                    ));
                    None
                }
                Ok(d) if d > latest => {
                    errors.push(FieldError::new(
                        "ends_on",
                        format!(
                            "{d} is past the longest subscription this hub allows ({} days: {latest} at the latest)",
                            limits.max_days
                        ),
                    ));
                    None
                }
                Ok(d) => Some(d),
            },
        };
        match (nhs_number, self.purpose, ends_on) {
            (Some(nhs_number), Some(purpose), Some(ends_on)) if errors.is_empty() => {
                Ok(CheckedSubscribe {
                    user,
                    nhs_number,
                    relationship_types: types,
                    categories,
                    purpose,
                    ends_on,
                })
            }
            _ => Err(capped(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
    }

    fn good() -> SubscribeRequest {
        SubscribeRequest {
            user: ActingUser {
                user_id: "ed-1".into(),
                role: "ed_clinician".into(),
                ..Default::default()
            },
            nhs_number: "9434765919".into(),
            relationship_types: vec![
                RelationshipType::LookedAfterChild,
                RelationshipType::ChildProtectionPlan,
                RelationshipType::ChildProtectionPlan,
            ],
            categories: vec![],
            purpose: Some(Purpose::DirectCare),
            ends_on: None,
            malformed: vec![],
        }
    }

    fn fields(r: Result<CheckedSubscribe, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_good_request_gets_the_default_end_and_sorted_types() {
        let c = good()
            .check(today(), SubscriptionLimits::default(), None)
            .unwrap();
        assert_eq!(c.ends_on, NaiveDate::from_ymd_opt(2026, 8, 30).unwrap());
        assert_eq!(
            c.relationship_types,
            vec![
                RelationshipType::ChildProtectionPlan,
                RelationshipType::LookedAfterChild
            ]
        );
    }

    #[test]
    fn an_end_past_the_maximum_or_not_after_today_is_refused() {
        let limits = SubscriptionLimits {
            default_days: 10,
            max_days: 30,
        };
        let mut r = good();
        r.ends_on = Some("2026-07-01".into());
        assert!(
            r.check(today(), limits, None).is_ok(),
            "the last day allowed"
        );
        r.ends_on = Some("2026-07-02".into());
        assert_eq!(fields(r.check(today(), limits, None)), ["ends_on"]);
        r.ends_on = Some("2026-06-01".into());
        assert_eq!(fields(r.check(today(), limits, None)), ["ends_on"]);
        r.ends_on = Some("next week".into());
        assert_eq!(fields(r.check(today(), limits, None)), ["ends_on"]);
    }

    #[test]
    fn unknown_categories_missing_purpose_and_bad_numbers_are_each_named() {
        let mut r = good();
        r.relationship_types.clear();
        r.categories = vec!["children_safeguarding".into(), "astrology".into()];
        r.purpose = None;
        r.nhs_number = "9434765918".into();
        let known = |c: &str| c == "children_safeguarding";
        let got = fields(r.check(today(), SubscriptionLimits::default(), Some(&known)));
        assert_eq!(got, ["nhs_number", "purpose", "categories[1]"]);
    }

    #[test]
    fn nothing_to_hear_of_and_too_many_codes_are_refused() {
        let mut r = good();
        r.relationship_types.clear();
        assert_eq!(
            fields(r.check(today(), SubscriptionLimits::default(), None)),
            ["relationship_types"]
        );
        r.categories = (0..21).map(|i| format!("c{i}")).collect();
        assert_eq!(
            fields(r.check(today(), SubscriptionLimits::default(), None)),
            ["categories"]
        );
    }
}
