//! A case worker's question: who else is involved with this person?
//!
//! The agent asks the hub on behalf of a named member of staff, in a stated
//! role and for a stated purpose; the authority (from the certificate) answers
//! for that assertion. The NHS number and the acting user are checked here
//! first, so a typo gets a clear message without a round trip or an audit
//! entry. The answer is turned into a plain view, printed as a table for
//! people or as JSON for scripts.

use std::fmt::Write as _;

use kith_core::nhs_number::NhsNumberError;
use kith_core::{NhsNumber, Purpose, RelationshipType};
use kith_proto::v1 as pb;
use pb::query_service_client::QueryServiceClient;
use serde::Serialize;

use crate::config::{AgentConfig, ConfigError};
use crate::hub_client::{HubConnector, HubError, is_transient};

/// What the case worker asks, and who they are.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryArgs {
    pub nhs_number: String,
    pub purpose: Purpose,
    pub user_id: String,
    pub role: String,
    pub display_name: String,
    pub team: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("NHS number {given:?}: {source}")]
    NhsNumber {
        given: String,
        source: NhsNumberError,
    },
    #[error("{0} is required")]
    Missing(&'static str),
    /// The certificate names another authority, is expired or not yet
    /// valid, or cannot be read: found before any call to the hub.
    #[error(transparent)]
    Certificate(#[from] ConfigError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("the hub at {address} refused the query: {code:?}: {message}")]
    Refused {
        address: String,
        code: tonic::Code,
        message: String,
    },
}

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

    /// The answer as a table for people.
    pub fn render_table(&self) -> String {
        let headers = [
            "AUTHORITY",
            "RELATIONSHIP",
            "SERVICE",
            "PERIOD",
            "KEY WORKER",
            "OUT OF HOURS",
            "LEVEL",
            "REASON",
        ];
        let dash = || "-".to_string();
        let rows: Vec<[String; 8]> = self
            .records
            .iter()
            .map(|r| {
                let period = match (&r.period_start, &r.period_end) {
                    (Some(s), Some(e)) => format!("{s} to {e}"),
                    (Some(s), None) => format!("since {s}"),
                    _ => dash(),
                };
                let key_worker = r.key_worker.as_ref().map_or_else(dash, |k| {
                    let mut parts = vec![k.name.as_str()];
                    if !k.phone.is_empty() {
                        parts.push(k.phone.as_str());
                    } else if !k.email.is_empty() {
                        parts.push(k.email.as_str());
                    }
                    parts.retain(|p| !p.is_empty());
                    parts.join(", ")
                });
                let authority = if r.custodian_name.is_empty() {
                    r.custodian.clone()
                } else {
                    format!("{} ({})", r.custodian_name, r.custodian)
                };
                [
                    authority,
                    r.relationship_type
                        .clone()
                        .map_or_else(dash, |t| t.replace('_', " ")),
                    if r.service.is_empty() {
                        dash()
                    } else {
                        r.service.clone()
                    },
                    period,
                    key_worker,
                    r.out_of_hours
                        .as_ref()
                        .map(|o| o.phone.clone())
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(dash),
                    r.level.clone(),
                    if r.reason.is_empty() {
                        dash()
                    } else {
                        r.reason.clone()
                    },
                ]
            })
            .collect();
        let mut widths = headers.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let text: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", text.join("  ").trim_end());
        };
        line(&mut out, &headers.map(String::from));
        for row in &rows {
            line(&mut out, row);
        }
        if rows.is_empty() {
            let _ = writeln!(out, "(no records you may see)");
        }
        if let Some(notice) = &self.notice {
            let _ = writeln!(out, "note: {notice}");
        }
        for s in self.authority_statuses.iter().filter(|s| s.state != "ok") {
            let _ = writeln!(
                out,
                "partial answer: {} was asked for detail it holds and is {} ({}); its summary is shown",
                s.authority, s.state, s.detail
            );
        }
        let _ = writeln!(
            out,
            "\nquery {} via {}; audit entry {}",
            self.query_id, self.hub_address, self.audit_index
        );
        out
    }
}

