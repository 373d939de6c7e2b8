//! The hub's answer as a plain view: what was disclosed at which level,
//! candidates to confirm, and each custodian's status. Serialised as is
//! for `--json`.

use kith_core::RelationshipType;
use kith_proto::v1 as pb;
use serde::Serialize;

/// A contact, as shown to the case worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactView {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub phone: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
}

/// One record in the answer, at the level the case worker may see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisclosedRecordView {
    /// `detail`, `summary` or `withheld`.
    pub level: String,
    pub custodian: String,
    /// The custodian's name, e.g. "Manchester City Council", when the hub knows it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub custodian_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub record_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship_type: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_worker: Option<ContactView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_hours: Option<ContactView>,
    pub reason: String,
    pub decided_by: Vec<String>,
}

/// The hub's answer, as the case worker sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResponse {
    pub query_id: String,
    pub audit_index: u64,
    pub hub_address: String,
    pub records: Vec<DisclosedRecordView>,
    /// Custodians asked, live, for detail they hold at source; anything but
    /// `ok` means the answer is partial.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authority_statuses: Vec<AuthorityStatusView>,
    /// What the case worker can do when no agreement covers their purpose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// How the person was matched: `nhs_number`, `local_id`, `demographics`
    /// (certain) or `confirmed` (a candidate confirmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<String>,
    /// While emergency access is open for this user and person: when it
    /// ends (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass_until: Option<String>,
    /// Possible matches of a demographic search, for the case worker to
    /// confirm one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateView>,
}

/// A possible match: enough to tell whether it is the person, no more.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateView {
    /// Give it to `--confirm` to confirm this match.
    pub candidate_id: String,
    /// Fellegi–Sunter weight (sum of log2 likelihood ratios).
    pub score: f64,
    pub rule_version: String,
    /// Fields that agreed and disagreed (given_name, family_name,
    /// date_of_birth, postcode).
    pub agreed: Vec<String>,
    pub disagreed: Vec<String>,
    /// The record found, at summary level at most.
    pub record: DisclosedRecordView,
}

/// How a custodian asked for detail held at source answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthorityStatusView {
    pub authority: String,
    /// `ok`, `unreachable` or `refused`.
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

fn contact_view(c: Option<pb::Contact>) -> Option<ContactView> {
    let c = c?;
    let view = ContactView {
        name: c.name,
        role: c.role,
        phone: c.phone,
        email: c.email,
    };
    (!(view.name.is_empty()
        && view.role.is_empty()
        && view.phone.is_empty()
        && view.email.is_empty()))
    .then_some(view)
}

fn level_name(level: i32) -> String {
    match pb::DisclosureLevel::try_from(level) {
        Ok(pb::DisclosureLevel::Detail) => "detail".into(),
        Ok(pb::DisclosureLevel::Summary) => "summary".into(),
        Ok(pb::DisclosureLevel::Withheld) => "withheld".into(),
        _ => format!("unknown ({level})"),
    }
}

impl DisclosedRecordView {
    pub fn from_wire(d: pb::DisclosedRecord) -> Self {
        let r = d.record.unwrap_or_default();
        let period = r.period.unwrap_or_default();
        Self {
            level: level_name(d.level),
            custodian: r.custodian,
            custodian_name: d.custodian_name,
            record_id: r.record_id,
            version: (r.version > 0).then_some(r.version),
            relationship_type: RelationshipType::from_wire(r.relationship_type)
                .map(|t| t.as_str().to_string()),
            service: r.service,
            period_start: Some(period.start).filter(|s| !s.is_empty()),
            period_end: Some(period.end).filter(|s| !s.is_empty()),
            key_worker: contact_view(r.key_worker),
            out_of_hours: contact_view(r.out_of_hours),
            reason: d.reason,
            decided_by: d.decided_by,
        }
    }
}

impl QueryResponse {
    pub fn from_wire(address: &str, r: pb::QueryResponse) -> Self {
        Self {
            query_id: r.query_id,
            audit_index: r.audit_index,
            hub_address: address.to_string(),
            records: r
                .records
                .into_iter()
                .map(DisclosedRecordView::from_wire)
                .collect(),
            notice: (!r.notice.is_empty()).then_some(r.notice),
            matched_by: (!r.matched_by.is_empty()).then_some(r.matched_by),
            break_glass_until: (!r.break_glass_until.is_empty()).then_some(r.break_glass_until),
            candidates: r
                .candidates
                .into_iter()
                .map(|c| CandidateView {
                    candidate_id: c.candidate_id,
                    score: c.score,
                    rule_version: c.rule_version,
                    agreed: c.agreed,
                    disagreed: c.disagreed,
                    record: DisclosedRecordView::from_wire(c.record.unwrap_or_default()),
                })
                .collect(),
            authority_statuses: r
                .authority_statuses
                .into_iter()
                .map(|s| AuthorityStatusView {
                    authority: s.authority,
                    state: match pb::AuthorityState::try_from(s.state) {
                        Ok(pb::AuthorityState::Ok) => "ok",
                        Ok(pb::AuthorityState::Unreachable) => "unreachable",
                        Ok(pb::AuthorityState::Refused) => "refused",
                        _ => "unknown",
                    }
                    .to_string(),
                    detail: s.detail,
                })
                .collect(),
        }
    }
}

impl DisclosedRecordView {
    /// "Name (CODE)", or the code alone when the name is not known.
    pub fn authority(&self) -> String {
        if self.custodian_name.is_empty() {
            self.custodian.clone()
        } else {
            format!("{} ({})", self.custodian_name, self.custodian)
        }
    }
}
