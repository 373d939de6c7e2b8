//! Subject matching: deciding whether a query and a record are about the
//! same person.
//!
//! # Why it exists
//!
//! A case worker asks "who else is involved with this person?", and the
//! records that answer were written by other authorities' systems, each
//! spelling the person its own way. Linking the wrong person discloses one
//! person's relationships to another's case worker; missing the right one
//! hides a child protection plan. So matching is conservative and
//! explainable:
//!
//! 1. **NHS number, exact.** [`NhsNumber`] only exists with a valid modulus
//!    11 check digit, so a mistyped number never gets this far. Two
//!    *different* NHS numbers veto a match outright: no demographic score
//!    overrides them ([`SubjectMatch::NhsNumberDiffers`]).
//! 2. **Local identifiers, scoped.** A local id means something only to the
//!    authority that issued it: it matches only when the issuing authority
//!    (the record's custodian), the system and the value are all equal
//!    ([`match_identifiers`]).
//! 3. **Demographics, scored**, where there is no NHS number to decide it:
//!    given name, family name, date of birth and postcode, compared after
//!    normalisation ([`normalise_name`], [`normalise_postcode`]) and weighed
//!    in the manner of Fellegi–Sunter, with configurable, versioned
//!    [`MatchRules`] (as OpenCR does).
//!
//! # How the score works
//!
//! Each field is compared into one outcome: it agrees, agrees partially in a
//! named way, disagrees, or is missing on either side. Each outcome has a
//! weight, the log-odds that it is seen for a true match rather than a
//! non-match, from the field's probabilities in the rules:
//!
//! | outcome | weight |
//! |---|---|
//! | agree | `log2(m / u)` of the field's `agree` level |
//! | partial (e.g. day and month swapped) | `log2(m / u)` of that partial level |
//! | disagree | `log2((1 - m) / (1 - u))` of the field's `agree` level (negative) |
//! | missing | 0: an absent field counts neither for nor against |
//!
//! `m` is the probability of the outcome when the records are the same
//! person, `u` when they are different people. The total is the sum over the
//! four fields. At or above `thresholds.certain` the match is
//! [`MatchBand::Certain`] and is the only kind that links automatically; at
//! or above `thresholds.possible` it is [`MatchBand::Possible`] and comes
//! back to the case worker as a candidate; below, [`MatchBand::NonMatch`].
//!
//! The partial levels are, per field:
//!
//! - family name: words of one side all in the other (double-barrelled
//!   *Smith-Jones* / *Jones*), then any word shared;
//! - given name: a known alternative (*Bill* / *William*, see
//!   [`ALTERNATIVE_GIVEN_NAMES`]) or a shared word (a middle name used as a
//!   first name), then the same initial. A given name that is only
//!   initials (`J`, `J. A.`) never agrees better than *initial*;
//! - date of birth: day and month swapped (`1980-03-07` / `1980-07-03`), then
//!   the same year and month;
//! - postcode: the same sector (outward code and first inward digit, `M1 1`),
//!   then the same outward code (`M1`). These need both sides to look like
//!   UK postcodes; anything else only agrees in full.
//!
//! Before comparison, names lose case, accents, apostrophes and hyphens, and
//! spaces are ignored for exact agreement (*O'Brien* = *O Brien* =
//! *OBrien*); postcodes lose case and spaces.
//!
//! # What a case worker sees
//!
//! A [`MatchScore`] lists, per field, the outcome and its weight, never the
//! values compared: it says *date of birth: day and month swapped*, not the
//! date. That is what a *possible* candidate shows until the case worker
//! confirms it ([`MatchScore::confirm`]); the record itself stays at summary
//! level until then. Every link, automatic or confirmed, is a [`MatchLink`]
//! that stores the score, band and rules version it was made under.

mod normalise;
mod rules;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

pub use normalise::{ALTERNATIVE_GIVEN_NAMES, name_tokens, normalise_name, normalise_postcode};
pub use rules::{
    DEFAULT_RULES_VERSION, DateOfBirthRule, FamilyNameRule, GivenNameRule, MatchRules,
    PostcodeRule, Probabilities, RulesError, Thresholds,
};

use crate::nhs_number::NhsNumber;
use crate::record::{Demographics, LocalId, Record};
use crate::validate::is_uk_postcode;

