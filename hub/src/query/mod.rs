//! A case worker's query: who else is involved with this person?
//!
//! [`Hub::query`] is a pipeline of named stages, each in its own file:
//!
//! 1. **check** the request against the one query contract
//!    ([`kith_core::query::QueryRequest::check`]), before any lookup;
//! 2. [`find`]: the subject's records (NHS number, or a scored demographic
//!    block; retention applied by the store read) and any break glass
//!    claimed now or still open;
//! 3. [`decide`]: one policy decision per record, linked and possible
//!    alike, a possible match capped at summary;
//! 4. [`fetch`]: detail held at source, from the custodians' agents, and
//!    each record's view built once from what came back;
//! 5. [`commit`]: the audit entry naming every decision (hidden ones too),
//!    each custodian's share, the access notices and the break-glass
//!    access, in one durable commit. If it cannot be written the query
//!    fails, closed: nothing is returned that is not audited;
//! 6. [`answer`]: the records shown, the candidates offered, per-custodian
//!    statuses and notices.
//!
//! Decisions, purposes and relationship types stay typed (`Level`,
//! `Purpose`, `RelationshipType`) through every stage; they become text
//! only in the audit entry and on the wire.

mod answer;
mod commit;
mod decide;
mod fetch;
mod find;

use chrono::{DateTime, Utc};
use kith_core::query::CheckedQuery;
use kith_policy::{Level, PolicySet, Requester};

pub use kith_core::query::QueryRequest;

use crate::disclosure::{self, View};
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};
use crate::subject::{Candidate, MatchedBy};

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
    pub matched_by: MatchedBy,
}

/// A possible match offered for the case worker to confirm.
#[derive(Debug, Clone)]
pub struct OfferedCandidate {
    pub candidate: Candidate,
    /// The record, summary at most (or withheld).
    pub record: Disclosed,
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

/// What every stage reads: who asks, what, under which policy set (the
/// one serving when the query began), and when.
struct Asking<'a> {
    caller: &'a Caller,
    query: &'a CheckedQuery,
    policies: &'a PolicySet,
    requester: &'a Requester,
    at: DateTime<Utc>,
}

fn new_query_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Hub {
    /// Answers a query for `caller`: the stages above, in order.
    pub async fn query(
        &self,
        caller: &Caller,
        request: QueryRequest,
    ) -> Result<QueryAnswer, HubError> {
        let purpose = request.purpose.map_or("none", |p| p.as_str());
        let started = std::time::Instant::now();
        let answered = self.query_checked(caller, request).await;
        let outcome = match &answered {
            Ok(a)
                if a.statuses
                    .iter()
                    .all(|s| matches!(s.state, AuthorityState::Ok(_))) =>
            {
                "ok"
            }
            Ok(_) => "partial",
            Err(HubError::InvalidArgument(_)) => "invalid",
            Err(HubError::PermissionDenied(_)) => "denied",
            Err(HubError::NotFound(_)) => "not_found",
            Err(HubError::AlreadyExists(_)) => "invalid",
            Err(HubError::Unavailable(_)) => "unavailable",
        };
        crate::metrics::query(
            outcome,
            purpose,
            answered.is_ok().then(|| started.elapsed()),
        );
        answered
    }

    async fn query_checked(
        &self,
        caller: &Caller,
        request: QueryRequest,
    ) -> Result<QueryAnswer, HubError> {
        let at = now();
        let query = request
            .check(at.date_naive())
            .map_err(HubError::InvalidArgument)?;
        let policies = self.policies();
        let requester = disclosure::requester(caller, &query.user);
        let asking = Asking {
            caller,
            query: &query,
            policies: &policies,
            requester: &requester,
            at,
        };
        let found = self.find(&asking).await?;
        let decided = self.decide(&asking, &found);
        let fetched = self.fetch(&asking, decided).await;
        let query_id = new_query_id();
        let audit_index = self.commit(&asking, &found, &fetched, &query_id).await?;
        Ok(self.answer(&asking, &found, fetched, query_id, audit_index))
    }
}
