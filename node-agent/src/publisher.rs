//! Delivering the outbox to the hub.
//!
//! The publisher takes pending records oldest first, in batches, and sends
//! each batch with `RecordService/PublishRecords`. The hub answers each record
//! on its own: accepted, unchanged or stale mean the hub has it (or newer) and
//! the row is marked delivered; rejected or permission denied are permanent
//! and the row is marked rejected with the hub's field errors, never retried.
//!
//! When the call itself fails (the hub is down, the network is, a deadline
//! passed) nothing is marked: the whole batch is retried after an
//! exponential, jittered backoff, at the next hub address; when the hub
//! refuses the agent itself (PermissionDenied, Unauthenticated), at the
//! maximum delay straight away. Publishing is
//! idempotent at the hub, so a batch sent twice (say the agent crashed after
//! the hub committed but before the rows were marked) does no harm.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kith_core::wire::record_to_wire;
use kith_proto::v1 as pb;
use pb::record_service_client::RecordServiceClient;
use tokio::sync::{Notify, watch};

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::hub_client::{HubConnector, HubError, describe, is_refusal, is_transient};
use crate::outbox::{DeliveryOutcome, Outbox, OutboxEntry, OutboxError, OutboxId};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("hub at {address} refused the batch: {status}")]
    Call {
        address: String,
        code: tonic::Code,
        status: String,
        transient: bool,
    },
    #[error("hub at {address} answered {got} results for {sent} records")]
    Mismatch {
        address: String,
        sent: usize,
        got: usize,
    },
}

/// What became of one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub accepted: usize,
    pub unchanged: usize,
    pub stale: usize,
    pub rejected: usize,
}

impl BatchOutcome {
    pub fn total(&self) -> usize {
        self.accepted + self.unchanged + self.stale + self.rejected
    }
}

/// Sends the outbox to the hub.
pub struct Publisher {
    outbox: Outbox,
    hub: HubConnector,
    batch_size: usize,
    poll_interval: Duration,
    backoff: Backoff,
}

impl Publisher {
    pub fn new(config: &AgentConfig, outbox: Outbox) -> Result<Self, PublishError> {
        Ok(Self {
            outbox,
            hub: HubConnector::new(config, Some(config.request_timeout()))?,
            batch_size: config.publish.batch_size,
            poll_interval: config.poll_interval(),
            backoff: Backoff::new(
                Duration::from_millis(config.publish.backoff_initial_ms),
                Duration::from_millis(config.publish.backoff_max_ms),
            ),
        })
    }

    /// Sends one batch, if anything is pending, and marks its rows. `Ok(None)`
    /// when the outbox has nothing pending.
    pub async fn publish_once(&mut self) -> Result<Option<BatchOutcome>, PublishError> {
        let batch = self.outbox.next_batch(self.batch_size).await?;
        if batch.is_empty() {
            return Ok(None);
        }
        let (address, channel) = self.hub.channel().await?;
        let request = pb::PublishRecordsRequest {
            records: batch.iter().map(|e| record_to_wire(&e.record)).collect(),
        };
        let response = RecordServiceClient::new(channel)
            .publish_records(request)
            .await
            .map_err(|status| PublishError::Call {
                address: address.clone(),
                code: status.code(),
                transient: is_transient(&status),
                status: format!("{:?}: {}", status.code(), status.message()),
            })?
            .into_inner();
        if response.results.len() != batch.len() {
            return Err(PublishError::Mismatch {
                address,
                sent: batch.len(),
                got: response.results.len(),
            });
        }
        // The hub answered: whatever went wrong before is no longer current.
        self.outbox.record_attempt_success().await?;
        let outcome = self.apply_results(&batch, response.results).await?;
        tracing::info!(hub = %address, accepted = outcome.accepted, unchanged = outcome.unchanged,
            stale = outcome.stale, rejected = outcome.rejected, "published a batch");
        Ok(Some(outcome))
    }