/// How strongly two sets of demographics point to one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchBand {
    /// Links automatically.
    Certain,
    /// A candidate for the case worker to confirm or reject.
    Possible,
    NonMatch,
}

/// The demographic fields compared, in the order a [`MatchScore`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchField {
    FamilyName,
    GivenName,
    DateOfBirth,
    Postcode,
}

/// The ways a field can agree in part. See the module docs for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartialKind {
    /// Family name: one side's words are all among the other's.
    TokenSubset,
    /// Family name: at least one word in common.
    AnyToken,
    /// Given name: a known alternative, or a word in common.
    AlternativeName,
    /// Given name: only the initial agrees.
    Initial,
    /// Date of birth: same year, day and month swapped.
    DayMonthSwapped,
    /// Date of birth: same year and month.
    SameYearMonth,
    /// Postcode: same outward code and first inward digit.
    SameSector,
    /// Postcode: same outward code.
    SameOutwardCode,
}

/// The outcome of comparing one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldOutcome {
    Agree,
    Partial(PartialKind),
    Disagree,
    /// Empty on one side or both; weighs 0.
    Missing,
}

/// One line of a match explanation: which field, how it compared, and what
/// that added to the total. Carries no demographic values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FieldComparison {
    pub field: MatchField,
    pub outcome: FieldOutcome,
    pub weight: f64,
}

/// The result of comparing two sets of demographics under one rule set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchScore {
    /// Sum of the field weights.
    pub total: f64,
    pub band: MatchBand,
    /// One entry per field, family name, given name, date of birth,
    /// postcode, in that order.
    pub fields: Vec<FieldComparison>,
    pub rules_version: String,
}

/// Why a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMethod {
    /// The NHS numbers are equal.
    NhsNumber,
    /// The same authority, system and value.
    LocalId,
    /// A *certain* demographic match, linked automatically.
    Demographic,
    /// A *possible* (or certain) demographic match the case worker confirmed.
    Confirmed,
}

/// What is stored with every link between a query's subject and a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchLink {
    pub method: LinkMethod,
    /// The demographic total weight; `None` for identifier links, which are
    /// not scored.
    pub score: Option<f64>,
    pub band: MatchBand,
    pub rules_version: String,
}

/// How a query's identifiers matched a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierMatch {
    NhsNumber,
    LocalId,
}

/// What a case worker's query knows about the subject. `local_id` is the
/// issuing authority's code with the identifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubjectQuery<'a> {
    pub nhs_number: Option<NhsNumber>,
    pub local_id: Option<(&'a str, &'a LocalId)>,
    pub demographics: Option<&'a Demographics>,
}

/// The outcome of [`match_subject`].
#[derive(Debug, Clone, PartialEq)]
pub enum SubjectMatch {
    /// An identifier decided it; this is a certain match.
    Identifier(IdentifierMatch),
    /// No identifier decided it; the demographics were scored.
    Demographic(MatchScore),
    /// Both sides have NHS numbers and they differ: not the same person,
    /// whatever the demographics say.
    NhsNumberDiffers,
    /// Nothing to compare (no shared identifier and demographics missing on
    /// one side).
    NotComparable,
}

impl MatchScore {
    /// The link to store when this match links automatically: only a
    /// *certain* match does.
    pub fn auto_link(&self) -> Option<MatchLink> {
        (self.band == MatchBand::Certain).then(|| self.link(LinkMethod::Demographic))
    }

    /// The link to store when the case worker confirms this candidate. A
    /// non-match is never offered, so it cannot be confirmed.
    pub fn confirm(&self) -> Option<MatchLink> {
        (self.band != MatchBand::NonMatch).then(|| self.link(LinkMethod::Confirmed))
    }

    /// The comparison for one field.
    pub fn field(&self, field: MatchField) -> Option<&FieldComparison> {
        self.fields.iter().find(|c| c.field == field)
    }

    fn link(&self, method: LinkMethod) -> MatchLink {
        MatchLink {
            method,
            score: Some(self.total),
            band: self.band,
            rules_version: self.rules_version.clone(),
        }
    }
}

