//! A case worker's query: one contract, checked by the same code wherever
//! a query is made or received.
//!
//! The agent's command line, the hub's gRPC service and the staff console
//! all build a [`QueryRequest`] (every field as given, possibly wrong) and
//! call [`QueryRequest::check`], which either returns a [`CheckedQuery`]
//! (typed: a purpose, a [`SubjectSearch`], a [`BreakGlassClaim`] whose
//! reason is a [`BreakGlassReason`]) or every failing field at once. So a
//! case worker is told of a bad field by their own agent, in the same words
//! the hub would use, and the hub still never trusts an agent to have
//! checked.

use std::ops::RangeInclusive;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::acting_user::{ActingUser, check_printable};
use crate::codes::{BreakGlassReason, Purpose};
use crate::error::{FieldError, capped, quote};
use crate::nhs_number::NhsNumber;
use crate::record::{Demographics, LocalId};
use crate::validate::{MAX_CODE_LEN, MAX_ID_LEN, check_identifier, is_uk_postcode};

/// Shortest and longest break-glass justification, in characters.
pub const JUSTIFICATION_CHARS: RangeInclusive<usize> = 10..=1000;

/// Longest given or family name in a demographic search.
pub const MAX_SEARCH_NAME_CHARS: usize = 100;

/// Longest candidate id a confirmation may carry (`custodian/record_id`).
pub const MAX_CANDIDATE_ID_CHARS: usize = MAX_CODE_LEN + 1 + MAX_ID_LEN;

/// A query as it arrives: every field as given. `purpose` and `nhs_number`
/// are `None` when left out; `malformed` holds what could not even be
/// parsed into these types (a purpose code out of range, a date that is not
/// a date), reported with everything else.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryRequest {
    pub user: ActingUser,
    pub purpose: Option<Purpose>,
    pub nhs_number: Option<NhsNumber>,
    /// Used when there is no NHS number.
    pub demographics: Option<Demographics>,
    /// One of the caller's own local identifiers for the person.
    pub local_id: Option<LocalId>,
    /// A candidate id from an earlier demographic answer, confirmed.
    pub confirm_candidate: Option<String>,
    /// A claim of emergency access, as given.
    pub break_glass: Option<BreakGlassRequest>,
    pub malformed: Vec<FieldError>,
}

/// A break-glass claim as given: the reason code unparsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakGlassRequest {
    pub reason_code: String,
    pub justification: String,
}

/// A checked claim of emergency access. Stored and audited as
/// `{"reason_code": …, "justification": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassClaim {
    #[serde(rename = "reason_code")]
    pub reason: BreakGlassReason,
    pub justification: String,
}

/// What a query says about its subject.
#[derive(Debug, Clone, PartialEq)]
pub enum SubjectSearch {
    NhsNumber(NhsNumber),
    /// No NHS number: demographics, with a local identifier of the caller's
    /// own if the case worker has one.
    Demographics {
        demographics: Demographics,
        /// The block key: required, so held apart from the optional field
        /// of [`Demographics`] and never unwrapped.
        date_of_birth: NaiveDate,
        local_id: Option<LocalId>,
    },
}

/// A query that passed [`QueryRequest::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedQuery {
    pub user: ActingUser,
    pub purpose: Purpose,
    pub subject: SubjectSearch,
    pub confirm_candidate: Option<String>,
    pub break_glass: Option<BreakGlassClaim>,
}

