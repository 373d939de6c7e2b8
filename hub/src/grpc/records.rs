//! `kith.v1.RecordService`: publish, end and withdraw.

use std::sync::Arc;

use chrono::Utc;
use kith_core::validate::check_identifier;
use kith_core::wire::{field_errors_to_wire, parse_date, record_from_wire};
use kith_core::{FieldError, WithdrawReason};
use kith_proto::v1 as pb;
use pb::record_service_server::RecordService;
use tonic::{Request, Response, Status};

use super::{caller, to_status};
use crate::directives::DirectiveCandidate;
use crate::error::HubError;
use crate::hub::Hub;
use crate::publish::{Candidate, PublishOutcome};
use crate::store::RecordKey;

pub struct RecordServiceImpl {
    pub hub: Arc<Hub>,
}

fn outcome_to_wire(o: PublishOutcome) -> pb::PublishOutcome {
    match o {
        PublishOutcome::Accepted => pb::PublishOutcome::Accepted,
        PublishOutcome::Unchanged => pb::PublishOutcome::Unchanged,
        PublishOutcome::Stale => pb::PublishOutcome::Stale,
        PublishOutcome::Rejected => pb::PublishOutcome::Rejected,
        PublishOutcome::PermissionDenied => pb::PublishOutcome::PermissionDenied,
    }
}

fn record_key(r: Option<pb::RecordRef>) -> Result<RecordKey, Status> {
    let r = r.unwrap_or_default();
    let mut errors = Vec::new();
    check_identifier(
        "record.custodian",
        &r.custodian,
        kith_core::validate::MAX_CODE_LEN,
        &mut errors,
    );
    check_identifier(
        "record.record_id",
        &r.record_id,
        kith_core::validate::MAX_ID_LEN,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(to_status(HubError::InvalidArgument(errors)));
    }
    Ok(RecordKey {
        custodian: r.custodian,
        record_id: r.record_id,
    })
}

/// Runs a write to its end on a task of its own, even if the caller hangs
/// up meanwhile. tonic drops a handler's future when its client resets the
/// stream; a store write dropped half-way (between sqlx's `BEGIN` and the
/// transaction guard it returns) leaves a pooled SQLite connection counted
/// as inside a transaction, and every later write on that connection then
/// fails ("begin_with at non-zero transaction depth") until the hub
/// restarts. Found by killing agents mid-publish
/// (node-agent/tests/kill_during_ingest.rs, tests/tests/faults.rs).
async fn to_completion<T: Send + 'static>(
    write: impl std::future::Future<Output = Result<T, HubError>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(write)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a write task failed");
            Status::internal("internal error")
        })?
        .map_err(to_status)
}

#[tonic::async_trait]
impl RecordService for RecordServiceImpl {
    async fn publish_records(
        &self,
        request: Request<pb::PublishRecordsRequest>,
    ) -> Result<Response<pb::PublishRecordsResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let today = Utc::now().date_naive();
        let candidates = request
            .into_inner()
            .records
            .into_iter()
            .map(|r| Candidate {
                custodian: r.custodian.clone(),
                record_id: r.record_id.clone(),
                version: r.version,
                parsed: record_from_wire(r, today),
            })
            .collect();
        let hub = self.hub.clone();
        let results = to_completion(async move { hub.publish(&caller, candidates).await }).await?;
        Ok(Response::new(pb::PublishRecordsResponse {
            results: results
                .into_iter()
                .map(|r| pb::PublishResult {
                    record_id: r.record_id,
                    version: r.version,
                    outcome: outcome_to_wire(r.outcome) as i32,
                    errors: field_errors_to_wire(&r.errors),
                    audit_index: r.audit_index,
                })
                .collect(),
        }))
    }

    async fn end_record(
        &self,
        request: Request<pb::EndRecordRequest>,
    ) -> Result<Response<pb::EndRecordResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let req = request.into_inner();
        let key = record_key(req.record)?;
        let mut errors = Vec::new();
        let end = parse_date("end", &req.end, &mut errors);
        let Some(end) = end else {
            if errors.is_empty() {
                errors.push(FieldError::new("end", "is required"));
            }
            return Err(to_status(HubError::InvalidArgument(errors)));
        };
        let hub = self.hub.clone();
        let audit_index =
            to_completion(async move { hub.end_record(&caller, key, end).await }).await?;
        Ok(Response::new(pb::EndRecordResponse { audit_index }))
    }

    async fn withdraw_record(
        &self,
        request: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::WithdrawRecordResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let req = request.into_inner();
        let key = record_key(req.record)?;
        let reason = WithdrawReason::from_wire(req.reason).ok_or_else(|| {
            to_status(HubError::InvalidArgument(vec![FieldError::new(
                "reason",
                "is required",
            )]))
        })?;
        let hub = self.hub.clone();
        let audit_index =
            to_completion(async move { hub.withdraw_record(&caller, key, reason).await }).await?;
        Ok(Response::new(pb::WithdrawRecordResponse { audit_index }))
    }

    async fn publish_directives(
        &self,
        request: Request<pb::PublishDirectivesRequest>,
    ) -> Result<Response<pb::PublishDirectivesResponse>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let candidates = request
            .into_inner()
            .directives
            .into_iter()
            .map(|d| DirectiveCandidate {
                custodian: d.custodian.clone(),
                directive_id: d.directive_id.clone(),
                version: d.version,
                parsed: kith_core::wire::directive_from_wire(d),
            })
            .collect();
        let hub = self.hub.clone();
        let results =
            to_completion(async move { hub.publish_directives(&caller, candidates).await }).await?;
        Ok(Response::new(pb::PublishDirectivesResponse {
            results: results
                .into_iter()
                .map(|r| pb::DirectiveResult {
                    directive_id: r.directive_id,
                    version: r.version,
                    outcome: outcome_to_wire(r.outcome) as i32,
                    errors: field_errors_to_wire(&r.errors),
                    audit_index: r.audit_index,
                })
                .collect(),
        }))
    }
}
