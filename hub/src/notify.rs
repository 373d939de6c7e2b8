//! Telling authorities what they must know: accesses to their records (for
//! the relationship types configured for access notifications, and every
//! break glass) and revocations of records their users were shown.
//!
//! A notification is stored first (an access's in the same commit as the
//! query's audit entry), then delivered over the authority's agent link, and resent on every link until the agent acknowledges it
//! (see `grpc::link`). Storing wakes every link on this hub at once; a link
//! also looks again every [`RESEND_INTERVAL`], which picks up what another
//! replica stored and what an earlier link left unacknowledged.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::audit::{AuditEntry, AuditKind, AuditedRecord};
use crate::error::HubError;
use crate::hub::{Hub, now};

/// How often an open link looks for notifications it has not had acknowledged.
pub const RESEND_INTERVAL: Duration = Duration::from_secs(5);

/// A notification and what it is about: plain records, kept in
/// [`crate::model`].
pub use crate::model::{Notification, NotificationKind};

/// Wakes the links when notifications are stored.
pub use crate::notifier::Notifier;

impl Hub {
    /// Stores notifications for delivery and wakes the links. A failure is
    /// logged and returned; what it concerns is already audited.
    pub async fn notify(&self, notifications: Vec<Notification>) -> Result<(), HubError> {
        if notifications.is_empty() {
            return Ok(());
        }
        self.store.enqueue_notifications(&notifications).await?;
        self.notifier.wake();
        Ok(())
    }

    /// Up to `limit` notifications `authority` has not acknowledged, oldest first.
    pub async fn pending_notifications(
        &self,
        authority: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, HubError> {
        Ok(self.store.pending_notifications(authority, limit).await?)
    }

    /// Records that `authority`'s agent acknowledged a notification, and
    /// audits the delivery. An unknown id, or another authority's, changes
    /// nothing.
    pub async fn notification_delivered(
        &self,
        authority: &str,
        notification_id: &str,
    ) -> Result<(), HubError> {
        let Some(delivered) = self
            .store
            .mark_notification_delivered(authority, notification_id, &now_text())
            .await?
        else {
            return Ok(());
        };
        let mut entry = AuditEntry::new(AuditKind::NotificationDelivered, authority, now());
        entry.reason = format!(
            "{} notification {} delivered",
            delivered.kind.as_str(),
            delivered.notification_id
        );
        entry.query_id = (!delivered.query_id.is_empty()).then(|| delivered.query_id.clone());
        entry.records = vec![AuditedRecord {
            custodian: delivered.custodian.clone(),
            record_id: delivered.record_id.clone(),
            version: 0,
            decision: "delivered".into(),
            decided_by: vec![],
            reason: String::new(),
        }];
        self.audit.append(entry).await?;
        Ok(())
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }
}

fn now_text() -> String {
    let at: DateTime<Utc> = now();
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
