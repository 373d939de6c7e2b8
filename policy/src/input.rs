//! Plain request inputs: who is asking, and the facts of the record asked
//! about. The hub maps its own domain types onto these.

use serde::{Deserialize, Serialize};

/// The professional asking, as their authority's node agent asserts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    /// ODS or GSS code of the requester's authority (from its certificate).
    pub authority_code: String,
    /// council | nhs_trust | police | fire | ambulance | federation (the
    /// federation's oversight body)
    pub authority_kind: String,
    /// england | wales | scotland | northern_ireland
    pub jurisdiction: String,
    /// The acting user's id within their authority.
    pub user_id: String,
    /// social_worker | safeguarding_lead | ed_clinician | nurse | gp |
    /// police_officer | public_protection_officer | paramedic | firefighter |
    /// auditor | federation_auditor
    pub role: String,
    /// Free text, e.g. "children's services".
    pub team: String,
}

/// The facts of one relationship record the policy may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFacts {
    pub custodian_code: String,
    /// council | nhs_trust | police | fire | ambulance
    pub custodian_kind: String,
    /// england | wales | scotland | northern_ireland
    pub custodian_jurisdiction: String,
    /// The record's id at its custodian (unique per custodian).
    pub record_key: String,
    /// e.g. child_protection_plan; mapped to a category by relationship_types.json.
    pub relationship_type: String,
    /// normal | restricted | sealed
    pub sensitivity: String,
    /// uk | england | wales | scotland | northern_ireland | source_only
    pub residency: String,
    /// e.g. "UK GDPR 6(1)(e); 9(2)(h); Children Act 1989 s47". Empty = none recorded.
    pub lawful_basis: String,
    /// Purposes the custodian permits this record to be shared for.
    pub permitted_purposes: Vec<String>,
    /// An objection directive in force applies to this request.
    pub objection: bool,
    /// The sharing directive that decides this request after resolution
    /// (deny overrides, then most recent): objection | consent |
    /// best_interests_override | statutory_basis | none.
    #[serde(default = "no_directive")]
    pub directive: String,
}

fn no_directive() -> String {
    "none".to_string()
}

impl RecordFacts {
    /// The facts of a Kith record, with what the directory knows of its
    /// custodian. The hub (deciding a query) and the custodian's agent
    /// (deciding a live detail request) build them the same way here.
    pub fn of(
        record: &kith_core::Record,
        custodian_kind: &str,
        custodian_jurisdiction: &str,
        directives: &kith_core::directive::Resolution,
    ) -> Self {
        Self {
            custodian_code: record.custodian.clone(),
            custodian_kind: custodian_kind.to_string(),
            custodian_jurisdiction: custodian_jurisdiction.to_string(),
            record_key: format!("{}/{}", record.custodian, record.record_id),
            relationship_type: record.relationship_type.as_str().to_string(),
            sensitivity: record.sensitivity.as_str().to_string(),
            residency: record.residency.as_str().to_string(),
            lawful_basis: record.lawful_basis.article6.as_str().to_string(),
            permitted_purposes: record
                .permitted_purposes
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            objection: directives.objection(),
            directive: directives.as_str().to_string(),
        }
    }
}
