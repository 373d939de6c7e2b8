//! The configurable part of matching: probabilities per field and
//! comparison level, the two thresholds, and the alternative-name table.

use serde::{Deserialize, Serialize};

use super::normalise::{default_alternative_names, normalise_name};
use crate::error::FieldError;

/// The rule set the built-in [`MatchRules::default`] carries.
pub const DEFAULT_RULES_VERSION: &str = "kith-match-1";

/// One comparison level's Fellegi–Sunter probabilities.
///
/// `m` is the probability of seeing this level when the two records are the
/// same person; `u`, when they are two different people.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probabilities {
    pub m: f64,
    pub u: f64,
}

impl Probabilities {
    /// `log2(m / u)`: what seeing this level adds to the total.
    pub fn agreement_weight(&self) -> f64 {
        (self.m / self.u).log2()
    }

    /// `log2((1 - m) / (1 - u))`: what failing to agree adds (negative when
    /// `m > u`).
    pub fn disagreement_weight(&self) -> f64 {
        ((1.0 - self.m) / (1.0 - self.u)).log2()
    }
}

/// Family name: exact (normalised, spaces ignored), then one side's words
/// all found in the other's (*Smith-Jones* / *Jones*), then any word shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyNameRule {
    /// Exact agreement; its `m` and `u` also give the disagreement weight.
    pub agree: Probabilities,
    pub token_subset: Probabilities,
    pub any_token: Probabilities,
}

/// Given name: exact (or the same first name with middle names on one side
/// only), then a known alternative or a shared word, then the same initial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GivenNameRule {
    pub agree: Probabilities,
    pub alternative_name: Probabilities,
    pub initial: Probabilities,
}

/// Date of birth: exact, then day and month swapped, then the same year and
/// month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateOfBirthRule {
    pub agree: Probabilities,
    pub day_month_swapped: Probabilities,
    pub same_year_month: Probabilities,
}

/// Postcode: full, then the same sector (outward code and the first digit of
/// the inward code: `M1 1`), then the same outward code (`M1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostcodeRule {
    pub agree: Probabilities,
    pub same_sector: Probabilities,
    pub same_outward_code: Probabilities,
}

/// Total weights at which a comparison becomes a *possible* and a *certain*
/// match. `possible <= certain`; a total equal to a threshold reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub certain: f64,
    pub possible: f64,
}

/// A complete, versioned set of matching rules.
///
/// Every field is required when read from JSON: a rule set is stored with
/// every link by its `version`, so a version must name one whole set, never
/// a partial set filled in from whatever the defaults are today. Change any
/// value, change the version. Read with [`MatchRules::from_json`], which
/// also [validates](MatchRules::validate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRules {
    /// Stored with every link, e.g. `kith-match-1`.
    pub version: String,
    pub thresholds: Thresholds,
    pub family_name: FamilyNameRule,
    pub given_name: GivenNameRule,
    pub date_of_birth: DateOfBirthRule,
    pub postcode: PostcodeRule,
    /// Groups of given names taken to be the same name (see
    /// [`ALTERNATIVE_GIVEN_NAMES`](super::ALTERNATIVE_GIVEN_NAMES)); each
    /// entry one normalised word.
    pub alternative_names: Vec<Vec<String>>,
}

/// Why a rule set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("match rules are not valid JSON for this shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("match rules are invalid: {}", crate::error::join(.0))]
    Invalid(Vec<FieldError>),
}

const fn p(m: f64, u: f64) -> Probabilities {
    Probabilities { m, u }
}

impl Default for MatchRules {
    /// The built-in rules, `kith-match-1`. With these, agreement on all four
    /// fields weighs about 33.7, and a total of 30 or more is *certain*: in
    /// practice all four fields agree, except that the given name may agree
    /// only as a known alternative (*Bill* / *William*, 31.9) or the family
    /// name only as one half of a double-barrelled name (32.1). A total of 15
    /// or more is *possible*: both names and the date of birth with no
    /// postcode (24.0) or a different one (21.2), a near-match with day and
    /// month swapped and the postcode in the same sector (21.0), or a
    /// changed family name with everything else agreeing (22.8). Names alone
    /// (13.1) are not enough to be offered.
    fn default() -> Self {
        Self {
            version: DEFAULT_RULES_VERSION.to_owned(),
            thresholds: Thresholds {
                certain: 30.0,
                possible: 15.0,
            },
            family_name: FamilyNameRule {
                agree: p(0.95, 0.01),
                token_subset: p(0.03, 0.001),
                any_token: p(0.01, 0.002),
            },
            given_name: GivenNameRule {
                agree: p(0.90, 0.01),
                alternative_name: p(0.05, 0.002),
                initial: p(0.03, 0.02),
            },
            date_of_birth: DateOfBirthRule {
                agree: p(0.97, 0.0005),
                day_month_swapped: p(0.01, 0.0002),
                same_year_month: p(0.01, 0.001),
            },
            postcode: PostcodeRule {
                agree: p(0.85, 0.001),
                same_sector: p(0.05, 0.01),
                same_outward_code: p(0.03, 0.02),
            },
            alternative_names: default_alternative_names(),
        }
    }
}