impl QueryRequest {
    /// Checks the whole request as of `today`; `Err` lists every failing
    /// field (at most [`MAX_FIELD_ERRORS`](crate::error::MAX_FIELD_ERRORS)
    /// and a count), under the wire's field names (`acting_user.role`,
    /// `subject.demographics.postcode`, `break_glass.justification`, …).
    pub fn check(&self, today: NaiveDate) -> Result<CheckedQuery, Vec<FieldError>> {
        let mut errors = self.malformed.clone();
        self.user.check("acting_user", &mut errors);
        if self.purpose.is_none() && !errors.iter().any(|e| e.field == "purpose") {
            errors.push(FieldError::new(
                "purpose",
                format!("is required: one of {}", Purpose::expected()),
            ));
        }
        let subject = self.subject(today, &mut errors);
        if let Some(id) = &self.confirm_candidate {
            check_printable("confirm_candidate", id, MAX_CANDIDATE_ID_CHARS, &mut errors);
            if matches!(subject, Some(SubjectSearch::NhsNumber(_))) {
                errors.push(FieldError::new(
                    "confirm_candidate",
                    "confirms a candidate of a demographic query; this query gives an NHS number",
                ));
            }
        }
        let break_glass = self.break_glass.as_ref().and_then(|b| b.check(&mut errors));
        match (self.purpose, subject) {
            (Some(purpose), Some(subject)) if errors.is_empty() => Ok(CheckedQuery {
                user: self.user.clone(),
                purpose,
                subject,
                confirm_candidate: self.confirm_candidate.clone(),
                break_glass,
            }),
            _ => Err(capped(errors)),
        }
    }

    fn subject(&self, today: NaiveDate, errors: &mut Vec<FieldError>) -> Option<SubjectSearch> {
        if let Some(n) = self.nhs_number {
            if self.demographics.is_some() {
                errors.push(FieldError::new(
                    "subject",
                    "give an NHS number or demographics, not both",
                ));
                return None;
            }
            return Some(SubjectSearch::NhsNumber(n));
        }
        let Some(d) = &self.demographics else {
            if !errors.iter().any(|e| e.field.starts_with("subject.")) {
                errors.push(FieldError::new(
                    "subject",
                    "give an NHS number, or demographics (given_name, family_name, date_of_birth; postcode if known)",
                ));
            }
            // Otherwise the NHS number given was not one: that error says it all.
            return None;
        };
        let before = errors.len();
        for (field, value) in [
            ("subject.demographics.given_name", &d.given_name),
            ("subject.demographics.family_name", &d.family_name),
        ] {
            if value.trim().is_empty() {
                errors.push(FieldError::new(
                    field,
                    "is required when there is no NHS number",
                ));
            } else {
                check_printable(field, value, MAX_SEARCH_NAME_CHARS, errors);
            }
        }
        match d.date_of_birth {
            None if !errors
                .iter()
                .any(|e| e.field == "subject.demographics.date_of_birth") =>
            {
                errors.push(FieldError::new(
                    "subject.demographics.date_of_birth",
                    "is required when there is no NHS number",
                ));
            }
            Some(born) if born > today => errors.push(FieldError::new(
                "subject.demographics.date_of_birth",
                format!("{born} is in the future"),
            )),
            _ => {}
        }
        if !d.postcode.is_empty() && !is_uk_postcode(&d.postcode) {
            errors.push(FieldError::new(
                "subject.demographics.postcode",
                format!("{} is not a UK postcode", quote(&d.postcode)),
            ));
        }
        if let Some(id) = &self.local_id {
            check_identifier(
                "subject.local_ids[0].system",
                &id.system,
                MAX_CODE_LEN,
                errors,
            );
            check_identifier("subject.local_ids[0].value", &id.value, MAX_ID_LEN, errors);
        }
        if errors.len() != before {
            return None;
        }
        Some(SubjectSearch::Demographics {
            demographics: d.clone(),
            date_of_birth: d.date_of_birth?,
            local_id: self.local_id.clone(),
        })
    }
}

