//! Notifications from the hub, as this authority keeps and shows them.
//!
//! The hub tells an authority when one of its records is accessed (for the
//! record types its agreements name, and always under break glass), and
//! when a record its users received was revoked by its custodian. Each
//! arrives over the link ([`crate::link`]), is stored here, in the agent's
//! database (`notifications` table, one row per notification id, so a
//! resent one is stored once), and only then acknowledged. [`crate::notify`]
//! delivers it to the operator's sinks; `kith-agent notifications` lists
//! them from here.

use std::fmt::Write as _;

use chrono::Utc;
use kith_core::{Purpose, RelationshipType};
use kith_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::outbox::{Outbox, OutboxError};
use crate::table::{or_dash, table};
use crate::terminal::escape;

/// What a notification is about: one vocabulary with the hub's.
pub use kith_core::NotificationKind;

/// The member of staff who looked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accessor {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub team: String,
}

/// One notification, as stored, written to the file sink and POSTed to the
/// webhook (one JSON object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The hub's id; the same when resent.
    pub notification_id: String,
    pub kind: NotificationKind,
    /// When it happened (RFC 3339, as the hub sent it).
    pub occurred_at: String,
    /// The record's custodian and id.
    pub custodian: String,
    pub record_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_type: Option<String>,
    /// Access and break glass: which organisation looked (code and name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub accessor_authority: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub accessor_authority_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessor: Option<Accessor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The level disclosed: detail, summary or withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_id: String,
    /// Break glass: reason code and justification. Revocation: why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The hub's audit entry for what this is about.
    pub audit_index: u64,
    /// Subscription notices: the subscription that asked for it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subscription_id: String,
    /// Subscription notices: started, changed, ended or withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// Subscription notices: the relationship as this authority may see it
    /// (cut by the hub to `level`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Relationship>,
    /// One sentence for people.
    pub message: String,
}

/// What a subscription notice shows of another authority's relationship:
/// who, the service, how to reach them; the period only at detail level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Relationship {
    pub custodian_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_worker: Option<ContactPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_hours: Option<ContactPoint>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub period_start: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub period_end: String,
}

/// A contact as a subscription notice carries it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactPoint {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
}

