//! A case worker's query: who else is involved with this person?
//!
//! Order matters: the request is checked before any lookup; each candidate
//! record gets its own policy decision; the audit entry naming every
//! decision (hidden ones too) is durable before anything is returned. If the
//! entry cannot be written the query fails, closed. Detail held at source
//! is fetched from the custodian's agent before the entry is written, so the
//! entry records what was actually disclosed.

use kith_core::directive::{Recipient, resolve};
use kith_core::{Demographics, FieldError, LocalId, NhsNumber, Purpose, Record};
use kith_policy::Level;

use crate::audit::{AuditEntry, AuditKind, AuditedRecord, BreakGlassFlag};
use crate::break_glass::{BreakGlassAccess, BreakGlassClaim, rfc3339};
use crate::detail::{DetailError, DetailRequest};
use crate::disclosure::{self, ActingUser, View};
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};
use crate::notify::{Notification, NotificationKind};
use crate::subject::{Candidate, SubjectSearch};

/// A query as the domain sees it. `purpose` and `nhs_number` are `None`
/// when the request left them out.
#[derive(Debug, Clone)]
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
    /// A claim of emergency access.
    pub break_glass: Option<BreakGlassClaim>,
    /// Fields the wire layer could not parse (a purpose code out of range,
    /// a date that is not a date): reported with everything else wrong.
    pub malformed: Vec<FieldError>,
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
    /// While emergency access is open for this user and subject: when it
    /// ends (RFC 3339).
    pub break_glass_until: Option<String>,
    /// Possible matches of a demographic query, summary at most.
    pub candidates: Vec<OfferedCandidate>,
    /// nhs_number | demographics | confirmed
    pub matched_by: &'static str,
}

/// A possible match offered for the case worker to confirm.
#[derive(Debug, Clone)]
pub struct OfferedCandidate {
    pub candidate: Candidate,
    /// The record, summary at most (or withheld).
    pub record: Disclosed,
}

/// Longest candidate id a confirmation may carry (`custodian/record_id`).
const MAX_CANDIDATE_ID_CHARS: usize =
    kith_core::validate::MAX_CODE_LEN + 1 + kith_core::validate::MAX_ID_LEN;

