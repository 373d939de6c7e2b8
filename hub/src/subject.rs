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
use kith_core::FieldError;
use kith_core::error::quote;
use kith_core::matching::{
    FieldOutcome, MatchBand, MatchField, MatchRules, MatchScore, SubjectMatch, SubjectQuery,
    match_subject, normalise_postcode,
};

use crate::audit::AuditedMatch;
use crate::error::HubError;
use crate::hub::{Caller, Hub};
use crate::store::StoredRecord;

/// The most records one demographic block may hold; a wider block is cut,
/// in key order, and the answer's notice tells the case worker to narrow
/// the query.
pub const MAX_BLOCK: u32 = 500;

pub use kith_core::query::SubjectSearch;

/// How a query's records were found: what the answer's `matched_by` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchedBy {
    /// Nothing linked.
    #[default]
    Nothing,
    /// The NHS number, exactly.
    NhsNumber,
    /// Demographics scored certain (or the caller's own local id).
    Demographics,
    /// A possible match the case worker confirmed.
    Confirmed,
}

impl MatchedBy {
    /// The wire's spelling (empty when nothing linked).
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Nothing => "",
            MatchedBy::NhsNumber => "nhs_number",
            MatchedBy::Demographics => "demographics",
            MatchedBy::Confirmed => "confirmed",
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
    pub matched_by: MatchedBy,
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
        today: NaiveDate,
    ) -> Result<Found, HubError> {
        let rules = self.match_rules();
        let (demographics, dob, local_id) = match search {
            // (A confirmation with an NHS number is refused by the query
            // contract, `kith_core::query`.)
            SubjectSearch::NhsNumber(n) => {
                return Ok(Found {
                    linked: self.store.records_for_nhs_number(n, today).await?,
                    matched_by: MatchedBy::NhsNumber,
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
                today,
            )
            .await?;
        let block_cut = block.len() >= MAX_BLOCK as usize;
        let query = SubjectQuery {
            nhs_number: None,
            local_id: local_id.map(|id| (caller.authority.as_str(), id)),
            demographics: Some(demographics),
        };
        let mut found = Found {
            matched_by: MatchedBy::Demographics,
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
                        "{} is not a candidate of this query; repeat the query with the same demographics and confirm one of the candidates it returns",
                        quote(id)
                    ),
                )]));
            }
            found.matched_by = MatchedBy::Confirmed;
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
}
