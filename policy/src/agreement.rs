//! Information sharing agreements (`agreements.json`) and the index that
//! picks, for one request, the few agreements whose policies need evaluating.
//!
//! An agreement binds to a request when both the requester's and the
//! custodian's authority kinds are among its `party_kinds` (and, if it names
//! `party_authorities`, both authorities are named), the record's category is
//! among its `categories` and the stated purpose among its `purposes`. Only
//! then are its `@agreement("<id>")` policies evaluated, with the agreement
//! as `context.agreement`. Validity dates are left to the policies (the
//! default set forbids outside them), so audits can say an agreement expired.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use cedar_policy::{Entity, EntityUid, RestrictedExpression};
use serde::Deserialize;

use crate::entities::Names;
use crate::error::Problem;
use crate::input::{RecordFacts, Requester};
use crate::time::parse_time;
use crate::vocabulary::Vocabulary;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgreementsFile {
    #[serde(rename = "_comment", default)]
    _comment: Option<String>,
    agreements: Vec<AgreementSpec>,
}

/// One agreement as written in `agreements.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgreementSpec {
    pub id: String,
    pub title: String,
    pub party_kinds: Vec<String>,
    #[serde(default)]
    pub party_authorities: Option<Vec<String>>,
    pub categories: Vec<String>,
    pub purposes: Vec<String>,
    /// First day in force (UTC), or a UTC time.
    pub valid_from: String,
    /// Last day in force (inclusive, UTC), or the exclusive end as a UTC time.
    pub valid_until: String,
}

/// A loaded agreement.
#[derive(Debug, Clone)]
pub(crate) struct Agreement {
    pub id: String,
    pub title: String,
    pub party_kinds: HashSet<String>,
    pub party_authorities: Option<HashSet<String>>,
    pub categories: HashSet<String>,
    pub purposes: HashSet<String>,
    pub uid: EntityUid,
    pub entity: Entity,
}

impl Agreement {
    fn covers(
        &self,
        req_kind: &str,
        cust_kind: &str,
        req_code: &str,
        cust_code: &str,
        category: &str,
        purpose: &str,
    ) -> bool {
        self.party_kinds.contains(req_kind)
            && self.party_kinds.contains(cust_kind)
            && self.categories.contains(category)
            && self.purposes.contains(purpose)
            && self
                .party_authorities
                .as_ref()
                .is_none_or(|a| a.contains(req_code) && a.contains(cust_code))
    }
}