fn contact_point(c: Option<pb::Contact>) -> Option<ContactPoint> {
    c.map(|c| ContactPoint {
        name: c.name,
        role: c.role,
        phone: c.phone,
        email: c.email,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("notification from the hub without an id; it cannot be acknowledged")]
    NoId,
    #[error("notification {0}: unknown kind {1}")]
    UnknownKind(String, i32),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("notification store: {0}")]
    Sql(#[from] sqlx::Error),
}

fn level_name(level: i32) -> Option<String> {
    match pb::DisclosureLevel::try_from(level).ok()? {
        pb::DisclosureLevel::Detail => Some("detail".into()),
        pb::DisclosureLevel::Summary => Some("summary".into()),
        pb::DisclosureLevel::Withheld => Some("withheld".into()),
        pb::DisclosureLevel::Unspecified => None,
    }
}

impl Notification {
    /// From the wire. Refused only without an id or with a kind this build
    /// does not know; other missing fields are shown as missing.
    pub fn from_wire(n: pb::Notification) -> Result<Self, NotificationError> {
        if n.notification_id.trim().is_empty() {
            return Err(NotificationError::NoId);
        }
        let kind = NotificationKind::from_wire(n.kind)
            .ok_or_else(|| NotificationError::UnknownKind(n.notification_id.clone(), n.kind))?;
        let record = n.record.unwrap_or_default();
        let mut notification = Self {
            notification_id: n.notification_id,
            kind,
            occurred_at: n.occurred_at,
            custodian: record.custodian,
            record_id: record.record_id,
            relationship_type: RelationshipType::from_wire(n.relationship_type)
                .map(|t| t.as_str().to_string()),
            accessor_authority: n.accessor_authority,
            accessor_authority_name: n.accessor_authority_name,
            accessor: n.accessor.map(|a| Accessor {
                user_id: a.user_id,
                display_name: a.display_name,
                role: a.role,
                team: a.team,
            }),
            purpose: Purpose::from_wire(n.purpose).map(|p| p.as_str().to_string()),
            level: level_name(n.level),
            query_id: n.query_id,
            reason: n.reason,
            audit_index: n.audit_index,
            subscription_id: n.subscription_id,
            change: kith_core::SubscriptionChange::from_wire(n.change)
                .map(|c| c.as_str().to_string()),
            relationship: n.disclosed.map(|d| {
                let r = d.record.unwrap_or_default();
                let period = r.period.unwrap_or_default();
                Relationship {
                    custodian_name: d.custodian_name,
                    service: r.service,
                    key_worker: contact_point(r.key_worker),
                    out_of_hours: contact_point(r.out_of_hours),
                    period_start: period.start,
                    period_end: period.end,
                }
            }),
            message: String::new(),
        };
        notification.message = notification.sentence();
        Ok(notification)
    }

    /// Who looked, e.g. "Dr A. Rahman (a.rahman, ed_clinician)".
    pub fn who(&self) -> String {
        match &self.accessor {
            None => "unknown user".into(),
            Some(a) if a.display_name.is_empty() => format!("{} ({})", a.user_id, a.role),
            Some(a) => format!("{} ({}, {})", a.display_name, a.user_id, a.role),
        }
    }

    /// Which organisation looked, e.g. "Manchester University NHS FT (R0A)".
    pub fn organisation(&self) -> String {
        match (
            self.accessor_authority_name.as_str(),
            self.accessor_authority.as_str(),
        ) {
            ("", "") => "unknown organisation".into(),
            ("", code) => code.into(),
            (name, "") => name.into(),
            (name, code) => format!("{name} ({code})"),
        }
    }

    fn record_phrase(&self) -> String {
        match &self.relationship_type {
            Some(t) => format!("record {} ({})", self.record_id, t.replace('_', " ")),
            None => format!("record {}", self.record_id),
        }
    }

    /// The notification in one sentence.
    pub fn sentence(&self) -> String {
        let seen = || {
            // A withheld record was not seen: they were told it exists.
            let what = match self.level.as_deref() {
                Some("withheld") => format!("was told of your {} (withheld)", self.record_phrase()),
                Some(level) => format!("saw your {} at {level} level", self.record_phrase()),
                None => format!("reached your {} at an unknown level", self.record_phrase()),
            };
            format!(
                "{} at {} {what} for {} (query {})",
                self.who(),
                self.organisation(),
                self.purpose.as_deref().unwrap_or("an unknown purpose"),
                if self.query_id.is_empty() {
                    "?"
                } else {
                    &self.query_id
                }
            )
        };
        match self.kind {
            NotificationKind::Access => seen(),
            NotificationKind::BreakGlass => {
                format!("BREAK GLASS: {}; reason: {}", seen(), or_none(&self.reason))
            }
            NotificationKind::Revocation => format!(
                "record {} of custodian {} was revoked ({}): stop relying on it",
                self.record_id,
                self.custodian,
                or_none(&self.reason)
            ),
            NotificationKind::Subscription => self.subscription_sentence(),
        }
    }

    /// A subscription notice in one sentence, e.g. "Manchester City Council
    /// (E08000003) started a child protection plan (record cpp-1) with a
    /// person you subscribed for (subscription sub-…); summary level;
    /// key worker: J. Smith 0161 000 0000".
    fn subscription_sentence(&self) -> String {
        let r = self.relationship.clone().unwrap_or_default();
        let who = if r.custodian_name.is_empty() {
            self.custodian.clone()
        } else {
            format!("{} ({})", r.custodian_name, self.custodian)
        };
        let what = match &self.relationship_type {
            Some(t) => format!("{} (record {})", t.replace('_', " "), self.record_id),
            None => format!("record {}", self.record_id),
        };
        let mut out = format!(
            "{who} {} a {what} with a person you subscribed for (subscription {}); {} level",
            self.change.as_deref().unwrap_or("changed"),
            self.subscription_id,
            self.level.as_deref().unwrap_or("unknown"),
        );
        if !r.service.is_empty() {
            let _ = write!(out, "; service: {}", r.service);
        }
        for (label, c) in [
            ("key worker", &r.key_worker),
            ("out of hours", &r.out_of_hours),
        ] {
            if let Some(c) = c {
                let parts: Vec<&str> = [c.name.as_str(), c.phone.as_str(), c.email.as_str()]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect();
                if !parts.is_empty() {
                    let _ = write!(out, "; {label}: {}", parts.join(" "));
                }
            }
        }
        if !r.period_start.is_empty() {
            let _ = write!(
                out,
                "; period {} to {}",
                r.period_start,
                if r.period_end.is_empty() {
                    "open"
                } else {
                    &r.period_end
                }
            );
        }
        out
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "no reason given" } else { s }
}

/// Which sinks a notification still has to reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub file: bool,
    pub webhook: bool,
}

impl Pending {
    pub fn any(self) -> bool {
        self.file || self.webhook
    }
}

/// The notifications table in the agent's database.
#[derive(Debug, Clone)]
pub struct NotificationStore {
    pool: SqlitePool,
}

impl NotificationStore {
    /// The store in `outbox`'s database (the migration made the table).
    pub fn new(outbox: &Outbox) -> Self {
        Self {
            pool: outbox.pool().clone(),
        }
    }

