//! The hub's plain records of what happened: break-glass accesses and
//! their reviews, notifications to authorities, and subscriptions.
//!
//! They live here, apart from the `impl Hub` code that makes them
//! (`break_glass.rs`, `notify.rs`, `query/`), so that the store, which
//! keeps them, and the domain, which makes them, both depend on this
//! module and on nothing of each other: `grpc → Hub → Store` holds at the
//! import level.

use chrono::NaiveDate;
use chrono::{SecondsFormat, Utc};
use kith_core::{
    ActingUser, Contact, Period, Purpose, RelationshipType, ReviewOutcome, SubscriptionChange,
};
use kith_policy::Level;
use serde::{Deserialize, Serialize};

pub use kith_core::NotificationKind;
pub use kith_core::query::BreakGlassClaim;

/// The review of one access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub outcome: ReviewOutcome,
    pub note: String,
    pub reviewed_by: String,
    /// RFC 3339 UTC.
    pub reviewed_at: String,
    pub audit_index: u64,
}

/// One break-glass access, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassAccess {
    /// The query that claimed it.
    pub query_id: String,
    /// Its audit entry.
    pub audit_index: u64,
    pub authority: String,
    pub user: ActingUser,
    /// NHS number digits.
    pub subject: String,
    pub claim: BreakGlassClaim,
    /// RFC 3339 UTC.
    pub occurred_at: String,
    pub expires_at: String,
    #[serde(default)]
    pub review: Option<Review>,
}

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
    /// Subscription notices: the subscription that asked for it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subscription_id: String,
    /// Subscription notices: what happened to the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<SubscriptionChange>,
    /// Subscription notices: the record as the subscriber may see it, cut
    /// to `level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<Shown>,
}

/// What a subscription notice shows of a record: at summary, the service
/// and how to reach the custodian; at detail, the period too. Never more
/// than the level decided for the subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    pub custodian_name: String,
    pub service: String,
    pub key_worker: Contact,
    pub out_of_hours: Contact,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// One subscription, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub subscription_id: String,
    /// The authority told (from its certificate when it subscribed).
    pub subscriber: String,
    /// NHS number digits.
    pub nhs_number: String,
    pub relationship_types: Vec<RelationshipType>,
    pub categories: Vec<String>,
    pub purpose: Purpose,
    /// Who subscribed: each notice is decided as if this user queried.
    pub created_by: ActingUser,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The last day it is current.
    pub ends_on: NaiveDate,
    /// Its subscribe audit entry.
    pub audit_index: u64,
    /// Set once it ended (RFC 3339 UTC), with why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl Subscription {
    /// Whether it is current on `today`: not ended, not past its end.
    pub fn current(&self, today: NaiveDate) -> bool {
        self.ended_at.is_none() && self.ends_on >= today
    }

    /// Whether it asks about a record of `relationship_type`, whose
    /// category (the policy set's) is `category`.
    pub fn covers(&self, relationship_type: RelationshipType, category: &str) -> bool {
        self.relationship_types.contains(&relationship_type)
            || self.categories.iter().any(|c| c == category)
    }

    /// Whether it asks for what `other` asks for: the same subscriber,
    /// person, purpose, types and categories.
    pub fn same_as(&self, other: &Subscription) -> bool {
        self.subscriber == other.subscriber
            && self.nhs_number == other.nhs_number
            && self.purpose == other.purpose
            && self.relationship_types == other.relationship_types
            && self.categories == other.categories
    }
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
            occurred_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
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
            subscription_id: String::new(),
            change: None,
            shown: None,
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
