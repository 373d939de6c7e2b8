//! Finding the person a query is about.
//!
//! An NHS number is matched exactly (it only exists with a valid check
//! digit). Without one, the query's demographics are scored against a block
//! of stored records (same date of birth, or day and month swapped, or the
//! same postcode) with the versioned Fellegi–Sunter rules of
//! [`kith_core::matching`]; a local identifier in the query counts only
//! against the caller's own records (it was issued by the caller). Only
//! *certain* matches link automatically. *Possible* matches are offered to
//! the case worker as candidates, shown at summary level at most, until the
//! case worker confirms one by its candidate id (with the same
//! demographics: a candidate can only be confirmed if the same query still
//! offers it). Every link made or offered is written to the query's audit
//! entry with its score and rule version.

use chrono::{Datelike, NaiveDate};
use kith_core::error::quote;
use kith_core::matching::{
    FieldOutcome, MatchBand, MatchField, MatchRules, MatchScore, SubjectMatch, SubjectQuery,
    match_subject, normalise_postcode,
};
use kith_core::validate::{MAX_CODE_LEN, MAX_ID_LEN, check_identifier};
use kith_core::{Demographics, FieldError, LocalId, NhsNumber};

use crate::audit::AuditedMatch;
use crate::error::HubError;
use crate::hub::{Caller, Hub};
use crate::store::StoredRecord;

/// The most records one demographic block may hold; a wider block is cut,
/// in key order, and the answer's notice tells the case worker to narrow
/// the query.
pub const MAX_BLOCK: u32 = 500;

/// What a query says about its subject.
#[derive(Debug, Clone)]
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

impl SubjectSearch {
    /// From the request's parts; errors name the fields.
    pub fn check(
        nhs_number: Option<NhsNumber>,
        demographics: Option<Demographics>,
        local_id: Option<LocalId>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        if let Some(n) = nhs_number {
            return Some(Self::NhsNumber(n));
        }
        let Some(d) = demographics else {
            if errors.iter().any(|e| e.field.starts_with("subject.")) {
                // The NHS number given was not one; that error says it all.
                return None;
            }
            errors.push(FieldError::new(
                "subject",
                "give an NHS number, or demographics (given_name, family_name, date_of_birth; postcode if known)",
            ));
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
            } else if value.chars().count() > 100 || value.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    field,
                    "must be at most 100 printable characters",
                ));
            }
        }
        if d.date_of_birth.is_none()
            && !errors
                .iter()
                .any(|e| e.field == "subject.demographics.date_of_birth")
        {
            errors.push(FieldError::new(
                "subject.demographics.date_of_birth",
                "is required when there is no NHS number",
            ));
        }
        if !d.postcode.is_empty() && !kith_core::validate::is_uk_postcode(&d.postcode) {
            errors.push(FieldError::new(
                "subject.demographics.postcode",
                format!("{} is not a UK postcode", quote(&d.postcode)),
            ));
        }
        if let Some(id) = &local_id {
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
        let date_of_birth = d.date_of_birth?;
        Some(Self::Demographics {
            demographics: d,
            date_of_birth,
            local_id,
        })
    }

    /// How the subject is named in the audit log and in break-glass
    /// windows: the NHS number's digits, or the normalised demographics.
    pub fn audit_key(&self) -> String {
        match self {
            Self::NhsNumber(n) => n.as_digits(),
            Self::Demographics {
                demographics: d, ..
            } => format!(
                "demographics:{}|{}|{}|{}",
                kith_core::matching::normalise_name(&d.family_name),
                kith_core::matching::normalise_name(&d.given_name),
                d.date_of_birth.map(|d| d.to_string()).unwrap_or_default(),
                normalise_postcode(&d.postcode),
            ),
        }
    }
}

/// A possible match offered to the case worker.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// `custodian/record_id`: what the case worker sends back to confirm.
    pub candidate_id: String,
    pub score: MatchScore,
}

impl Candidate {
    /// The fields that agreed (fully or in part) and those that did not.
    pub fn agreement(&self) -> (Vec<&'static str>, Vec<&'static str>) {
        let mut agreed = Vec::new();
        let mut disagreed = Vec::new();
        for f in &self.score.fields {
            let name = field_name(f.field);
            match f.outcome {
                FieldOutcome::Agree | FieldOutcome::Partial(_) => agreed.push(name),
                FieldOutcome::Disagree => disagreed.push(name),
                FieldOutcome::Missing => {}
            }
        }
        (agreed, disagreed)
    }
}

fn field_name(f: MatchField) -> &'static str {
    match f {
        MatchField::FamilyName => "family_name",
        MatchField::GivenName => "given_name",
        MatchField::DateOfBirth => "date_of_birth",
        MatchField::Postcode => "postcode",
    }
}

/// The records a query reaches.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Linked: decided at whatever level policy allows.
    pub linked: Vec<StoredRecord>,
    /// Possible matches, each with its record: summary at most.
    pub possible: Vec<(StoredRecord, Candidate)>,
    /// Every link made or offered, for the audit entry.
    pub matches: Vec<AuditedMatch>,
    /// nhs_number | demographics | confirmed
    pub matched_by: &'static str,
    /// The demographic block reached [`MAX_BLOCK`]: some records were not
    /// compared.
    pub block_cut: bool,
}

fn key_of(r: &StoredRecord) -> String {
    format!("{}/{}", r.record.custodian, r.record.record_id)
}

