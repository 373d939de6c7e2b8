//! A case worker's query: who else is involved with this person?
//!
//! Order matters: the request is checked before any lookup; each candidate
//! record gets its own policy decision; the audit entry naming every
//! decision (hidden ones too) is durable before anything is returned. If the
//! entry cannot be written the query fails, closed. Detail held at source
//! is fetched from the custodian's agent before the entry is written, so the
//! entry records what was actually disclosed.

use kith_core::{FieldError, NhsNumber, Purpose, Record};
use kith_policy::Level;

use crate::audit::{AuditEntry, AuditKind, AuditedRecord};
use crate::detail::{DetailError, DetailRequest};
use crate::disclosure::{self, ActingUser, View};
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};

/// A query as the domain sees it. `purpose` and `nhs_number` are `None`
/// when the request left them out.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub user: ActingUser,
    pub purpose: Option<Purpose>,
    pub nhs_number: Option<NhsNumber>,
}

/// One record in an answer.
#[derive(Debug, Clone)]
pub struct Disclosed {
    pub custodian: String,
    pub custodian_name: String,
    pub level: Level,
    pub view: View,
    pub reason: String,
    pub decided_by: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct QueryAnswer {
    pub query_id: String,
    pub records: Vec<Disclosed>,
    pub audit_index: u64,
    /// One per custodian asked for detail held at source.
    pub statuses: Vec<AuthorityStatus>,
    /// Set when no agreement covers the purpose for this requester.
    pub notice: Option<String>,
}

fn check(request: &QueryRequest) -> Result<(Purpose, NhsNumber), HubError> {
    let mut errors = Vec::new();
    let user = &request.user;
    let mut required = |field: &str, value: &str| {
        if value.trim().is_empty() {
            errors.push(FieldError::new(field, "is required"));
        } else if value.chars().count() > 128 || value.chars().any(char::is_control) {
            errors.push(FieldError::new(
                field,
                "must be at most 128 printable characters",
            ));
        }
    };
    required("acting_user.user_id", &user.user_id);
    required("acting_user.role", &user.role);
    if request.purpose.is_none() {
        errors.push(FieldError::new(
            "purpose",
            format!(
                "is required: one of {}",
                Purpose::ALL
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if request.nhs_number.is_none() {
        errors.push(FieldError::new("subject.nhs_number", "is required"));
    }
    match (request.purpose, request.nhs_number) {
        (Some(p), Some(n)) if errors.is_empty() => Ok((p, n)),
        _ => Err(HubError::InvalidArgument(errors)),
    }
}

fn new_query_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Hub {
    /// Answers a query for `caller`.
    pub async fn query(
        &self,
        caller: &Caller,
        request: QueryRequest,
    ) -> Result<QueryAnswer, HubError> {
        let (purpose, nhs_number) = check(&request)?;
        let candidates = self.store.records_for_nhs_number(&nhs_number).await?;
        let policies = self.policies();
        let requester = disclosure::requester(caller, &request.user);
        let at = now();

        // One decider per query: the requester's side is built once.
        let decider = policies.decider(&requester, purpose.as_str(), at.timestamp(), false);
        let decisions: Vec<_> = candidates
            .iter()
            .map(|stored| decider.decide(&disclosure::facts(&self.directory, &stored.record)))
            .collect();

        // Detail held at source: ask the custodians' agents, all at once,
        // each bounded in time.
        let fetches = candidates.iter().zip(&decisions).map(|(stored, decision)| {
            let wanted = decision.level == Level::Detail && stored.held_at_source;
            let request = wanted.then(|| DetailRequest {
                custodian: stored.record.custodian.clone(),
                record_id: stored.record.record_id.clone(),
                version: stored.record.version,
                requester: caller.member.clone(),
                user: request.user.clone(),
                purpose,
            });
            async move {
                match request {
                    Some(r) => Some(
                        self.fetch_detail(r, &stored.record.provenance.content_hash)
                            .await,
                    ),
                    None => None,
                }
            }
        });
        let fetched = futures::future::join_all(fetches).await;

        let mut audited = Vec::with_capacity(candidates.len());
        let mut records = Vec::new();
        let mut statuses: Vec<AuthorityStatus> = Vec::new();
        for ((stored, decision), fetch) in candidates.iter().zip(decisions).zip(fetched) {
            // The audit names both sides: what permitted the level and what
            // forbade more. The case worker is told only what permitted it:
            // a forbid's id (say, an objection's) can reveal what policy
            // withholds.
            let audited_by: Vec<String> = decision
                .permitting
                .iter()
                .chain(&decision.forbidding)
                .cloned()
                .collect();
            let decided_by = decision.permitting.clone();
            let r = &stored.record;
            let mut level = decision.level;
            let mut reason = decision.reason;
            let mut view = View::of(stored, level);
            if let Some(outcome) = fetch {
                let status = match outcome {
                    Ok(full) => {
                        let mut full = full;
                        if stored.ended_on.is_some() {
                            full.period.end = stored.ended_on;
                        }
                        view = Some(View::Detail(Box::new(full)));
                        AuthorityState::Ok(String::new())
                    }
                    Err(e) => {
                        level = Level::Summary;
                        view = View::of(stored, Level::Summary);
                        reason = format!(
                            "{reason}; the detail is held by the custodian and could not be fetched ({e}): contact them"
                        );
                        match e {
                            DetailError::Unreachable(m) => AuthorityState::Unreachable(m),
                            DetailError::Refused(m) => AuthorityState::Refused(m),
                        }
                    }
                };
                note_status(&mut statuses, &r.custodian, status);
            }
            audited.push(AuditedRecord {
                custodian: r.custodian.clone(),
                record_id: r.record_id.clone(),
                version: r.version,
                decision: level.as_str().to_string(),
                decided_by: audited_by,
                reason: reason.clone(),
            });
            if let Some(view) = view {
                records.push(Disclosed {
                    custodian: r.custodian.clone(),
                    custodian_name: self.directory.name_of(&r.custodian),
                    level,
                    view,
                    reason,
                    decided_by,
                });
            }
        }

        let query_id = new_query_id();
        let mut entry = AuditEntry::new(AuditKind::Query, caller.authority.as_str(), at);
        entry.user = Some(request.user.user_id.clone());
        entry.role = Some(request.user.role.clone());
        entry.purpose = Some(purpose.as_str().to_string());
        entry.subject = Some(nhs_number.as_digits());
        entry.query_id = Some(query_id.clone());
        entry.records = audited;
        entry.reason = format!("policy set {}", policies.fingerprint());
        // Durable before disclosure: nothing is returned unless this commits.
        let audit_index = self.audit.append(entry).await?;
        let notice = policies
            .agreements_covering(&requester, purpose.as_str())
            .is_empty()
            .then(|| {
                format!(
                    "no sharing agreement covers purpose {purpose} for a {} like yours, so nothing can be \
                     shared with you for it; choose the purpose that fits, or contact the custodian directly",
                    caller.member.kind.replace('_', " ")
                )
            });
        Ok(QueryAnswer {
            query_id,
            records,
            audit_index,
            statuses,
            notice,
        })
    }

    /// Fetches one record's detail and checks it is the version published
    /// (same content hash as the index).
    async fn fetch_detail(
        &self,
        request: DetailRequest,
        content_hash: &str,
    ) -> Result<Record, DetailError> {
        let record = self.detail.fetch(request).await?;
        if record.content_hash() != content_hash {
            return Err(DetailError::Refused(
                "the custodian's copy differs from the version it published".into(),
            ));
        }
        Ok(record)
    }
}

/// How a custodian asked for detail answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityState {
    Ok(String),
    Unreachable(String),
    Refused(String),
}

/// A custodian's answer to this query's detail requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityStatus {
    pub authority: String,
    pub state: AuthorityState,
}

/// Keeps one status per custodian, the worst seen.
fn note_status(statuses: &mut Vec<AuthorityStatus>, authority: &str, state: AuthorityState) {
    match statuses.iter_mut().find(|s| s.authority == authority) {
        Some(existing) if matches!(existing.state, AuthorityState::Ok(_)) => existing.state = state,
        Some(_) => {}
        None => statuses.push(AuthorityStatus {
            authority: authority.to_string(),
            state,
        }),
    }
}