    /// Marks each row as the hub answered it. Results are matched by record
    /// id and version (the hub answers in request order, but a mismatch must
    /// not mark the wrong row); a record the hub did not answer stays pending.
    async fn apply_results(
        &self,
        batch: &[OutboxEntry],
        results: Vec<pb::PublishResult>,
    ) -> Result<BatchOutcome, PublishError> {
        let ids: HashMap<(&str, u64), OutboxId> = batch
            .iter()
            .map(|e| ((e.record.record_id.as_str(), e.record.version), e.id))
            .collect();
        let mut delivered: HashMap<DeliveryOutcome, Vec<OutboxId>> = HashMap::new();
        let mut outcome = BatchOutcome::default();
        for result in results {
            let Some(&id) = ids.get(&(result.record_id.as_str(), result.version)) else {
                tracing::warn!(record_id = %result.record_id, version = result.version,
                    "hub answered for a record not in the batch; ignoring");
                continue;
            };
            let reason = || {
                if result.errors.is_empty() {
                    "refused by the hub (no reason given)".to_string()
                } else {
                    result
                        .errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            };
            match pb::PublishOutcome::try_from(result.outcome) {
                Ok(pb::PublishOutcome::Accepted) => {
                    outcome.accepted += 1;
                    delivered
                        .entry(DeliveryOutcome::Accepted)
                        .or_default()
                        .push(id);
                }
                Ok(pb::PublishOutcome::Unchanged) => {
                    outcome.unchanged += 1;
                    delivered
                        .entry(DeliveryOutcome::Unchanged)
                        .or_default()
                        .push(id);
                }
                Ok(pb::PublishOutcome::Stale) => {
                    outcome.stale += 1;
                    delivered
                        .entry(DeliveryOutcome::Stale)
                        .or_default()
                        .push(id);
                }
                Ok(pb::PublishOutcome::Rejected) => {
                    outcome.rejected += 1;
                    let reason = reason();
                    tracing::warn!(record_id = %result.record_id, version = result.version, %reason, "hub rejected a record");
                    self.outbox.mark_rejected(id, &reason).await?;
                }
                Ok(pb::PublishOutcome::PermissionDenied) => {
                    outcome.rejected += 1;
                    let reason = format!("permission denied: {}", reason());
                    tracing::warn!(record_id = %result.record_id, version = result.version, %reason, "hub refused a record");
                    self.outbox.mark_rejected(id, &reason).await?;
                }
                Ok(pb::PublishOutcome::Unspecified) | Err(_) => {
                    // An answer this build does not understand: leave the row
                    // pending rather than guess.
                    tracing::warn!(record_id = %result.record_id, outcome = result.outcome,
                        "hub gave an unknown publish outcome; the record stays pending");
                }
            }
        }
        for (kind, ids) in delivered {
            self.outbox.mark_delivered(&ids, kind).await?;
        }
        Ok(outcome)
    }

    /// Publishes until `shutdown` turns true. Wakes when `enqueued` is
    /// notified, else polls. A batch in flight is finished before stopping.
    pub async fn run(mut self, enqueued: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(hub = %self.hub.current_address(), "publisher started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let wait = match self.publish_once().await {
                Ok(Some(batch)) if batch.total() > 0 => {
                    self.backoff.reset();
                    continue;
                }
                // Nothing pending, or nothing the hub answered could be marked.
                Ok(_) => None,
                Err(e) => {
                    let message = match &e {
                        PublishError::Hub(h) => describe(h),
                        other => other.to_string(),
                    };
                    let refused =
                        matches!(&e, PublishError::Call { code, .. } if is_refusal(*code));
                    let delay = if refused {
                        self.backoff.refused()
                    } else {
                        self.backoff.next_delay()
                    };
                    match &e {
                        PublishError::Call { .. } if refused => {
                            tracing::error!(error = %message, retry_in_ms = delay.as_millis() as u64,
                                "the hub refuses this agent; retrying at the longest backoff (check the certificate and the federation's member list)");
                        }
                        PublishError::Call {
                            transient: false, ..
                        }
                        | PublishError::Mismatch { .. } => {
                            tracing::error!(error = %message, retry_in_ms = delay.as_millis() as u64,
                                "publish failed; will retry (the hub or this agent's set-up needs attention)");
                        }
                        _ => {
                            tracing::warn!(error = %message, retry_in_ms = delay.as_millis() as u64,
                            failures = self.backoff.failures(), "publish failed; will retry")
                        }
                    }
                    if let Err(e) = self.outbox.record_attempt_error(&message).await {
                        tracing::error!(error = %e, "cannot record the publish error");
                    }
                    if !matches!(e, PublishError::Outbox(_)) {
                        self.hub.fail_over();
                    }
                    Some(delay)
                }
            };
            let sleep = wait.unwrap_or(self.poll_interval);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                // Only an idle publisher wakes early; a backing-off one waits.
                _ = enqueued.notified(), if wait.is_none() => {}
                _ = crate::agent::stopped(&mut shutdown) => break,
            }
        }
        tracing::info!("publisher stopped");
    }
}