impl MatchRules {
    /// Reads and validates a rule set from JSON.
    pub fn from_json(json: &str) -> Result<Self, RulesError> {
        let rules: Self = serde_json::from_str(json)?;
        rules.validate().map_err(RulesError::Invalid)?;
        Ok(rules)
    }

    /// Checks what the types cannot: every probability strictly between 0
    /// and 1, exact agreement more likely for a match than a non-match,
    /// thresholds finite and in order, a version, and a normalised
    /// alternative-name table. `Err` lists every failing field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.version.trim().is_empty() {
            errors.push(FieldError::new("version", "is required"));
        }
        let t = &self.thresholds;
        if !t.certain.is_finite() || !t.possible.is_finite() {
            errors.push(FieldError::new("thresholds", "must be finite numbers"));
        } else if t.possible > t.certain {
            errors.push(FieldError::new(
                "thresholds.possible",
                "must not be above thresholds.certain",
            ));
        }
        let levels: [(&str, &Probabilities); 12] = [
            ("family_name.agree", &self.family_name.agree),
            ("family_name.token_subset", &self.family_name.token_subset),
            ("family_name.any_token", &self.family_name.any_token),
            ("given_name.agree", &self.given_name.agree),
            (
                "given_name.alternative_name",
                &self.given_name.alternative_name,
            ),
            ("given_name.initial", &self.given_name.initial),
            ("date_of_birth.agree", &self.date_of_birth.agree),
            (
                "date_of_birth.day_month_swapped",
                &self.date_of_birth.day_month_swapped,
            ),
            (
                "date_of_birth.same_year_month",
                &self.date_of_birth.same_year_month,
            ),
            ("postcode.agree", &self.postcode.agree),
            ("postcode.same_sector", &self.postcode.same_sector),
            (
                "postcode.same_outward_code",
                &self.postcode.same_outward_code,
            ),
        ];
        for (field, level) in levels {
            for (name, value) in [("m", level.m), ("u", level.u)] {
                if !(value > 0.0 && value < 1.0) {
                    errors.push(FieldError::new(
                        format!("{field}.{name}"),
                        "must be strictly between 0 and 1",
                    ));
                }
            }
            if field.ends_with(".agree") && level.m <= level.u {
                errors.push(FieldError::new(
                    field,
                    "m must be greater than u, or agreement would count against a match",
                ));
            }
        }
        for (i, group) in self.alternative_names.iter().enumerate() {
            for (j, name) in group.iter().enumerate() {
                if name.is_empty() || name.contains(' ') || normalise_name(name) != *name {
                    errors.push(FieldError::new(
                        format!("alternative_names[{i}][{j}]"),
                        "must be one normalised word (lower case, no accents or punctuation)",
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_versioned() {
        let rules = MatchRules::default();
        assert_eq!(rules.validate(), Ok(()));
        assert_eq!(rules.version, "kith-match-1");
    }

    #[test]
    fn weights_are_fellegi_sunter_log_odds() {
        let level = p(0.9, 0.1);
        assert!((level.agreement_weight() - 9f64.log2()).abs() < 1e-12);
        assert!((level.disagreement_weight() - (0.1f64 / 0.9).log2()).abs() < 1e-12);
        assert!(level.disagreement_weight() < 0.0);
    }

    #[test]
    fn a_rule_set_round_trips_through_json() {
        let rules = MatchRules::default();
        let json = serde_json::to_string(&rules).unwrap();
        assert_eq!(MatchRules::from_json(&json).unwrap(), rules);
    }

    #[test]
    fn partial_rule_sets_and_unknown_fields_are_refused() {
        let mut v = serde_json::to_value(MatchRules::default()).unwrap();
        v.as_object_mut().unwrap().remove("postcode");
        assert!(matches!(
            MatchRules::from_json(&v.to_string()),
            Err(RulesError::Json(_))
        ));
        let mut v = serde_json::to_value(MatchRules::default()).unwrap();
        v["thresholds"]["sure"] = 1.into();
        assert!(matches!(
            MatchRules::from_json(&v.to_string()),
            Err(RulesError::Json(_))
        ));
    }

    #[test]
    fn bad_values_are_reported_per_field() {
        let mut rules = MatchRules {
            version: " ".into(),
            ..MatchRules::default()
        };
        rules.thresholds.possible = 40.0;
        rules.postcode.agree.u = 0.0;
        rules.given_name.agree = p(0.1, 0.2);
        rules.alternative_names.push(vec!["Bill".into()]);
        let fields: Vec<String> = rules
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        let last = rules.alternative_names.len() - 1;
        assert_eq!(
            fields,
            [
                "version".to_owned(),
                "thresholds.possible".to_owned(),
                "given_name.agree".to_owned(),
                "postcode.agree.u".to_owned(),
                format!("alternative_names[{last}][0]"),
            ]
        );
        let json = serde_json::to_string(&rules).unwrap();
        assert!(matches!(
            MatchRules::from_json(&json),
            Err(RulesError::Invalid(e)) if e.len() == 5
        ));
    }
}
