//! Answering the hub's requests for the detail of records held at source.
//!
//! Where a record's residency forbids holding its detail centrally, the hub
//! keeps only its index and asks this agent, over the link, when a permitted
//! query needs the detail. The agent answers from its outbox (the records it
//! published, exactly as published) and only after its own copy of the
//! policy set agrees that the requester may see the detail: the custodian
//! does not take the hub's word for it. No policy copy configured, or any
//! doubt, means no.

use std::sync::Arc;

use chrono::Utc;
use kith_core::Purpose;
use kith_policy::{Level, PolicySet, RecordFacts, Requester};
use kith_proto::v1 as pb;
use pb::detail_response::Result as Answer;

use crate::config::AgentConfig;
use crate::outbox::Outbox;

/// Answers detail requests for one authority.
pub struct DetailResponder {
    authority: String,
    outbox: Outbox,
    policy: Option<(Arc<PolicySet>, String, String)>,
}

impl DetailResponder {
    /// Loads the agent's policy copy, if configured. An invalid set is an
    /// error: the operator must know now, not on the first request.
    pub fn new(config: &AgentConfig, outbox: Outbox) -> Result<Self, kith_policy::PolicyError> {
        let policy = match &config.policy {
            None => None,
            Some(p) => Some((
                Arc::new(PolicySet::load(&p.dir)?),
                p.kind.clone(),
                p.jurisdiction.clone(),
            )),
        };
        Ok(Self {
            authority: config.authority.clone(),
            outbox,
            policy,
        })
    }

    /// The answer to one request.
    pub async fn answer(&self, request: pb::DetailRequest) -> pb::DetailResponse {
        let result = match self.decide(&request).await {
            Ok(record) => Answer::Record(kith_core::wire::record_to_wire(&record)),
            Err(why) => {
                tracing::info!(record_id = %request.record_id, requester = %request.requester_authority, %why,
                    "detail request refused");
                Answer::Refused(why)
            }
        };
        pb::DetailResponse {
            request_id: request.request_id,
            result: Some(result),
        }
    }

    async fn decide(&self, request: &pb::DetailRequest) -> Result<kith_core::Record, String> {
        let Some((policies, kind, jurisdiction)) = &self.policy else {
            return Err(
                "this authority's agent has no policy copy configured, so it gives no detail"
                    .into(),
            );
        };
        let record = self
            .outbox
            .record(&request.record_id, request.version)
            .await
            .map_err(|e| format!("outbox unavailable: {e}"))?
            .ok_or_else(|| {
                format!(
                    "no record {} version {} here",
                    request.record_id, request.version
                )
            })?;
        if record.custodian != self.authority {
            return Err("not this authority's record".into());
        }
        let purpose = Purpose::from_wire(request.purpose).ok_or("no valid purpose given")?;
        let user = request.acting_user.clone().unwrap_or_default();
        let requester = Requester {
            authority_code: request.requester_authority.clone(),
            authority_kind: request.requester_kind.clone(),
            jurisdiction: request.requester_jurisdiction.clone(),
            user_id: user.user_id,
            role: user.role,
            team: user.team,
        };
        let facts = RecordFacts::of(&record, kind, jurisdiction, &Default::default());
        let decision = policies.decide(
            &requester,
            &facts,
            purpose.as_str(),
            Utc::now().timestamp(),
            false,
        );
        if decision.level == Level::Detail {
            Ok(record)
        } else {
            Err(format!(
                "this authority's policy gives that requester {} only",
                decision.level.as_str()
            ))
        }
    }
}