/// Checks the arguments and builds the wire request.
pub fn build_request(args: &QueryArgs) -> Result<pb::QueryRequest, QueryError> {
    let nhs: NhsNumber = args
        .nhs_number
        .parse()
        .map_err(|source| QueryError::NhsNumber {
            given: args.nhs_number.clone(),
            source,
        })?;
    if args.user_id.trim().is_empty() {
        return Err(QueryError::Missing("the acting user (--as)"));
    }
    if args.role.trim().is_empty() {
        return Err(QueryError::Missing("the acting user's role (--role)"));
    }
    Ok(pb::QueryRequest {
        acting_user: Some(pb::ActingUser {
            user_id: args.user_id.trim().to_string(),
            display_name: args.display_name.trim().to_string(),
            role: args.role.trim().to_string(),
            team: args.team.trim().to_string(),
        }),
        purpose: args.purpose.to_wire() as i32,
        subject: Some(pb::Subject {
            nhs_number: nhs.as_digits(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Asks the hub, failing over between addresses on transient errors. The
/// arguments and the certificate are checked first.
pub async fn query(config: &AgentConfig, args: QueryArgs) -> Result<QueryResponse, QueryError> {
    let request = build_request(&args)?;
    config.check_certificate_at(chrono::Utc::now())?;
    let mut hub = HubConnector::new(config, Some(config.request_timeout()))?;
    let tries = config.hub.addresses.len();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (address, channel) = hub.channel().await?;
        match QueryServiceClient::new(channel)
            .query(request.clone())
            .await
        {
            Ok(response) => return Ok(QueryResponse::from_wire(&address, response.into_inner())),
            Err(status) if is_transient(&status) && attempt < tries => {
                tracing::warn!(hub = %address, code = ?status.code(), "query failed; trying the next hub address");
                hub.fail_over();
            }
            Err(status) => {
                return Err(QueryError::Refused {
                    address,
                    code: status.code(),
                    message: status.message().to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> QueryArgs {
        QueryArgs {
            nhs_number: "943 476 5919".into(),
            purpose: Purpose::Safeguarding,
            user_id: "u1".into(),
            role: "social_worker".into(),
            display_name: String::new(),
            team: String::new(),
        }
    }

    #[test]
    fn a_bad_nhs_number_is_refused_before_any_call() {
        let mut a = args();
        a.nhs_number = "9434765918".into();
        let err = build_request(&a).unwrap_err();
        assert!(err.to_string().contains("check digit"), "{err}");
        let mut a = args();
        a.role = " ".into();
        assert!(matches!(build_request(&a), Err(QueryError::Missing(_))));
        let req = build_request(&args()).unwrap();
        assert_eq!(req.subject.unwrap().nhs_number, "9434765919");
        assert_eq!(req.purpose, pb::Purpose::Safeguarding as i32);
    }

    #[test]
    fn the_table_shows_contacts_and_levels() {
        let wire = pb::QueryResponse {
            query_id: "q-1".into(),
            audit_index: 42,
            records: vec![
                pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Summary as i32,
                    record: Some(pb::RelationshipRecord {
                        custodian: "E08000003".into(),
                        relationship_type: pb::RelationshipType::ChildProtectionPlan as i32,
                        key_worker: Some(pb::Contact {
                            name: "J. Smith".into(),
                            phone: "0161 000 0000".into(),
                            ..Default::default()
                        }),
                        period: Some(pb::Period {
                            start: "2025-01-01".into(),
                            end: String::new(),
                        }),
                        ..Default::default()
                    }),
                    reason: "restricted".into(),
                    decided_by: vec!["p1".into()],
                    custodian_name: "Manchester City Council".into(),
                },
                pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Withheld as i32,
                    record: Some(pb::RelationshipRecord {
                        custodian: "RX1".into(),
                        ..Default::default()
                    }),
                    reason: "purpose not permitted".into(),
                    decided_by: vec![],
                    custodian_name: String::new(),
                },
            ],
            notice: String::new(),
            authority_statuses: vec![pb::AuthorityStatus {
                authority: "RX1".into(),
                state: pb::AuthorityState::Unreachable as i32,
                detail: "no answer within 2000 ms".into(),
            }],
            ..Default::default()
        };
        let view = QueryResponse::from_wire("https://hub:1", wire);
        let table = view.render_table();
        assert!(table.contains("child protection plan"), "{table}");
        assert!(table.contains("J. Smith, 0161 000 0000"), "{table}");
        assert!(table.contains("since 2025-01-01"), "{table}");
        assert!(table.contains("withheld"), "{table}");
        assert!(
            table.contains("Manchester City Council (E08000003)"),
            "{table}"
        );
        assert!(table.contains("audit entry 42"), "{table}");
        assert!(table.contains("partial answer: RX1"), "{table}");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["records"][1]["level"], "withheld");
        assert!(json["records"][1].get("relationship_type").is_none());
        assert_eq!(json["records"][0]["key_worker"]["phone"], "0161 000 0000");
    }
}
