//! Retention: records past their `retain_until` date are deleted.
//!
//! Queries already leave out a record whose date has passed; the purge job
//! then deletes it (and its directives) from the store, one audit entry per
//! record in the same transaction. The audit log keeps what was done with
//! the record while it was held. It runs when the hub starts and then on
//! the configured interval, on every replica (a purge is idempotent).

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::{AuditEntry, AuditKind, AuditedRecord};
use crate::error::HubError;
use crate::hub::{Hub, now};
use crate::store::RecordKey;

/// The authority named on purge entries: the hub itself.
pub const HUB_ACTOR: &str = "kith-hub";

impl Hub {
    /// Deletes every record whose retention ended before `today`; returns
    /// how many.
    pub async fn purge_expired(&self, today: NaiveDate) -> Result<usize, HubError> {
        let mut total = 0;
        loop {
            let audit = |key: &RecordKey| {
                let mut entry = AuditEntry::new(AuditKind::Purge, HUB_ACTOR, now());
                entry.reason = format!("retention ended before {today}");
                entry.records = vec![AuditedRecord {
                    custodian: key.custodian.clone(),
                    record_id: key.record_id.clone(),
                    version: 0,
                    decision: "purged".into(),
                    decided_by: vec![],
                    reason: String::new(),
                }];
                entry
            };
            let purged = self.store.purge_expired(today, &audit).await?;
            for (key, index) in &purged {
                tracing::info!(custodian = %key.custodian, record = %key.record_id, audit_index = index, "record purged: retention ended");
            }
            total += purged.len();
            // The store purges at most 1,000 a call.
            if purged.len() < 1000 {
                return Ok(total);
            }
        }
    }
}

/// Runs the purge now and then every `interval` until `stop` turns true.
pub fn spawn(hub: Arc<Hub>, interval: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = hub.purge_expired(now().date_naive()).await {
                tracing::error!(error = %e, "retention purge failed; will try again");
            }
        }
    })
}