impl BreakGlassRequest {
    /// The claim, or field-level errors under `break_glass.`. The bounds
    /// apply to the values as they are kept and audited (callers trim
    /// them), so padding cannot pass for a justification.
    pub fn check(&self, errors: &mut Vec<FieldError>) -> Option<BreakGlassClaim> {
        let reason = match self.reason_code.parse::<BreakGlassReason>() {
            Ok(r) if r.as_str() == self.reason_code => Some(r),
            _ => {
                errors.push(FieldError::new(
                    "break_glass.reason_code",
                    format!(
                        "unknown reason code {}; expected one of: {}",
                        quote(&self.reason_code),
                        BreakGlassReason::expected()
                    ),
                ));
                None
            }
        };
        let chars = if self.justification.trim().is_empty() {
            0
        } else {
            self.justification.chars().count()
        };
        let before = errors.len();
        if !JUSTIFICATION_CHARS.contains(&chars) {
            errors.push(FieldError::new(
                "break_glass.justification",
                format!(
                    "must say why, in {} to {} characters",
                    JUSTIFICATION_CHARS.start(),
                    JUSTIFICATION_CHARS.end()
                ),
            ));
        } else if self
            .justification
            .chars()
            .any(|c| c.is_control() && c != '\n')
        {
            errors.push(FieldError::new(
                "break_glass.justification",
                "contains control characters",
            ));
        }
        Some(BreakGlassClaim {
            reason: reason?,
            justification: self.justification.clone(),
        })
        .filter(|_| errors.len() == before)
    }
}

