//! Audit entries: what the hub writes for every publish, change, query and
//! refusal, before it answers.
//!
//! An entry is stored as its canonical JSON bytes (keys sorted, compact; see
//! [`kith_core::content_hash::canonical_json`]). Those bytes are what an
//! auditor reads and, with the verifiable log, what a Merkle leaf hashes, so
//! they are produced once, here, and never re-serialised.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Publish,
    End,
    Withdraw,
    Query,
    /// A call refused before it did anything (an authority that is not a
    /// member of the federation).
    Refusal,
    /// An auditor read entries of the log.
    AuditRead,
    /// A policy set was loaded, or a new one rejected.
    PolicyLoad,
    /// Sharing directives were published.
    Directive,
    /// A record past its retention date was deleted from the store.
    Purge,
    /// An authority's agent acknowledged a notification.
    NotificationDelivered,
    /// A break-glass access was reviewed (or a review refused).
    BreakGlassReview,
    /// One custodian's share of a query that reached several custodians'
    /// records: the same act, naming only that custodian's records, so its
    /// auditor sees every access to them without learning what the others
    /// hold. Written in the same commit as the query entry.
    Access,
}

/// One record touched by the audited act, and what was decided for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedRecord {
    pub custodian: String,
    pub record_id: String,
    pub version: u64,
    /// Publish outcome (`accepted`, `unchanged`, `stale`, `rejected`,
    /// `permission_denied`) or disclosure level (`detail`, `summary`,
    /// `withheld`, `hidden`).
    pub decision: String,
    /// Policies or rules that decided it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decided_by: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A record key as an audit entry (and the answer beside it) repeats it:
/// whole when it is a valid identifier of at most `max` characters, so
/// the agent can match its result; otherwise a short quoted prefix
/// ([`kith_core::error::quote`]), so a rejected key never makes an entry
/// grow with it.
pub(crate) fn key_part(value: &str, max: usize) -> String {
    let mut errors = Vec::new();
    kith_core::validate::check_identifier("", value, max, &mut errors);
    if errors.is_empty() {
        value.to_string()
    } else {
        kith_core::error::quote(value)
    }
}

/// An audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub kind: AuditKind,
    /// When the hub decided, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// The calling authority, from its certificate.
    pub authority: String,
    /// The acting user, as the authority asserted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The subject asked about (NHS number digits), for queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Overall outcome: `ok`, `refused`, `not_found`, ...
    pub outcome: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<AuditedRecord>,
    /// Query id, for queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    /// Set on a query run under break glass: flagged for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlassFlag>,
    /// How the subject was matched, for queries without an NHS number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<AuditedMatch>,
}

/// The break-glass side of a query entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassFlag {
    pub reason_code: String,
    pub justification: String,
    /// When the access ends (RFC 3339).
    pub until: String,
    /// True on the query that claimed it; false on later queries inside
    /// its window.
    pub claimed: bool,
}

/// One subject link a query made or offered: to which record, how sure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedMatch {
    pub custodian: String,
    pub record_id: String,
    /// certain | possible | confirmed
    pub grade: String,
    /// Fellegi–Sunter weight, rounded to 0.01.
    pub score: String,
    pub rule_version: String,
}

impl AuditEntry {
    /// For a query entry that names records of several custodians: one
    /// `access` entry per custodian, naming only its records. Empty when
    /// the entry names one custodian or none (it already concerns it alone).
    pub fn per_custodian_access(&self) -> Vec<AuditEntry> {
        let mut custodians: Vec<&str> = self.records.iter().map(|r| r.custodian.as_str()).collect();
        custodians.sort_unstable();
        custodians.dedup();
        if self.kind != AuditKind::Query || custodians.len() < 2 {
            return Vec::new();
        }
        custodians
            .into_iter()
            .map(|c| {
                let mut access = self.clone();
                access.kind = AuditKind::Access;
                access.records.retain(|r| r.custodian == c);
                access.matches.retain(|m| m.custodian == c);
                access.reason = format!("the records of {c} reached by this query");
                access
            })
            .collect()
    }

    /// A new entry of `kind` by `authority`, stamped now.
    pub fn new(kind: AuditKind, authority: &str, now: DateTime<Utc>) -> Self {
        Self {
            kind,
            at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            authority: authority.to_string(),
            user: None,
            role: None,
            purpose: None,
            subject: None,
            outcome: "ok".to_string(),
            reason: String::new(),
            records: Vec::new(),
            query_id: None,
            break_glass: None,
            matches: Vec::new(),
        }
    }

    /// The canonical bytes stored and, later, hashed.
    pub fn to_bytes(&self) -> Vec<u8> {
        kith_core::content_hash::canonical_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_have_sorted_keys_and_round_trip() {
        let mut e = AuditEntry::new(AuditKind::Query, "E08000003", DateTime::<Utc>::UNIX_EPOCH);
        e.purpose = Some("safeguarding".into());
        let bytes = e.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"at":"1970-01-01T00:00:00.000Z","authority":"E08000003","kind":"query""#
            ),
            "{text}"
        );
        let back: AuditEntry = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.to_bytes(), bytes);
    }
}
