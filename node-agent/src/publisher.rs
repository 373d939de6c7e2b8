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
//!
//! Sharing directives go the same way with `RecordService/PublishDirectives`,
//! after the records: each round sends a batch of records, then a batch of
//! the directives whose records have all left `pending`
//! ([`Outbox::next_directive_batch`]), so the hub never hears of a directive
//! before the record it governs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kith_core::wire::directive_to_wire;
use kith_core::wire::record_to_wire;
use kith_proto::v1 as pb;
use pb::record_service_client::RecordServiceClient;
use tokio::sync::{Notify, watch};

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::hub_client::{HubConnector, HubError, describe, is_refusal, is_transient};
use crate::outbox::{DIRECTIVES, DeliveryOutcome, Outbox, OutboxError, OutboxId, Queue, RECORDS};

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
    #[error("hub at {address} answered {got} results for {sent} {what}")]
    Mismatch {
        address: String,
        what: &'static str,
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

    fn add(&mut self, other: &BatchOutcome) {
        self.accepted += other.accepted;
        self.unchanged += other.unchanged;
        self.stale += other.stale;
        self.rejected += other.rejected;
    }
}

/// The hub's answer for one record or directive.
struct Answer {
    id: String,
    version: u64,
    outcome: i32,
    errors: Vec<pb::FieldError>,
}

impl From<pb::PublishResult> for Answer {
    fn from(r: pb::PublishResult) -> Self {
        Self {
            id: r.record_id,
            version: r.version,
            outcome: r.outcome,
            errors: r.errors,
        }
    }
}