pub(crate) fn parse_agreements(
    path: &Path,
    text: &str,
    vocab: &Vocabulary,
    names: &Names,
    problems: &mut Vec<Problem>,
) -> Vec<Agreement> {
    let file: AgreementsFile = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            problems.push(Problem::at(
                path,
                Some(e.line()),
                format!("not a valid agreements file: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for spec in file.agreements {
        let what = format!("agreement {:?}", spec.id);
        if spec.id.is_empty() {
            problems.push(Problem::new(path, "an agreement has an empty id"));
            continue;
        }
        if !seen.insert(spec.id.clone()) {
            problems.push(Problem::new(path, format!("{what} is listed twice")));
            continue;
        }
        Vocabulary::check(
            &vocab.authority_kinds,
            "authority_kinds",
            &spec.party_kinds,
            &format!("{what} party_kinds"),
            path,
            problems,
        );
        Vocabulary::check(
            &vocab.categories,
            "categories",
            &spec.categories,
            &format!("{what} categories"),
            path,
            problems,
        );
        Vocabulary::check(
            &vocab.purposes,
            "purposes",
            &spec.purposes,
            &format!("{what} purposes"),
            path,
            problems,
        );
        let from = parse_time(&spec.valid_from);
        // A bare date for valid_until means "in force through that day".
        let until = parse_time(&spec.valid_until).map(|t| {
            if spec.valid_until.contains('T') {
                t
            } else {
                t + 86_400
            }
        });
        let (from, until) = match (from, until) {
            (Ok(f), Ok(u)) if f < u => (f, u),
            (Ok(_), Ok(_)) => {
                problems.push(Problem::new(
                    path,
                    format!("{what}: valid_until is before valid_from"),
                ));
                continue;
            }
            (Err(e), _) | (_, Err(e)) => {
                problems.push(Problem::new(path, format!("{what}: {e}")));
                continue;
            }
        };
        let uid = names.agreement(&spec.id);
        let strings = |v: &[String]| {
            RestrictedExpression::new_set(
                v.iter()
                    .map(|s| RestrictedExpression::new_string(s.clone())),
            )
        };
        let mut attrs = HashMap::from([
            (
                "title".to_string(),
                RestrictedExpression::new_string(spec.title.clone()),
            ),
            ("party_kinds".to_string(), strings(&spec.party_kinds)),
            ("categories".to_string(), strings(&spec.categories)),
            ("purposes".to_string(), strings(&spec.purposes)),
            (
                "valid_from".to_string(),
                RestrictedExpression::new_long(from),
            ),
            (
                "valid_until".to_string(),
                RestrictedExpression::new_long(until),
            ),
        ]);
        if let Some(codes) = &spec.party_authorities {
            attrs.insert(
                "party_authorities".to_string(),
                RestrictedExpression::new_set(
                    codes
                        .iter()
                        .map(|c| RestrictedExpression::new_entity_uid(names.authority(c))),
                ),
            );
        }
        let entity = match Entity::new(uid.clone(), attrs, HashSet::new()) {
            Ok(e) => e,
            Err(e) => {
                problems.push(Problem::new(path, format!("{what}: {e}")));
                continue;
            }
        };
        out.push(Agreement {
            id: spec.id,
            title: spec.title,
            party_kinds: spec.party_kinds.into_iter().collect(),
            party_authorities: spec.party_authorities.map(|v| v.into_iter().collect()),
            categories: spec.categories.into_iter().collect(),
            purposes: spec.purposes.into_iter().collect(),
            uid,
            entity,
        });
    }
    out
}

/// Finds candidate agreements for a request without scanning them all:
/// keyed by the pair of authority kinds, or for agreements between named
/// authorities by the pair of authority codes.
#[derive(Debug, Default, Clone)]
pub(crate) struct AgreementIndex {
    by_kinds: HashMap<String, HashMap<String, Vec<usize>>>,
    by_codes: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl AgreementIndex {
    pub(crate) fn build(agreements: &[Agreement]) -> AgreementIndex {
        let mut index = AgreementIndex::default();
        for (i, a) in agreements.iter().enumerate() {
            let (map, keys) = match &a.party_authorities {
                Some(codes) => (&mut index.by_codes, codes),
                None => (&mut index.by_kinds, &a.party_kinds),
            };
            for x in keys {
                for y in keys {
                    map.entry(x.clone())
                        .or_default()
                        .entry(y.clone())
                        .or_default()
                        .push(i);
                }
            }
        }
        index
    }

    /// Indices of the agreements that bind to this request (see module doc).
    pub(crate) fn candidates(
        &self,
        agreements: &[Agreement],
        requester: &Requester,
        record: &RecordFacts,
        category: &str,
        purpose: &str,
    ) -> Vec<usize> {
        fn lookup<'m>(
            map: &'m HashMap<String, HashMap<String, Vec<usize>>>,
            x: &str,
            y: &str,
        ) -> &'m [usize] {
            map.get(x)
                .and_then(|m| m.get(y))
                .map(Vec::as_slice)
                .unwrap_or(&[])
        }
        let (req_kind, cust_kind) = (
            requester.authority_kind.as_str(),
            record.custodian_kind.as_str(),
        );
        let (req_code, cust_code) = (
            requester.authority_code.as_str(),
            record.custodian_code.as_str(),
        );
        lookup(&self.by_kinds, req_kind, cust_kind)
            .iter()
            .chain(lookup(&self.by_codes, req_code, cust_code))
            .copied()
            .filter(|&i| {
                agreements[i].covers(req_kind, cust_kind, req_code, cust_code, category, purpose)
            })
            .collect()
    }
}