impl IdentifierMatch {
    /// The link to store for an identifier match, under the rule set in
    /// force when it was made.
    pub fn link(self, rules: &MatchRules) -> MatchLink {
        MatchLink {
            method: match self {
                Self::NhsNumber => LinkMethod::NhsNumber,
                Self::LocalId => LinkMethod::LocalId,
            },
            score: None,
            band: MatchBand::Certain,
            rules_version: rules.version.clone(),
        }
    }
}

impl Thresholds {
    /// The band a total weight falls in.
    pub fn band(&self, total: f64) -> MatchBand {
        if total >= self.certain {
            MatchBand::Certain
        } else if total >= self.possible {
            MatchBand::Possible
        } else {
            MatchBand::NonMatch
        }
    }
}

/// Whether a query's identifiers match a record's: the NHS numbers are
/// equal, or the query's local identifier was issued by the record's
/// custodian and has the same system and value. A local id issued by a
/// different authority never matches, whatever its value.
pub fn match_identifiers(
    query_nhs: Option<NhsNumber>,
    query_local: Option<(&str, &LocalId)>,
    record: &Record,
) -> Option<IdentifierMatch> {
    let subject = &record.subject;
    if let (Some(q), Some(r)) = (query_nhs, subject.nhs_number)
        && q == r
    {
        return Some(IdentifierMatch::NhsNumber);
    }
    if let Some((authority, id)) = query_local
        && authority == record.custodian
        && subject.local_ids.iter().any(|r| r == id)
    {
        return Some(IdentifierMatch::LocalId);
    }
    None
}

/// Matches a query against a record: identifiers first, then a veto on two
/// different NHS numbers, then the demographic score.
pub fn match_subject(
    rules: &MatchRules,
    query: &SubjectQuery<'_>,
    record: &Record,
) -> SubjectMatch {
    if let Some(m) = match_identifiers(query.nhs_number, query.local_id, record) {
        return SubjectMatch::Identifier(m);
    }
    if query.nhs_number.is_some() && record.subject.nhs_number.is_some() {
        return SubjectMatch::NhsNumberDiffers;
    }
    match (query.demographics, &record.subject.demographics) {
        (Some(q), Some(r)) => SubjectMatch::Demographic(score(rules, q, r)),
        _ => SubjectMatch::NotComparable,
    }
}

/// Scores two sets of demographics under `rules`. Symmetric: `score(a, b)`
/// and `score(b, a)` have the same total.
pub fn score(rules: &MatchRules, a: &Demographics, b: &Demographics) -> MatchScore {
    let family = compare_family_name(&a.family_name, &b.family_name);
    let given = compare_given_name(rules, &a.given_name, &b.given_name);
    let dob = compare_date_of_birth(a.date_of_birth, b.date_of_birth);
    let postcode = compare_postcode(&a.postcode, &b.postcode);

    let fields: Vec<FieldComparison> = [
        (MatchField::FamilyName, family),
        (MatchField::GivenName, given),
        (MatchField::DateOfBirth, dob),
        (MatchField::Postcode, postcode),
    ]
    .into_iter()
    .map(|(field, outcome)| FieldComparison {
        field,
        outcome,
        weight: weight(rules, field, outcome),
    })
    .collect();
    let total = fields.iter().map(|f| f.weight).sum();
    MatchScore {
        total,
        band: rules.thresholds.band(total),
        fields,
        rules_version: rules.version.clone(),
    }
}

/// The weight of one field's outcome under `rules`.
fn weight(rules: &MatchRules, field: MatchField, outcome: FieldOutcome) -> f64 {
    let agree = match field {
        MatchField::FamilyName => rules.family_name.agree,
        MatchField::GivenName => rules.given_name.agree,
        MatchField::DateOfBirth => rules.date_of_birth.agree,
        MatchField::Postcode => rules.postcode.agree,
    };
    match outcome {
        FieldOutcome::Agree => agree.agreement_weight(),
        FieldOutcome::Disagree => agree.disagreement_weight(),
        FieldOutcome::Missing => 0.0,
        // Each partial kind belongs to exactly one field.
        FieldOutcome::Partial(kind) => match kind {
            PartialKind::TokenSubset => rules.family_name.token_subset,
            PartialKind::AnyToken => rules.family_name.any_token,
            PartialKind::AlternativeName => rules.given_name.alternative_name,
            PartialKind::Initial => rules.given_name.initial,
            PartialKind::DayMonthSwapped => rules.date_of_birth.day_month_swapped,
            PartialKind::SameYearMonth => rules.date_of_birth.same_year_month,
            PartialKind::SameSector => rules.postcode.same_sector,
            PartialKind::SameOutwardCode => rules.postcode.same_outward_code,
        }
        .agreement_weight(),
    }
}