fn check(request: &QueryRequest) -> Result<(Purpose, SubjectSearch), HubError> {
    let mut errors = request.malformed.clone();
    request.user.check("acting_user", &mut errors);
    if let Some(id) = &request.confirm_candidate {
        kith_core::acting_user::check_printable(
            "confirm_candidate",
            id,
            MAX_CANDIDATE_ID_CHARS,
            &mut errors,
        );
    }
    if request.purpose.is_none() && !errors.iter().any(|e| e.field == "purpose") {
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
    let search = SubjectSearch::check(
        request.nhs_number,
        request.demographics.clone(),
        request.local_id.clone(),
        &mut errors,
    );
    if let Some(claim) = &request.break_glass {
        claim.check(&mut errors);
    }
    match (request.purpose, search) {
        (Some(p), Some(s)) if errors.is_empty() => Ok((p, s)),
        _ => Err(HubError::InvalidArgument(kith_core::error::capped(errors))),
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
        let (purpose, search) = check(&request)?;
        let at = now();
        let today = at.date_naive();
        let subject = search.audit_key();
        // The records, and any break glass still open for this user and
        // person, looked up at once.
        let (found, open_break_glass) = futures::future::join(
            self.find_subject(caller, &search, request.confirm_candidate.as_deref()),
            async {
                match request.break_glass {
                    Some(_) => Ok(None),
                    None => {
                        self.open_break_glass(caller, &request.user, &subject, at)
                            .await
                    }
                }
            },
        )
        .await;
        let (found, open_break_glass) = (found?, open_break_glass?);
        // Past its retention date: gone, even before the purge job runs.
        let current = |c: &crate::store::StoredRecord| {
            c.record.retain_until.is_none_or(|until| until >= today)
        };
        let mut candidates = found.linked;
        candidates.retain(current);
        let mut possible = found.possible;
        possible.retain(|(c, _)| current(c));
        let policies = self.policies();
        let requester = disclosure::requester(caller, &request.user);

        // Break glass: claimed now, or still open from an earlier claim by
        // this user about this person.
        let break_glass = match &request.break_glass {
            Some(claim) => Some(BreakGlassFlag {
                reason_code: claim.reason_code.clone(),
                justification: claim.justification.clone(),
                until: rfc3339(at + self.settings.break_glass_window),
                claimed: true,
            }),
            None => open_break_glass.map(|open| BreakGlassFlag {
                reason_code: open.claim.reason_code,
                justification: open.claim.justification,
                until: open.expires_at,
                claimed: false,
            }),
        };

        // One decider per query: the requester's side is built once. Each
        // record's directives are resolved for this requester and purpose;
        // the policy set decides what they mean.
        let decider = policies.decider(
            &requester,
            purpose.as_str(),
            at.timestamp(),
            break_glass.is_some(),
        );
        let recipient = Recipient {
            authority: caller.authority.as_str(),
            kind: &caller.member.kind,
        };
        let decisions: Vec<_> = candidates
            .iter()
            .map(|stored| {
                let directives = resolve(&stored.directives, purpose, recipient, today);
                decider.decide(&disclosure::facts(
                    &self.directory,
                    &stored.record,
                    &directives,
                ))
            })
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

        // Possible matches: decided like the rest, then capped at summary
        // until the case worker confirms one.
        let mut offered = Vec::new();
        let mut possible_audited = Vec::new();
        for (stored, candidate) in &possible {
            let directives = resolve(&stored.directives, purpose, recipient, today);
            let decision = decider.decide(&disclosure::facts(
                &self.directory,
                &stored.record,
                &directives,
            ));
            let level = decision.level.min(Level::Summary);
            let r = &stored.record;
            let reason = format!(
                "possible match (score {:.2}, rules {}): summary at most until confirmed; {}",
                candidate.score.total, candidate.score.rules_version, decision.reason
            );
            possible_audited.push(AuditedRecord {
                custodian: r.custodian.clone(),
                record_id: r.record_id.clone(),
                version: r.version,
                decision: level.as_str().to_string(),
                decided_by: decision
                    .permitting
                    .iter()
                    .chain(&decision.forbidding)
                    .cloned()
                    .collect(),
                reason: reason.clone(),
            });
            if let Some(view) = View::of(stored, level) {
                offered.push(OfferedCandidate {
                    candidate: candidate.clone(),
                    record: Disclosed {
                        custodian: r.custodian.clone(),
                        custodian_name: self.directory.name_of(&r.custodian),
                        level,
                        view,
                        reason,
                        decided_by: decision.permitting.clone(),
                    },
                });
            }
        }

        let query_id = new_query_id();
        let mut entry = AuditEntry::new(AuditKind::Query, caller.authority.as_str(), at);
        entry.user = Some(request.user.user_id.clone());
        entry.role = Some(request.user.role.clone());
        entry.purpose = Some(purpose.as_str().to_string());
        entry.subject = Some(subject.clone());
        entry.query_id = Some(query_id.clone());
        entry.records = audited.iter().chain(&possible_audited).cloned().collect();
        entry.matches = found.matches;
        entry.reason = format!("policy set {}", policies.fingerprint());
        entry.break_glass = break_glass.clone();
        // The custodians to tell, stored in the same commit as the entry
        // (each notice's audit index: the query entry, position 0).
        let reached: Vec<_> = candidates
            .iter()
            .zip(&audited)
            .chain(possible.iter().map(|(s, _)| s).zip(&possible_audited))
            .collect();
        let notices = self.access_notices(
            caller,
            &request.user,
            purpose,
            &query_id,
            0,
            &reached,
            break_glass.as_ref(),
        );
        // Durable before disclosure: nothing is returned unless this
        // commits, with each custodian's own share of it and the notices.
        let entries = entry.scoped_for_audit();
        let audit_index = self.audit.append_notifying(entries, notices).await?;

        if let (Some(claim), Some(flag)) = (&request.break_glass, &break_glass) {
            let access = BreakGlassAccess {
                query_id: query_id.clone(),
                audit_index,
                authority: caller.authority.to_string(),
                user: request.user.clone(),
                subject: subject.clone(),
                claim: claim.clone(),
                occurred_at: rfc3339(at),
                expires_at: flag.until.clone(),
                review: None,
            };
            // Recorded for review before the answer; if it cannot be, the
            // query fails closed (its entry already flags the break glass).
            self.store.record_break_glass(&access).await?;
        }
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
        let notice = match (notice, found.block_cut) {
            (notice, false) => notice,
            (notice, true) => Some(
                notice.into_iter().chain([format!(
                    "more than {} records share this date of birth or postcode, so not all were compared; \
                     give the postcode, or the NHS number if you can find it",
                    crate::subject::MAX_BLOCK
                )])
                .collect::<Vec<_>>()
                .join("; "),
            ),
        };
        // Nothing linked: no match (or candidates only) says nothing matched.
        let matched_by = if records.is_empty() && found.matched_by != "nhs_number" {
            ""
        } else {
            found.matched_by
        };
        Ok(QueryAnswer {
            query_id,
            records,
            audit_index,
            statuses,
            notice,
            break_glass_until: break_glass.map(|b| b.until),
            matched_by,
            candidates: offered,
        })
    }

    /// The notifications a query's accesses call for: to each custodian
    /// whose record of a configured type was reached, and to every
    /// custodian reached under break glass. A custodian's own staff looking
    /// at its own record is not news to it; a record hidden outright was
    /// not accessed.
    #[allow(clippy::too_many_arguments)]
    fn access_notices(
        &self,
        caller: &Caller,
        user: &ActingUser,
        purpose: Purpose,
        query_id: &str,
        audit_index: u64,
        reached: &[(&crate::store::StoredRecord, &AuditedRecord)],
        break_glass: Option<&BreakGlassFlag>,
    ) -> Vec<Notification> {
        reached
            .iter()
            .filter(|(stored, a)| {
                a.decision != Level::Hidden.as_str()
                    && stored.record.custodian != caller.authority.as_str()
                    && (break_glass.is_some()
                        || self
                            .settings
                            .access_notification_types
                            .contains(&stored.record.relationship_type))
            })
            .map(|(stored, a)| {
                let kind = if break_glass.is_some() {
                    NotificationKind::BreakGlass
                } else {
                    NotificationKind::Access
                };
                let r = &stored.record;
                let mut n = Notification::new(
                    kind,
                    &r.custodian,
                    &r.custodian,
                    &r.record_id,
                    r.relationship_type.as_str(),
                    audit_index,
                );
                n.accessor_authority = caller.authority.to_string();
                n.accessor_authority_name = caller.member.name.clone();
                n.accessor_user_id = user.user_id.clone();
                n.accessor_display_name = user.display_name.clone();
                n.accessor_role = user.role.clone();
                n.accessor_team = user.team.clone();
                n.purpose = purpose.as_str().to_string();
                n.level = a.decision.clone();
                n.query_id = query_id.to_string();
                if let Some(b) = break_glass {
                    n.reason = format!("break glass ({}): {}", b.reason_code, b.justification);
                }
                n
            })
            .collect()
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