impl SubjectSearch {
    /// How the subject is named in the audit log and in break-glass
    /// windows: the NHS number's digits, or the normalised demographics.
    pub fn audit_key(&self) -> String {
        match self {
            Self::NhsNumber(n) => n.as_digits(),
            Self::Demographics {
                demographics: d,
                date_of_birth,
                ..
            } => format!(
                "demographics:{}|{}|{}|{}",
                crate::matching::normalise_name(&d.family_name),
                crate::matching::normalise_name(&d.given_name),
                date_of_birth,
                crate::matching::normalise_postcode(&d.postcode),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }

    fn user() -> ActingUser {
        ActingUser {
            user_id: "u1".into(),
            role: "social_worker".into(),
            ..ActingUser::default()
        }
    }

    fn by_nhs() -> QueryRequest {
        QueryRequest {
            user: user(),
            purpose: Some(Purpose::Safeguarding),
            nhs_number: Some("9434765919".parse().unwrap()),
            ..QueryRequest::default()
        }
    }

    fn by_demographics() -> QueryRequest {
        QueryRequest {
            nhs_number: None,
            demographics: Some(Demographics {
                given_name: "Amara".into(),
                family_name: "Davies".into(),
                date_of_birth: NaiveDate::from_ymd_opt(1958, 11, 2),
                postcode: "M16 6TR".into(),
            }),
            ..by_nhs()
        }
    }

    fn fields(q: &QueryRequest) -> Vec<String> {
        q.check(today())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_good_query_checks_into_typed_values() {
        let checked = by_nhs().check(today()).unwrap();
        assert_eq!(checked.purpose, Purpose::Safeguarding);
        assert!(matches!(checked.subject, SubjectSearch::NhsNumber(_)));
        let checked = by_demographics().check(today()).unwrap();
        let SubjectSearch::Demographics { date_of_birth, .. } = checked.subject else {
            panic!("a demographic search");
        };
        assert_eq!(date_of_birth, NaiveDate::from_ymd_opt(1958, 11, 2).unwrap());
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let mut q = by_demographics();
        q.user.role = String::new();
        q.purpose = None;
        if let Some(d) = q.demographics.as_mut() {
            d.given_name = " ".into();
            d.postcode = "nowhere".into();
        }
        q.break_glass = Some(BreakGlassRequest {
            reason_code: "because".into(),
            justification: "short".into(),
        });
        assert_eq!(
            fields(&q),
            [
                "acting_user.role",
                "purpose",
                "subject.demographics.given_name",
                "subject.demographics.postcode",
                "break_glass.reason_code",
                "break_glass.justification"
            ]
        );
    }

    #[test]
    fn a_subject_is_required_and_only_one_kind_of_it() {
        let mut q = by_nhs();
        q.nhs_number = None;
        assert_eq!(fields(&q), ["subject"]);
        let mut q = by_demographics();
        q.nhs_number = by_nhs().nhs_number;
        assert_eq!(fields(&q), ["subject"]);
        let mut q = by_demographics();
        q.demographics.as_mut().unwrap().date_of_birth = NaiveDate::from_ymd_opt(2030, 1, 1);
        assert_eq!(fields(&q), ["subject.demographics.date_of_birth"]);
        let mut q = by_demographics();
        q.demographics.as_mut().unwrap().date_of_birth = None;
        assert_eq!(fields(&q), ["subject.demographics.date_of_birth"]);
    }

    #[test]
    fn a_search_without_an_nhs_number_needs_names_and_a_date_of_birth() {
        // (Moved from the hub's subject.rs with its assertions.)
        let mut q = by_nhs();
        q.nhs_number = None;
        let errors = q.check(today()).unwrap_err();
        assert_eq!(errors[0].field, "subject");

        let mut q = by_nhs();
        q.nhs_number = None;
        q.demographics = Some(Demographics {
            given_name: String::new(),
            family_name: "O'Brien".into(),
            date_of_birth: None,
            postcode: "not a postcode".into(),
        });
        let errors = q.check(today()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "subject.demographics.given_name",
                "subject.demographics.date_of_birth",
                "subject.demographics.postcode"
            ]
        );
    }

    #[test]
    fn a_confirmation_belongs_to_a_demographic_query_and_is_bounded() {
        let mut q = by_nhs();
        q.confirm_candidate = Some("E08000003/cpp-1".into());
        assert_eq!(fields(&q), ["confirm_candidate"]);
        let mut q = by_demographics();
        q.confirm_candidate = Some("c".repeat(MAX_CANDIDATE_ID_CHARS));
        assert!(q.check(today()).is_ok());
        q.confirm_candidate = Some("c".repeat(MAX_CANDIDATE_ID_CHARS + 1));
        assert_eq!(fields(&q), ["confirm_candidate"]);
    }

    #[test]
    fn break_glass_bounds_count_the_kept_value_at_and_past_the_bound() {
        let claim = |justification: String| {
            let mut q = by_nhs();
            q.break_glass = Some(BreakGlassRequest {
                reason_code: "life_threatening".into(),
                justification,
            });
            q.check(today())
        };
        let at_min = "j".repeat(*JUSTIFICATION_CHARS.start());
        let checked = claim(at_min.clone()).unwrap();
        assert_eq!(
            checked.break_glass.unwrap().reason,
            BreakGlassReason::LifeThreatening
        );
        assert!(claim("j".repeat(*JUSTIFICATION_CHARS.start() - 1)).is_err());
        assert!(claim("j".repeat(*JUSTIFICATION_CHARS.end())).is_ok());
        assert!(claim("j".repeat(*JUSTIFICATION_CHARS.end() + 1)).is_err());
        // Ten characters and a million spaces is not ten characters.
        assert!(claim(format!("{at_min}{}", " ".repeat(1_000_000))).is_err());
        assert!(claim(" ".repeat(20)).is_err(), "blank is no justification");
    }

    #[test]
    fn a_reason_code_must_be_spelt_exactly() {
        let mut q = by_nhs();
        q.break_glass = Some(BreakGlassRequest {
            reason_code: " life_threatening ".into(),
            justification: "a child is not breathing".into(),
        });
        assert_eq!(fields(&q), ["break_glass.reason_code"]);
    }

    #[test]
    fn the_claim_keeps_its_stored_spelling() {
        let claim = BreakGlassClaim {
            reason: BreakGlassReason::PublicSafety,
            justification: "armed person at the address".into(),
        };
        let json = serde_json::to_string(&claim).unwrap();
        assert_eq!(
            json,
            r#"{"reason_code":"public_safety","justification":"armed person at the address"}"#
        );
        assert_eq!(
            serde_json::from_str::<BreakGlassClaim>(&json).unwrap(),
            claim
        );
    }
}