/// Tokens of a name, and the name with its spaces removed.
fn tokens_and_compact(raw: &str) -> (Vec<String>, String) {
    let tokens = name_tokens(raw);
    let compact = tokens.concat();
    (tokens, compact)
}

fn compare_family_name(a: &str, b: &str) -> FieldOutcome {
    let (ta, ca) = tokens_and_compact(a);
    let (tb, cb) = tokens_and_compact(b);
    if ca.is_empty() || cb.is_empty() {
        FieldOutcome::Missing
    } else if ca == cb {
        FieldOutcome::Agree
    } else if ta.iter().all(|t| tb.contains(t)) || tb.iter().all(|t| ta.contains(t)) {
        FieldOutcome::Partial(PartialKind::TokenSubset)
    } else if ta.iter().any(|t| tb.contains(t)) {
        FieldOutcome::Partial(PartialKind::AnyToken)
    } else {
        FieldOutcome::Disagree
    }
}

fn compare_given_name(rules: &MatchRules, a: &str, b: &str) -> FieldOutcome {
    let (ta, ca) = tokens_and_compact(a);
    let (tb, cb) = tokens_and_compact(b);
    let (Some(first_a), Some(first_b)) = (ta.first(), tb.first()) else {
        return FieldOutcome::Missing;
    };
    let initial_a = first_a.chars().next();
    let initial_b = first_b.chars().next();
    let only_initials = |tokens: &[String]| tokens.iter().all(|t| t.chars().count() == 1);
    if only_initials(&ta) || only_initials(&tb) {
        // "J" says little more than "a name beginning with J".
        return if initial_a == initial_b {
            FieldOutcome::Partial(PartialKind::Initial)
        } else {
            FieldOutcome::Disagree
        };
    }
    // Middle names are often dropped: "Mary" agrees with "Mary Jane".
    if ca == cb || (first_a == first_b && (ta.len() == 1 || tb.len() == 1)) {
        return FieldOutcome::Agree;
    }
    let related = ta.iter().any(|x| {
        tb.iter()
            .any(|y| x == y || normalise::are_alternatives(&rules.alternative_names, x, y))
    });
    if related {
        FieldOutcome::Partial(PartialKind::AlternativeName)
    } else if initial_a == initial_b {
        FieldOutcome::Partial(PartialKind::Initial)
    } else {
        FieldOutcome::Disagree
    }
}

fn compare_date_of_birth(a: Option<NaiveDate>, b: Option<NaiveDate>) -> FieldOutcome {
    let (Some(a), Some(b)) = (a, b) else {
        return FieldOutcome::Missing;
    };
    if a == b {
        FieldOutcome::Agree
    } else if NaiveDate::from_ymd_opt(a.year(), a.day(), a.month()) == Some(b) {
        FieldOutcome::Partial(PartialKind::DayMonthSwapped)
    } else if a.year() == b.year() && a.month() == b.month() {
        FieldOutcome::Partial(PartialKind::SameYearMonth)
    } else {
        FieldOutcome::Disagree
    }
}

fn compare_postcode(a: &str, b: &str) -> FieldOutcome {
    let a = normalise_postcode(a);
    let b = normalise_postcode(b);
    if a.is_empty() || b.is_empty() {
        return FieldOutcome::Missing;
    }
    if a == b {
        return FieldOutcome::Agree;
    }
    if !is_uk_postcode(&a) || !is_uk_postcode(&b) {
        return FieldOutcome::Disagree;
    }
    // The inward code is always the last three characters.
    let (outward_a, inward_a) = a.split_at(a.len() - 3);
    let (outward_b, inward_b) = b.split_at(b.len() - 3);
    if outward_a != outward_b {
        FieldOutcome::Disagree
    } else if inward_a[..1] == inward_b[..1] {
        FieldOutcome::Partial(PartialKind::SameSector)
    } else {
        FieldOutcome::Partial(PartialKind::SameOutwardCode)
    }
}

#[cfg(test)]
mod tests;
