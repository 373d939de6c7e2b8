//! Group commit for audit entries.
//!
//! A query may not answer before its audit entry is durable, and each
//! durable commit costs an fsync. Rather than one commit per query, callers
//! hand their entry to one writer task, which takes whatever entries are
//! waiting, commits them together, and tells each caller its index. Under
//! load many queries share one fsync; alone, a query waits for just its own.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::audit::AuditEntry;
use crate::error::HubError;
use crate::notifier::Notifier;
use crate::store::{AuditEffects, Store};

/// Most entries committed together.
const MAX_GROUP: usize = 1024;

type Reply = oneshot::Sender<Result<u64, HubError>>;

/// A handle to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<Batch>,
}

/// One caller's entries, and the effects to store with them (each
/// `audit_index` a position in the caller's entries).
type Batch = (Vec<AuditEntry>, AuditEffects, Reply);

impl AuditWriter {
    /// Starts the writer task for `store`; `notifier` wakes the agent
    /// links when a commit stored notifications. It ends when every handle
    /// is dropped.
    pub fn spawn(
        store: Arc<dyn Store>,
        notifier: Arc<Notifier>,
        conditions: Arc<crate::health::Conditions>,
    ) -> Self {
        let (queue, mut waiting) = mpsc::channel::<Batch>(4 * MAX_GROUP);
        tokio::spawn(async move {
            let mut group: Vec<Batch> = Vec::with_capacity(MAX_GROUP);
            while waiting.recv_many(&mut group, MAX_GROUP).await > 0 {
                let mut entries: Vec<AuditEntry> = Vec::new();
                let mut effects = AuditEffects::default();
                for (batch, own, _) in &group {
                    effects.extend_from(own, entries.len() as u64);
                    entries.extend(batch.iter().cloned());
                }
                let started = std::time::Instant::now();
                let appended = store.append_audit_with(&entries, &effects).await;
                crate::metrics::audit_append(started.elapsed(), entries.len());
                conditions.store_write(&appended);
                match appended {
                    Ok(first) => {
                        if !effects.notifications.is_empty() {
                            notifier.wake();
                        }
                        // Each caller's entries are consecutive, in order.
                        let mut next = first;
                        for (batch, _, reply) in group.drain(..) {
                            let _ = reply.send(Ok(next));
                            next += batch.len() as u64;
                        }
                    }
                    Err(e) => {
                        crate::metrics::store_error();
                        tracing::error!(error = %e, entries = group.len(), "audit append failed");
                        for (_, _, reply) in group.drain(..) {
                            let _ = reply.send(Err(HubError::Unavailable(
                                "the audit log cannot be written".into(),
                            )));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Appends `entry` and returns its index once it is durable.
    pub async fn append(&self, entry: AuditEntry) -> Result<u64, HubError> {
        self.append_all(vec![entry]).await
    }

    /// Appends `entries` with consecutive indexes, in the same commit, and
    /// returns the first index once they are durable.
    pub async fn append_all(&self, entries: Vec<AuditEntry>) -> Result<u64, HubError> {
        self.append_with(entries, AuditEffects::default()).await
    }

    /// Appends `entries` as [`AuditWriter::append_all`] does, and stores
    /// `effects` (notifications, break-glass accesses) in the same commit:
    /// each one's `audit_index` is read as a position in `entries` and
    /// stored as that entry's index. The effects are never stored without
    /// their entries, nor the entries without them.
    pub async fn append_with(
        &self,
        entries: Vec<AuditEntry>,
        effects: AuditEffects,
    ) -> Result<u64, HubError> {
        let (reply, answer) = oneshot::channel();
        let closed = || HubError::Unavailable("the audit log writer has stopped".into());
        self.queue
            .send((entries, effects, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}