fn audited(r: &StoredRecord, grade: &str, score: Option<f64>, rules: &str) -> AuditedMatch {
    AuditedMatch {
        custodian: r.record.custodian.clone(),
        record_id: r.record.record_id.clone(),
        grade: grade.to_string(),
        score: score.map_or_else(String::new, |s| format!("{s:.2}")),
        rule_version: rules.to_string(),
    }
}

/// The dates a block covers: the date itself and, where it makes a date,
/// the same with day and month swapped.
fn block_dates(d: NaiveDate) -> Vec<NaiveDate> {
    let mut dates = vec![d];
    if let Some(swapped) = NaiveDate::from_ymd_opt(d.year(), d.day(), d.month())
        && swapped != d
    {
        dates.push(swapped);
    }
    dates
}

impl Hub {
    /// The matching rules in force.
    pub fn match_rules(&self) -> &MatchRules {
        &self.settings.match_rules
    }

    /// Finds the records a query's subject reaches; `confirm` is a
    /// candidate id from an earlier answer.
    pub(crate) async fn find_subject(
        &self,
        caller: &Caller,
        search: &SubjectSearch,
        confirm: Option<&str>,
    ) -> Result<Found, HubError> {
        let rules = self.match_rules();
        let (demographics, dob, local_id) = match search {
            SubjectSearch::NhsNumber(n) => {
                if confirm.is_some() {
                    return Err(HubError::InvalidArgument(vec![FieldError::new(
                        "confirm_candidate",
                        "confirms a candidate of a demographic query; this query gives an NHS number",
                    )]));
                }
                return Ok(Found {
                    linked: self.store.records_for_nhs_number(n).await?,
                    matched_by: "nhs_number",
                    ..Found::default()
                });
            }
            SubjectSearch::Demographics {
                demographics,
                date_of_birth,
                local_id,
            } => (demographics, *date_of_birth, local_id.as_ref()),
        };
        let postcode = normalise_postcode(&demographics.postcode);
        let block = self
            .store
            .records_for_demographics(
                &block_dates(dob),
                (!postcode.is_empty()).then_some(postcode.as_str()),
                MAX_BLOCK,
            )
            .await?;
        let block_cut = block.len() >= MAX_BLOCK as usize;
        let query = SubjectQuery {
            nhs_number: None,
            local_id: local_id.map(|id| (caller.authority.as_str(), id)),
            demographics: Some(demographics),
        };
        let mut found = Found {
            matched_by: "demographics",
            block_cut,
            ..Found::default()
        };
        let mut confirmed = false;
        for stored in block {
            match match_subject(rules, &query, &stored.record) {
                SubjectMatch::Identifier(_) => {
                    found
                        .matches
                        .push(audited(&stored, "certain", None, &rules.version));
                    found.linked.push(stored);
                }
                SubjectMatch::Demographic(score) => {
                    let id = key_of(&stored);
                    let confirming = confirm == Some(id.as_str());
                    match score.band {
                        MatchBand::NonMatch => {}
                        MatchBand::Certain => {
                            found.matches.push(audited(
                                &stored,
                                "certain",
                                Some(score.total),
                                &score.rules_version,
                            ));
                            confirmed |= confirming;
                            found.linked.push(stored);
                        }
                        MatchBand::Possible if confirming => {
                            found.matches.push(audited(
                                &stored,
                                "confirmed",
                                Some(score.total),
                                &score.rules_version,
                            ));
                            confirmed = true;
                            found.linked.push(stored);
                        }
                        MatchBand::Possible => {
                            found.matches.push(audited(
                                &stored,
                                "possible",
                                Some(score.total),
                                &score.rules_version,
                            ));
                            found.possible.push((
                                stored,
                                Candidate {
                                    candidate_id: id,
                                    score,
                                },
                            ));
                        }
                    }
                }
                SubjectMatch::NhsNumberDiffers | SubjectMatch::NotComparable => {}
            }
        }
        if let Some(id) = confirm {
            if !confirmed {
                return Err(HubError::InvalidArgument(vec![FieldError::new(
                    "confirm_candidate",
                    format!(
                        "{id:?} is not a candidate of this query; repeat the query with the same demographics and confirm one of the candidates it returns"
                    ),
                )]));
            }
            found.matched_by = "confirmed";
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_covers_the_date_and_its_day_month_swap() {
        let d = NaiveDate::from_ymd_opt(2015, 4, 12).unwrap();
        assert_eq!(
            block_dates(d),
            [d, NaiveDate::from_ymd_opt(2015, 12, 4).unwrap()]
        );
        let no_swap = NaiveDate::from_ymd_opt(2015, 4, 20).unwrap();
        assert_eq!(block_dates(no_swap), [no_swap]);
        let same = NaiveDate::from_ymd_opt(2015, 5, 5).unwrap();
        assert_eq!(block_dates(same), [same]);
    }

    #[test]
    fn a_search_without_an_nhs_number_needs_names_and_a_date_of_birth() {
        let mut errors = Vec::new();
        assert!(SubjectSearch::check(None, None, None, &mut errors).is_none());
        assert_eq!(errors[0].field, "subject");

        let mut errors = Vec::new();
        let d = Demographics {
            given_name: String::new(),
            family_name: "O'Brien".into(),
            date_of_birth: None,
            postcode: "not a postcode".into(),
        };
        assert!(SubjectSearch::check(None, Some(d), None, &mut errors).is_none());
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
}
