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
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use kith_core::{Purpose, RelationshipType};
use kith_policy::Level;

use crate::audit::{AuditEntry, AuditKind, AuditedRecord};
use crate::error::HubError;
use crate::hub::{Hub, now};

/// How often an open link looks for notifications it has not had acknowledged.
pub const RESEND_INTERVAL: Duration = Duration::from_secs(5);

/// What a notification is about (one vocabulary for hub and agent).
pub use kith_core::NotificationKind;

/// One notification to one authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub notification_id: String,
    /// Who is told.
    pub recipient: String,
    pub kind: NotificationKind,
    /// RFC 3339 UTC.
    pub occurred_at: String,
    pub custodian: String,
    pub record_id: String,
    /// `None` only when a revoked record could not be read back.
    #[serde(default, with = "blank_is_none")]
    pub relationship_type: Option<RelationshipType>,
    /// Access and break glass: who looked, and why.
    #[serde(default)]
    pub accessor_authority: String,
    #[serde(default)]
    pub accessor_authority_name: String,
    #[serde(default)]
    pub accessor_user_id: String,
    #[serde(default)]
    pub accessor_display_name: String,
    #[serde(default)]
    pub accessor_role: String,
    #[serde(default)]
    pub accessor_team: String,
    /// Access and break glass: the purpose asked for (stored as its code,
    /// empty for a revocation).
    #[serde(default, with = "blank_is_none")]
    pub purpose: Option<Purpose>,
    /// Access and break glass: the level disclosed.
    #[serde(default, with = "blank_is_none")]
    pub level: Option<Level>,
    #[serde(default)]
    pub query_id: String,
    /// Break glass: the reason given. Revocation: why the record was revoked.
    #[serde(default)]
    pub reason: String,
    /// The audit entry recording what this is about.
    pub audit_index: u64,
}

impl Notification {
    /// A new notification of `kind` to `recipient` about one record, with a
    /// fresh id, stamped now.
    pub fn new(
        kind: NotificationKind,
        recipient: &str,
        custodian: &str,
        record_id: &str,
        relationship_type: Option<RelationshipType>,
        audit_index: u64,
    ) -> Self {
        Self {
            notification_id: format!("{:032x}", rand::random::<u128>()),
            recipient: recipient.to_string(),
            kind,
            occurred_at: now().to_rfc3339_opts(SecondsFormat::Millis, true),
            custodian: custodian.to_string(),
            record_id: record_id.to_string(),
            relationship_type,
            accessor_authority: String::new(),
            accessor_authority_name: String::new(),
            accessor_user_id: String::new(),
            accessor_display_name: String::new(),
            accessor_role: String::new(),
            accessor_team: String::new(),
            purpose: None,
            level: None,
            query_id: String::new(),
            reason: String::new(),
            audit_index,
        }
    }
}

/// An optional code stored as its spelling, or as "" when absent (the form
/// notifications have always been stored in).
mod blank_is_none {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// Wakes the links when notifications are stored.
#[derive(Debug)]
pub struct Notifier {
    stored: watch::Sender<u64>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            stored: watch::channel(0).0,
        }
    }
}

impl Notifier {
    /// A receiver that changes each time notifications are stored here.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.stored.subscribe()
    }

    pub(crate) fn wake(&self) {
        self.stored.send_modify(|n| *n = n.wrapping_add(1));
    }
}

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
