//! `kith.v1.AuditService`: checkpoints, entries and proofs for auditors.

use std::sync::Arc;

use kith_proto::v1 as pb;
use pb::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

use super::{caller, to_status};
use kith_core::ReviewOutcome;
use kith_core::wire::{acting_user_from_wire, acting_user_to_wire};

use crate::break_glass::BreakGlassAccess;
use crate::hub::Hub;
use crate::transparency::TransparencyLog;

pub struct AuditServiceImpl {
    pub hub: Arc<Hub>,
    pub log: Arc<TransparencyLog>,
}

impl AuditServiceImpl {
    async fn signed_size(&self) -> Result<u64, Status> {
        Ok(self.log.latest().await.map_or(0, |c| c.tree_size))
    }
}

fn access_to_wire(a: BreakGlassAccess) -> pb::BreakGlassAccess {
    let review = a.review.as_ref();
    pb::BreakGlassAccess {
        query_id: a.query_id,
        audit_index: a.audit_index,
        user: Some(acting_user_to_wire(&a.user)),
        subject: a.subject,
        reason_code: a.claim.reason.as_str().to_string(),
        justification: a.claim.justification,
        occurred_at: a.occurred_at,
        expires_at: a.expires_at,
        reviewed: review.is_some(),
        reviewed_by: review.map(|r| r.reviewed_by.clone()).unwrap_or_default(),
        review_outcome: review.map_or(pb::BreakGlassReviewOutcome::Unspecified, |r| {
            r.outcome.to_wire()
        }) as i32,
        review_note: review.map(|r| r.note.clone()).unwrap_or_default(),
        reviewed_at: review.map(|r| r.reviewed_at.clone()).unwrap_or_default(),
    }
}

fn proof_to_wire(hashes: Vec<[u8; 32]>) -> Vec<Vec<u8>> {
    hashes.into_iter().map(|h| h.to_vec()).collect()
}

fn bad_size(requested: u64, signed: u64) -> Status {
    Status::invalid_argument(format!(
        "tree_size: {requested} is beyond the latest signed checkpoint ({signed})"
    ))
}

#[tonic::async_trait]
impl AuditService for AuditServiceImpl {
    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        caller(&self.hub, &request).await?;
        let latest = self
            .log
            .latest()
            .await
            .ok_or_else(|| Status::unavailable("no checkpoint has been signed yet"))?;
        Ok(Response::new(pb::GetCheckpointResponse {
            signed_note: latest.note,
            tree_size: latest.tree_size,
            vkey: self.log.vkey(),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let req = request.into_inner();
        let user = acting_user_from_wire(req.acting_user);
        let tree_size = self.signed_size().await?;
        let views = self
            .hub
            .audit_entries(&caller, &user, req.start, req.count, tree_size)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetEntriesResponse {
            entries: views
                .into_iter()
                .map(|v| pb::AuditLogEntry {
                    index: v.index,
                    leaf_hash: v.leaf_hash.to_vec(),
                    withheld: v.entry.is_none(),
                    entry: v.entry.unwrap_or_default(),
                })
                .collect(),
            tree_size,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        caller(&self.hub, &request).await?;
        let req = request.into_inner();
        let signed = self.signed_size().await?;
        if req.tree_size > signed {
            return Err(bad_size(req.tree_size, signed));
        }
        let proof = self
            .log
            .inclusion_proof(req.index, req.tree_size)
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::GetInclusionProofResponse {
            hashes: proof_to_wire(proof),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        caller(&self.hub, &request).await?;
        let req = request.into_inner();
        let signed = self.signed_size().await?;
        if req.to_size > signed {
            return Err(bad_size(req.to_size, signed));
        }
        let proof = self
            .log
            .consistency_proof(req.from_size, req.to_size)
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::GetConsistencyProofResponse {
            hashes: proof_to_wire(proof),
        }))
    }

    async fn list_break_glass(
        &self,
        request: Request<pb::ListBreakGlassRequest>,
    ) -> Result<Response<pb::ListBreakGlassResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let req = request.into_inner();
        let user = acting_user_from_wire(req.acting_user);
        let accesses = self
            .hub
            .list_break_glass(&caller, &user, req.include_reviewed)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListBreakGlassResponse {
            accesses: accesses.into_iter().map(access_to_wire).collect(),
        }))
    }

    async fn review_break_glass(
        &self,
        request: Request<pb::ReviewBreakGlassRequest>,
    ) -> Result<Response<pb::ReviewBreakGlassResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let req = request.into_inner();
        let user = acting_user_from_wire(req.acting_user);
        let outcome = ReviewOutcome::from_wire(req.outcome);
        let audit_index = self
            .hub
            .review_break_glass(&caller, &user, &req.query_id, outcome, &req.note)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ReviewBreakGlassResponse { audit_index }))
    }
}
