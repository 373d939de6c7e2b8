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
    /// One custodian's share of another authority's query that reached its
    /// records: the same act, naming only that custodian's records (hidden
    /// ones too), so its auditor sees every access to them without learning
    /// what the others hold. Written in the same commit as the query entry;
    /// read by that custodian's auditor only.
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
    /// How many acts this one entry stands for, when more than one (a
    /// non-member's refusals coalesced over a window: [`crate::refusals`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
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
    /// The entries to write for this entry, scoped for auditors. Any entry
    /// but a query's: itself. A query entry (which its authority's auditor
    /// reads) keeps only what that authority may know: its own records, and
    /// other custodians' records its user was shown at some level (detail,
    /// summary or withheld), with their matches. Every other custodian
    /// whose records the query reached (at any level, hidden included, or
    /// matched and then dropped as past retention) gets an `access` entry
    /// naming only its own records, unless the query entry already names
    /// exactly those and nothing else (its auditor then reads that). The
    /// query entry comes first.
    pub fn scoped_for_audit(self) -> Vec<AuditEntry> {
        if self.kind != AuditKind::Query {
            return vec![self];
        }
        let actor = self.authority.as_str();
        let shown: std::collections::HashSet<(&str, &str)> = self
            .records
            .iter()
            .filter(|r| r.decision != "hidden")
            .map(|r| (r.custodian.as_str(), r.record_id.as_str()))
            .collect();
        let known = |custodian: &str, record_id: &str| {
            custodian == actor || shown.contains(&(custodian, record_id))
        };
        let mut query = self.clone();
        query.records.retain(|r| known(&r.custodian, &r.record_id));
        query.matches.retain(|m| known(&m.custodian, &m.record_id));
        let mut custodians: Vec<&str> = self
            .records
            .iter()
            .map(|r| r.custodian.as_str())
            .chain(self.matches.iter().map(|m| m.custodian.as_str()))
            .filter(|c| *c != actor)
            .collect();
        custodians.sort_unstable();
        custodians.dedup();
        let query_bytes = query.to_bytes();
        let mut shares = Vec::with_capacity(custodians.len());
        for c in custodians {
            let mut access = self.clone();
            access.kind = AuditKind::Access;
            access.records.retain(|r| r.custodian == c);
            access.matches.retain(|m| m.custodian == c);
            let whole_in_query = concerns(&query_bytes, c)
                && access.records == query.records
                && access.matches == query.matches;
            if whole_in_query {
                continue;
            }
            access.reason = format!("the records of {c} reached by this query");
            shares.push(access);
        }
        let mut out = Vec::with_capacity(1 + shares.len());
        out.push(query);
        out.extend(shares);
        out
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
            count: None,
        }
    }

    /// The canonical bytes stored and, later, hashed.
    pub fn to_bytes(&self) -> Vec<u8> {
        kith_core::content_hash::canonical_json(self)
    }
}

/// Whether `authority`'s own auditor may read an entry: made by it, or
/// naming its records and no other custodian's (in `records` and
/// `matches`). An `access` entry (one custodian's share of another
/// authority's query) is its custodian's alone, not the querier's: it may
/// name records the querier was never shown.
pub fn concerns(entry: &[u8], authority: &str) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(entry) else {
        return false;
    };
    let listed = |field: &str| value[field].as_array().map_or(&[][..], Vec::as_slice);
    let mut named = listed("records").iter().chain(listed("matches"));
    let mut any = false;
    let only_theirs = named.all(|r| {
        any = true;
        r["custodian"] == authority
    }) && any;
    if value["kind"] == "access" {
        return only_theirs;
    }
    value["authority"] == authority || only_theirs
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

    fn rec(custodian: &str, id: &str, decision: &str) -> AuditedRecord {
        AuditedRecord {
            custodian: custodian.into(),
            record_id: id.into(),
            version: 1,
            decision: decision.into(),
            decided_by: vec![],
            reason: String::new(),
        }
    }

    fn matched(custodian: &str, id: &str) -> AuditedMatch {
        AuditedMatch {
            custodian: custodian.into(),
            record_id: id.into(),
            grade: "certain".into(),
            score: String::new(),
            rule_version: "1".into(),
        }
    }

    fn ids(e: &AuditEntry) -> (Vec<String>, Vec<String>) {
        (
            e.records
                .iter()
                .map(|r| format!("{}/{}", r.custodian, r.record_id))
                .collect(),
            e.matches
                .iter()
                .map(|m| format!("{}/{}", m.custodian, m.record_id))
                .collect(),
        )
    }

    #[test]
    fn a_query_entry_names_only_what_the_querier_was_shown_and_each_custodian_gets_its_share() {
        let mut q = AuditEntry::new(AuditKind::Query, "A", DateTime::<Utc>::UNIX_EPOCH);
        q.records = vec![
            rec("A", "own-hidden", "hidden"),
            rec("B", "b-shown", "summary"),
            rec("B", "b-hidden", "hidden"),
            rec("C", "c-withheld", "withheld"),
            rec("D", "d-hidden", "hidden"),
        ];
        // E's record matched, then dropped as past retention.
        q.matches = vec![
            matched("B", "b-shown"),
            matched("B", "b-hidden"),
            matched("E", "e-expired"),
            matched("A", "own-hidden"),
        ];
        let out = q.scoped_for_audit();
        assert_eq!(out[0].kind, AuditKind::Query);
        assert_eq!(
            ids(&out[0]),
            (
                vec![
                    "A/own-hidden".into(),
                    "B/b-shown".into(),
                    "C/c-withheld".into()
                ],
                vec!["B/b-shown".into(), "A/own-hidden".into()]
            ),
            "the querier's entry names its own and what it was shown"
        );
        let shares: Vec<_> = out[1..]
            .iter()
            .map(|e| {
                assert_eq!(e.kind, AuditKind::Access);
                ids(e)
            })
            .collect();
        assert_eq!(
            shares,
            vec![
                (
                    vec!["B/b-shown".into(), "B/b-hidden".into()],
                    vec!["B/b-shown".into(), "B/b-hidden".into()]
                ),
                (vec!["C/c-withheld".into()], vec![]),
                (vec!["D/d-hidden".into()], vec![]),
                (vec![], vec!["E/e-expired".into()]),
            ],
            "every other custodian sees its whole share, hidden and expired included"
        );
    }

    #[test]
    fn a_query_entry_wholly_one_custodians_needs_no_share_and_other_kinds_stay_whole() {
        let mut q = AuditEntry::new(AuditKind::Query, "A", DateTime::<Utc>::UNIX_EPOCH);
        q.records = vec![rec("B", "b1", "detail")];
        q.matches = vec![matched("B", "b1")];
        let out = q.clone().scoped_for_audit();
        assert_eq!(
            out,
            vec![q.clone()],
            "B's auditor reads the query entry itself"
        );
        // The same with a hidden record of B: B's share is no longer whole
        // in the query entry.
        q.records.push(rec("B", "b2", "hidden"));
        let out = q.scoped_for_audit();
        assert_eq!(out.len(), 2);
        assert_eq!(ids(&out[1]).0, ["B/b1", "B/b2"]);
        let mut p = AuditEntry::new(AuditKind::Publish, "A", DateTime::<Utc>::UNIX_EPOCH);
        p.records = vec![rec("A", "a1", "accepted")];
        assert_eq!(p.clone().scoped_for_audit(), vec![p]);
    }
}
