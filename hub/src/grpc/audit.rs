//! `kith.v1.AuditService`: checkpoints, entries and proofs for auditors.

use std::sync::Arc;

use kith_proto::v1 as pb;
use pb::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

use super::{caller, to_status};
use crate::disclosure::ActingUser;
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
        let user = req.acting_user.unwrap_or_default();
        let user = ActingUser {
            user_id: user.user_id,
            display_name: user.display_name,
            role: user.role,
            team: user.team,
        };
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
}