    /// Stores a notification durably, to be delivered to the sinks in
    /// `sinks`. Returns false, changing nothing, when it was already stored
    /// (the hub resent it).
    pub async fn insert(
        &self,
        n: &Notification,
        sinks: Pending,
    ) -> Result<bool, NotificationError> {
        let json = serde_json::to_string(n).expect("notifications always serialise");
        let done = sqlx::query(
            "INSERT INTO notifications (notification_id, kind, occurred_at, notification_json, \
             received_at, file_pending, webhook_pending) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (notification_id) DO NOTHING",
        )
        .bind(&n.notification_id)
        .bind(n.kind.as_str())
        .bind(&n.occurred_at)
        .bind(json)
        .bind(Utc::now().timestamp_millis())
        .bind(sinks.file)
        .bind(sinks.webhook)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Notifications not yet delivered to one of the sinks in `configured`,
    /// oldest first, with what each still needs.
    pub async fn undelivered(
        &self,
        configured: Pending,
    ) -> Result<Vec<(Notification, Pending)>, NotificationError> {
        let rows = sqlx::query(
            "SELECT notification_json, file_pending, webhook_pending FROM notifications \
             WHERE (file_pending AND ?) OR (webhook_pending AND ?) ORDER BY received_at, rowid",
        )
        .bind(configured.file)
        .bind(configured.webhook)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(n) = decode(&row.try_get::<String, _>("notification_json")?) else {
                continue;
            };
            let pending = Pending {
                file: configured.file && row.try_get::<bool, _>("file_pending")?,
                webhook: configured.webhook && row.try_get::<bool, _>("webhook_pending")?,
            };
            out.push((n, pending));
        }
        Ok(out)
    }

    /// Records that a notification reached the sinks in `delivered`, and
    /// the last error of those it did not.
    pub async fn mark(
        &self,
        notification_id: &str,
        delivered: Pending,
        error: Option<&str>,
    ) -> Result<(), NotificationError> {
        sqlx::query(
            "UPDATE notifications SET \
             file_pending = file_pending AND NOT ?, \
             webhook_pending = webhook_pending AND NOT ?, \
             last_sink_error = ? WHERE notification_id = ?",
        )
        .bind(delivered.file)
        .bind(delivered.webhook)
        .bind(error)
        .bind(notification_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent notifications, newest first, of one kind or all.
    pub async fn list(
        &self,
        kind: Option<NotificationKind>,
        limit: usize,
    ) -> Result<Vec<Notification>, NotificationError> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT notification_json FROM notifications");
        if let Some(kind) = kind {
            query.push(" WHERE kind = ").push_bind(kind.as_str());
        }
        query
            .push(" ORDER BY received_at DESC, rowid DESC LIMIT ")
            .push_bind(limit as i64);
        let rows = query.build().fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.extend(decode(&row.try_get::<String, _>("notification_json")?));
        }
        Ok(out)
    }
}

fn decode(json: &str) -> Option<Notification> {
    serde_json::from_str(json)
        .inspect_err(
            |e| tracing::error!(error = %e, "a stored notification is unreadable; skipping it"),
        )
        .ok()
}

