//! `kith.v1.QueryService`: a case worker's query.

use std::sync::Arc;

use kith_core::wire::{query_from_wire, record_to_wire};

use kith_policy::Level;
use kith_proto::v1 as pb;
use pb::query_service_server::QueryService;
use tonic::{Request, Response, Status};

use super::{caller, to_status};
use crate::disclosure::View;
use crate::hub::Hub;
use crate::query::{AuthorityState, Disclosed};

pub struct QueryServiceImpl {
    pub hub: Arc<Hub>,
}

pub(super) fn contact(c: &kith_core::Contact) -> Option<pb::Contact> {
    (!c.is_empty()).then(|| pb::Contact {
        name: c.name.clone(),
        role: c.role.clone(),
        phone: c.phone.clone(),
        email: c.email.clone(),
    })
}

fn disclosed_to_wire(d: Disclosed) -> pb::DisclosedRecord {
    let (level, record) = match d.view {
        View::Detail(r) => (pb::DisclosureLevel::Detail, record_to_wire(&r)),
        View::Summary(s) => (
            pb::DisclosureLevel::Summary,
            pb::RelationshipRecord {
                record_id: s.record_id,
                custodian: d.custodian.clone(),
                relationship_type: s.relationship_type.to_wire() as i32,
                service: s.service,
                key_worker: contact(&s.key_worker),
                out_of_hours: contact(&s.out_of_hours),
                ..Default::default()
            },
        ),
        View::Withheld => (
            pb::DisclosureLevel::Withheld,
            pb::RelationshipRecord {
                custodian: d.custodian.clone(),
                ..Default::default()
            },
        ),
    };
    debug_assert!(d.level != Level::Hidden, "hidden records are never sent");
    pb::DisclosedRecord {
        level: level as i32,
        record: Some(record),
        reason: d.reason,
        decided_by: d.decided_by,
        custodian_name: d.custodian_name,
    }
}

#[tonic::async_trait]
impl QueryService for QueryServiceImpl {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        // Joins the agent's trace, if it sent one; the span names only the call.
        let span = tracing::info_span!("kith.v1.QueryService/Query", otel.kind = "server");
        kith_ops::telemetry::extract(request.metadata(), &span);
        let caller = caller(&self.hub, &request).await?;
        let request = query_from_wire(request.into_inner());
        let answer = tracing::Instrument::instrument(self.hub.query(&caller, request), span)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::QueryResponse {
            query_id: answer.query_id,
            records: answer.records.into_iter().map(disclosed_to_wire).collect(),
            audit_index: answer.audit_index,
            notice: answer.notice.unwrap_or_default(),
            break_glass_until: answer.break_glass_until.unwrap_or_default(),
            matched_by: answer.matched_by.as_str().into(),
            candidates: answer
                .candidates
                .into_iter()
                .map(|c| {
                    let (agreed, disagreed) = c.candidate.agreement();
                    pb::MatchCandidate {
                        candidate_id: c.candidate.candidate_id.clone(),
                        score: c.candidate.score.total,
                        rule_version: c.candidate.score.rules_version.clone(),
                        agreed: agreed.into_iter().map(String::from).collect(),
                        disagreed: disagreed.into_iter().map(String::from).collect(),
                        record: Some(disclosed_to_wire(c.record)),
                    }
                })
                .collect(),
            authority_statuses: answer
                .statuses
                .into_iter()
                .map(|s| {
                    let (state, detail) = match s.state {
                        AuthorityState::Ok(d) => (pb::AuthorityState::Ok, d),
                        AuthorityState::Unreachable(d) => (pb::AuthorityState::Unreachable, d),
                        AuthorityState::Refused(d) => (pb::AuthorityState::Refused, d),
                    };
                    pb::AuthorityStatus {
                        authority: s.authority,
                        state: state as i32,
                        detail,
                    }
                })
                .collect(),
        }))
    }
}
