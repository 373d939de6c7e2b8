//! Stage 4, fetch: the detail of records decided `detail` but held at
//! source, asked of their custodians' agents all at once, each bounded in
//! time; then each record's view, built once from what came back. A
//! detail that cannot be fetched (or differs from what was published)
//! lowers that record to summary and marks its custodian in the answer's
//! statuses: partial, never failed. A fetch can only lower a level.

use kith_core::Record;
use kith_policy::{Decision, Level};

use super::decide::{Decided, Linkage};
use super::{Asking, AuthorityState, AuthorityStatus};
use crate::detail::{DetailError, DetailRequest};
use crate::disclosure::View;
use crate::hub::Hub;
use crate::store::StoredRecord;

/// One record as finally decided, with what may be shown of it.
pub(super) struct Shown<'f> {
    pub stored: &'f StoredRecord,
    pub linkage: Linkage<'f>,
    pub level: Level,
    pub reason: String,
    /// What permitted the level: shown to the case worker.
    pub permitting: Vec<String>,
    /// What forbade more: for the audit only (a forbid's id, say an
    /// objection's, can reveal what policy withholds).
    pub forbidding: Vec<String>,
    /// `None` when hidden.
    pub view: Option<View>,
}

/// The fetch stage's result.
pub(super) struct Fetched<'f> {
    pub shown: Vec<Shown<'f>>,
    /// One per custodian asked for detail.
    pub statuses: Vec<AuthorityStatus>,
}

impl Hub {
    pub(super) async fn fetch<'f>(
        &self,
        asking: &Asking<'_>,
        decided: Vec<Decided<'f>>,
    ) -> Fetched<'f> {
        let fetches = decided.iter().map(|d| {
            let wanted = d.decision.level == Level::Detail && d.stored.held_at_source;
            let request = wanted.then(|| DetailRequest {
                custodian: d.stored.record.custodian.clone(),
                record_id: d.stored.record.record_id.clone(),
                version: d.stored.record.version,
                requester: asking.caller.member.clone(),
                user: asking.query.user.clone(),
                purpose: asking.query.purpose,
            });
            let content_hash = &d.stored.record.provenance.content_hash;
            async move {
                match request {
                    Some(r) => Some(self.fetch_detail(r, content_hash).await),
                    None => None,
                }
            }
        });
        let outcomes = futures::future::join_all(fetches).await;
        let mut statuses = Vec::new();
        let shown: Vec<Shown<'f>> = decided
            .into_iter()
            .zip(outcomes)
            .map(|(d, outcome)| shown(d, outcome, &mut statuses))
            .collect();
        for s in &shown {
            crate::metrics::decision(s.level);
        }
        Fetched { shown, statuses }
    }

    /// Fetches one record's detail and checks it is the version published
    /// (same content hash as the index).
    async fn fetch_detail(
        &self,
        request: DetailRequest,
        content_hash: &str,
    ) -> Result<Record, DetailError> {
        let custodian = request.custodian.clone();
        let started = std::time::Instant::now();
        let fetched = self.detail.fetch(request).await.and_then(|record| {
            if record.content_hash() != content_hash {
                return Err(DetailError::Refused(
                    "the custodian's copy differs from the version it published".into(),
                ));
            }
            Ok(record)
        });
        let failure = fetched.as_ref().err().map(|e| match e {
            DetailError::Unreachable(_) => "unreachable",
            DetailError::Refused(_) => "refused",
        });
        crate::metrics::live_fetch(&custodian, started.elapsed(), failure);
        fetched
    }
}

/// The record's final level and view, from its decision and what its
/// fetch (if one was made) brought back.
fn shown<'f>(
    d: Decided<'f>,
    fetched: Option<Result<Record, DetailError>>,
    statuses: &mut Vec<AuthorityStatus>,
) -> Shown<'f> {
    let Decision {
        level,
        permitting,
        forbidding,
        reason,
    } = d.decision;
    let custodian = &d.stored.record.custodian;
    let (level, reason, view) = match fetched {
        None => (level, reason, View::of(d.stored, level)),
        Some(Ok(mut full)) => {
            if d.stored.ended_on.is_some() {
                full.period.end = d.stored.ended_on;
            }
            note_status(statuses, custodian, AuthorityState::Ok(String::new()));
            (level, reason, Some(View::Detail(Box::new(full))))
        }
        Some(Err(e)) => {
            let reason = format!(
                "{reason}; the detail is held by the custodian and could not be fetched ({e}): contact them"
            );
            let state = match e {
                DetailError::Unreachable(m) => AuthorityState::Unreachable(m),
                DetailError::Refused(m) => AuthorityState::Refused(m),
            };
            note_status(statuses, custodian, state);
            (Level::Summary, reason, View::of(d.stored, Level::Summary))
        }
    };
    Shown {
        stored: d.stored,
        linkage: d.linkage,
        level,
        reason,
        permitting,
        forbidding,
        view,
    }
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