/// The notifications as a table for people, newest first.
pub fn render_table(notifications: &[Notification]) -> String {
    if notifications.is_empty() {
        return "(no notifications)\n".into();
    }
    let headers = [
        "WHEN",
        "KIND",
        "RECORD",
        "WHO",
        "ORGANISATION",
        "PURPOSE",
        "LEVEL",
        "REASON",
    ];
    let rows: Vec<Vec<String>> = notifications
        .iter()
        .map(|n| {
            let revoked = n.kind == NotificationKind::Revocation;
            let subscription = n.kind == NotificationKind::Subscription;
            vec![
                or_dash(&n.occurred_at),
                n.kind.as_str().to_string(),
                n.record_phrase().trim_start_matches("record ").to_string(),
                if revoked || subscription {
                    "-".into()
                } else {
                    n.who()
                },
                if revoked {
                    "-".into()
                } else if subscription {
                    // Whose relationship it is: the custodian.
                    n.relationship
                        .as_ref()
                        .filter(|r| !r.custodian_name.is_empty())
                        .map_or_else(
                            || n.custodian.clone(),
                            |r| format!("{} ({})", r.custodian_name, n.custodian),
                        )
                } else {
                    n.organisation()
                },
                or_dash(n.purpose.as_deref().unwrap_or_default()),
                or_dash(n.level.as_deref().unwrap_or_default()),
                or_dash(&n.reason),
            ]
        })
        .collect();
    let mut out = table(&headers, &rows);
    // Revocations are acted on: say so in full.
    for n in notifications
        .iter()
        .filter(|n| n.kind == NotificationKind::Revocation)
    {
        let _ = writeln!(out, "{}", escape(&n.message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn wire(id: &str, kind: pb::NotificationKind) -> pb::Notification {
        pb::Notification {
            notification_id: id.into(),
            kind: kind as i32,
            occurred_at: "2026-03-01T10:00:00Z".into(),
            record: Some(pb::RecordRef {
                custodian: "E08000003".into(),
                record_id: "cpp-1".into(),
            }),
            relationship_type: pb::RelationshipType::ChildProtectionPlan as i32,
            accessor_authority: "R0A".into(),
            accessor_authority_name: "Manchester University NHS FT".into(),
            accessor: Some(pb::ActingUser {
                user_id: "a.rahman".into(),
                display_name: "Dr A. Rahman".into(),
                role: "ed_clinician".into(),
                team: String::new(),
            }),
            purpose: pb::Purpose::Emergency as i32,
            level: pb::DisclosureLevel::Summary as i32,
            query_id: "q-9".into(),
            reason: String::new(),
            audit_index: 17,
            ..Default::default()
        }
    }

    #[test]
    fn a_subscription_notice_says_who_what_and_how_to_reach_them() {
        let mut w = wire("n-s", pb::NotificationKind::Subscription);
        w.subscription_id = "sub-1".into();
        w.change = pb::SubscriptionChange::Started as i32;
        w.disclosed = Some(pb::DisclosedRecord {
            level: pb::DisclosureLevel::Summary as i32,
            record: Some(pb::RelationshipRecord {
                service: "Children's Services".into(),
                key_worker: Some(pb::Contact {
                    name: "Jo Smith".into(),
                    phone: "0161 234 5000".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            custodian_name: "Manchester City Council".into(),
            ..Default::default()
        });
        let n = Notification::from_wire(w).unwrap();
        assert_eq!(n.change.as_deref(), Some("started"));
        assert_eq!(n.subscription_id, "sub-1");
        assert_eq!(
            n.message,
            "Manchester City Council (E08000003) started a child protection plan (record cpp-1) \
             with a person you subscribed for (subscription sub-1); summary level; \
             service: Children's Services; key worker: Jo Smith 0161 234 5000"
        );
        let json = serde_json::to_value(&n).unwrap();
        assert!(
            json["relationship"]["period_start"].is_null(),
            "no period at summary"
        );
    }

    #[test]
    fn each_kind_reads_as_a_plain_sentence() {
        let access = Notification::from_wire(wire("n-1", pb::NotificationKind::Access)).unwrap();
        assert_eq!(
            access.message,
            "Dr A. Rahman (a.rahman, ed_clinician) at Manchester University NHS FT (R0A) saw your \
             record cpp-1 (child protection plan) at summary level for emergency (query q-9)"
        );
        let mut bg = wire("n-2", pb::NotificationKind::BreakGlass);
        bg.reason = "life_threatening: unconscious, no history".into();
        bg.level = pb::DisclosureLevel::Withheld as i32;
        let bg = Notification::from_wire(bg).unwrap();
        assert!(
            bg.message.contains(
                "was told of your record cpp-1 (child protection plan) (withheld) for emergency"
            ),
            "{}",
            bg.message
        );
        assert!(
            bg.message.starts_with("BREAK GLASS: Dr A. Rahman"),
            "{}",
            bg.message
        );
        assert!(
            bg.message
                .ends_with("reason: life_threatening: unconscious, no history")
        );
        let mut revoked = wire("n-3", pb::NotificationKind::Revocation);
        revoked.reason = "entered_in_error".into();
        let revoked = Notification::from_wire(revoked).unwrap();
        assert_eq!(
            revoked.message,
            "record cpp-1 of custodian E08000003 was revoked (entered_in_error): stop relying on it"
        );
        let table = render_table(&[revoked.clone(), access]);
        assert!(
            table.contains("record cpp-1 of custodian E08000003 was revoked"),
            "{table}"
        );
        assert!(
            table.contains("Manchester University NHS FT (R0A)"),
            "{table}"
        );
        let json = serde_json::to_value(&revoked).unwrap();
        assert_eq!(json["kind"], "revocation");
        assert_eq!(json["record_id"], "cpp-1");
    }

    #[test]
    fn a_notification_without_an_id_or_kind_is_refused() {
        let mut n = wire(" ", pb::NotificationKind::Access);
        assert!(matches!(
            Notification::from_wire(n.clone()),
            Err(NotificationError::NoId)
        ));
        n.notification_id = "n-1".into();
        n.kind = 0;
        assert!(matches!(
            Notification::from_wire(n),
            Err(NotificationError::UnknownKind(_, 0))
        ));
        assert!("breakglass".parse::<NotificationKind>().is_err());
        assert_eq!("break_glass".parse(), Ok(NotificationKind::BreakGlass));
    }
}