impl From<pb::DirectiveResult> for Answer {
    fn from(r: pb::DirectiveResult) -> Self {
        Self {
            id: r.directive_id,
            version: r.version,
            outcome: r.outcome,
            errors: r.errors,
        }
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

fn call_error(address: &str, status: tonic::Status) -> PublishError {
    PublishError::Call {
        address: address.to_string(),
        code: status.code(),
        transient: is_transient(&status),
        status: format!("{:?}: {}", status.code(), status.message()),
    }
}

impl Publisher {
    /// Each connection it dials uses `tls` as it stands at that moment.
    pub fn new(
        config: &AgentConfig,
        outbox: Outbox,
        tls: crate::tls::HubTls,
    ) -> Result<Self, PublishError> {
        Ok(Self {
            outbox,
            hub: HubConnector::with_tls(config, Some(config.request_timeout()), tls)?,
            batch_size: config.publish.batch_size,
            poll_interval: config.poll_interval(),
            backoff: Backoff::new(
                Duration::from_millis(config.publish.backoff_initial_ms),
                Duration::from_millis(config.publish.backoff_max_ms),
            ),
        })
    }

    /// Sends one batch of records, if any is pending, then one of the
    /// directives that may go, and marks their rows. `Ok(None)` when nothing
    /// was sent.
    pub async fn publish_once(&mut self) -> Result<Option<BatchOutcome>, PublishError> {
        let records = self.publish_records().await?;
        let directives = self.publish_directives().await?;
        Ok(match (records, directives) {
            (None, None) => None,
            (a, b) => {
                let mut total = a.unwrap_or_default();
                total.add(&b.unwrap_or_default());
                Some(total)
            }
        })
    }

    async fn publish_records(&mut self) -> Result<Option<BatchOutcome>, PublishError> {
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
            .map_err(|status| call_error(&address, status))?
            .into_inner();
        let answers = response.results.into_iter().map(Answer::from).collect();
        let ids = batch
            .iter()
            .map(|e| ((e.record.record_id.clone(), e.record.version), e.id))
            .collect();
        self.apply(RECORDS, &address, ids, answers).await.map(Some)
    }

    async fn publish_directives(&mut self) -> Result<Option<BatchOutcome>, PublishError> {
        let batch = self.outbox.next_directive_batch(self.batch_size).await?;
        if batch.is_empty() {
            return Ok(None);
        }
        let (address, channel) = self.hub.channel().await?;
        let request = pb::PublishDirectivesRequest {
            directives: batch
                .iter()
                .map(|e| directive_to_wire(&e.directive))
                .collect(),
        };
        let response = RecordServiceClient::new(channel)
            .publish_directives(request)
            .await
            .map_err(|status| call_error(&address, status))?
            .into_inner();
        let answers = response.results.into_iter().map(Answer::from).collect();
        let ids = batch
            .iter()
            .map(|e| {
                (
                    (e.directive.directive_id.clone(), e.directive.version),
                    e.id,
                )
            })
            .collect();
        self.apply(DIRECTIVES, &address, ids, answers)
            .await
            .map(Some)
    }

    /// Checks the hub answered the whole batch, then marks its rows.
    async fn apply(
        &self,
        queue: Queue,
        address: &str,
        ids: HashMap<(String, u64), OutboxId>,
        answers: Vec<Answer>,
    ) -> Result<BatchOutcome, PublishError> {
        if answers.len() != ids.len() {
            return Err(PublishError::Mismatch {
                address: address.to_string(),
                what: if queue == RECORDS {
                    "records"
                } else {
                    "directives"
                },
                sent: ids.len(),
                got: answers.len(),
            });
        }
        // The hub answered: whatever went wrong before is no longer current.
        self.outbox.record_attempt_success().await?;
        let outcome = self.apply_results(queue, &ids, answers).await?;
        let what = if queue == RECORDS {
            "records"
        } else {
            "directives"
        };
        crate::metrics::delivered(
            what,
            outcome.accepted as u64,
            outcome.unchanged as u64,
            outcome.stale as u64,
            outcome.rejected as u64,
        );
        tracing::info!(hub = %address, what, accepted = outcome.accepted, unchanged = outcome.unchanged,
            stale = outcome.stale, rejected = outcome.rejected, "published a batch");
        Ok(outcome)
    }

    /// Marks each row as the hub answered it. Results are matched by id and
    /// version (the hub answers in request order, but a mismatch must not
    /// mark the wrong row); an item the hub did not answer stays pending.
    async fn apply_results(
        &self,
        queue: Queue,
        ids: &HashMap<(String, u64), OutboxId>,
        answers: Vec<Answer>,
    ) -> Result<BatchOutcome, PublishError> {
        let mut delivered: HashMap<DeliveryOutcome, Vec<OutboxId>> = HashMap::new();
        let mut outcome = BatchOutcome::default();
        for result in answers {
            let Some(&id) = ids.get(&(result.id.clone(), result.version)) else {
                tracing::warn!(id = %result.id, version = result.version,
                    "hub answered for an item not in the batch; ignoring");
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
            let kind = match pb::PublishOutcome::try_from(result.outcome) {
                Ok(pb::PublishOutcome::Accepted) => {
                    outcome.accepted += 1;
                    DeliveryOutcome::Accepted
                }
                Ok(pb::PublishOutcome::Unchanged) => {
                    outcome.unchanged += 1;
                    DeliveryOutcome::Unchanged
                }
                Ok(pb::PublishOutcome::Stale) => {
                    outcome.stale += 1;
                    DeliveryOutcome::Stale
                }
                Ok(pb::PublishOutcome::Rejected) => {
                    outcome.rejected += 1;
                    let reason = reason();
                    tracing::warn!(queue = queue.noun(), id = %result.id, version = result.version, %reason,
                        "hub rejected a {}", queue.noun());
                    self.outbox.mark_rejected_in(queue, id, &reason).await?;
                    continue;
                }
                Ok(pb::PublishOutcome::PermissionDenied) => {
                    outcome.rejected += 1;
                    let reason = format!("permission denied: {}", reason());
                    tracing::warn!(queue = queue.noun(), id = %result.id, version = result.version, %reason,
                        "hub refused a {}", queue.noun());
                    self.outbox.mark_rejected_in(queue, id, &reason).await?;
                    continue;
                }
                Ok(pb::PublishOutcome::Unspecified) | Err(_) => {
                    // An answer this build does not understand: leave the row
                    // pending rather than guess.
                    tracing::warn!(id = %result.id, outcome = result.outcome,
                        "hub gave an unknown publish outcome; the item stays pending");
                    continue;
                }
            };
            delivered.entry(kind).or_default().push(id);
        }
        for (kind, ids) in delivered {
            self.outbox.mark_delivered_in(queue, &ids, kind).await?;
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
                    crate::metrics::delivery_failed();
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
