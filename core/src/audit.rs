//! Audit entries: the one JSON shape of what the hub logs for every
//! publish, change, query and refusal, read back by the agent's auditor
//! commands.
//!
//! The hub writes an entry as its canonical JSON bytes (keys sorted,
//! compact; see [`crate::content_hash::canonical_json`]). Those bytes are
//! what an auditor reads and, with the verifiable log, what a Merkle leaf
//! hashes, so they are produced once, by [`AuditEntry::to_bytes`], and never
//! re-serialised: a reader keeps the bytes it received and parses them only
//! to display, search and export.
//!
//! Reading is lenient, so an older agent still reads a newer hub's entries:
//! an unknown field is ignored, a missing one is empty, and a kind this
//! version does not know is [`AuditKind::Unrecognised`].

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::level::Level;

/// What happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// An authority subscribed for a person (or was refused).
    Subscribe,
    /// A subscription ended: by its subscriber, or because the subscriber's
    /// own relationship with the person ended (or an attempt was refused).
    Unsubscribe,
    /// A kind this version does not know (written by a newer hub). Never
    /// written.
    #[default]
    #[serde(other)]
    Unrecognised,
}

impl AuditKind {
    /// The kind as the log spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::End => "end",
            Self::Withdraw => "withdraw",
            Self::Query => "query",
            Self::Refusal => "refusal",
            Self::AuditRead => "audit_read",
            Self::PolicyLoad => "policy_load",
            Self::Directive => "directive",
            Self::Purge => "purge",
            Self::NotificationDelivered => "notification_delivered",
            Self::BreakGlassReview => "break_glass_review",
            Self::Access => "access",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Unrecognised => "unrecognised",
        }
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record touched by the audited act, and what was decided for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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

impl AuditedRecord {
    /// The disclosure level decided, when the decision is one (a query's
    /// records); `None` for a publish outcome and the like.
    pub fn level(&self) -> Option<Level> {
        self.decision.parse().ok()
    }

    /// Whether the record was shared: shown at detail or summary.
    pub fn disclosed(&self) -> bool {
        matches!(self.level(), Some(Level::Detail | Level::Summary))
    }
}

/// An audit entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Subscription notices this act gave (a publish, end or withdraw):
    /// who was told, under which subscription, at which level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified: Vec<AuditedNotice>,
    /// The subscription a subscribe or unsubscribe entry is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
}

/// One subscription notice given by an audited act.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditedNotice {
    pub subscription_id: String,
    /// The subscriber told.
    pub recipient: String,
    pub custodian: String,
    pub record_id: String,
    /// The level the notice was cut to: detail or summary.
    pub level: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decided_by: Vec<String>,
}

/// The break-glass side of a query entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
            .filter(|r| r.level() != Some(Level::Hidden))
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

    /// Whether the act was a break-glass access: the entry says so, or a
    /// break-glass policy decided one of its records.
    pub fn is_break_glass(&self) -> bool {
        self.break_glass.is_some()
            || self
                .records
                .iter()
                .flat_map(|r| &r.decided_by)
                .any(|id| id.starts_with("break-glass"))
    }

    /// The agreements under which records were disclosed: the `<agreement>`
    /// of every `<agreement>.<level>` policy id deciding a record shown in
    /// `detail` or `summary`, in first-seen order. (An agreement policy
    /// listed for a withheld or hidden record permitted something another
    /// policy forbade; nothing was shared under it.)
    pub fn agreements(&self) -> Vec<String> {
        agreements_of(
            self.records
                .iter()
                .filter(|r| r.disclosed())
                .flat_map(|r| &r.decided_by),
        )
    }

    /// A new entry of `kind` by `authority`, stamped now.
    pub fn new(kind: AuditKind, authority: &str, now: DateTime<Utc>) -> Self {
        Self {
            kind,
            at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            authority: authority.to_string(),
            outcome: "ok".to_string(),
            ..Self::default()
        }
    }

    /// The canonical bytes stored and, later, hashed.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::content_hash::canonical_json(self)
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

/// The agreement names in policy ids of the form `<agreement>.<level>`.
pub fn agreements_of<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if let Some((agreement, _)) = id.split_once('.')
            && !out.iter().any(|a| a == agreement)
        {
            out.push(agreement.to_string());
        }
    }
    out
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

    #[test]
    fn a_newer_hubs_entry_still_reads() {
        let e: AuditEntry = serde_json::from_str(
            r#"{"kind":"subscription_notice","authority":"A","future_field":1,
                "records":[{"custodian":"B","decision":"detail","colour":"red"}]}"#,
        )
        .unwrap();
        assert_eq!(e.kind, AuditKind::Unrecognised);
        assert_eq!(e.records[0].custodian, "B");
        assert_eq!(e.records[0].level(), Some(Level::Detail));
        assert_eq!(e.outcome, "", "missing is empty");
    }

    #[test]
    fn break_glass_and_agreements_are_read_from_the_decisions() {
        let v: AuditEntry = serde_json::from_str(
            r#"{"kind":"query","records":[
                {"custodian":"A","decision":"detail","decided_by":["children-safeguarding.detail","forbid-sealed"]},
                {"custodian":"B","decision":"withheld","decided_by":["break-glass-emergency-summary","adult-care.summary"]}],
              "future_field":1}"#,
        )
        .unwrap();
        assert!(v.is_break_glass());
        assert_eq!(v.agreements(), ["children-safeguarding"]);
        let plain: AuditEntry = serde_json::from_str(r#"{"kind":"query"}"#).unwrap();
        assert!(!plain.is_break_glass());
        let flagged: AuditEntry = serde_json::from_str(
            r#"{"kind":"query","break_glass":{"reason_code":"life_threatening","claimed":true}}"#,
        )
        .unwrap();
        assert!(flagged.is_break_glass());
    }

    #[test]
    fn every_kind_spells_as_it_serialises() {
        for kind in [
            AuditKind::Publish,
            AuditKind::End,
            AuditKind::Withdraw,
            AuditKind::Query,
            AuditKind::Refusal,
            AuditKind::AuditRead,
            AuditKind::PolicyLoad,
            AuditKind::Directive,
            AuditKind::Purge,
            AuditKind::NotificationDelivered,
            AuditKind::BreakGlassReview,
            AuditKind::Access,
            AuditKind::Subscribe,
            AuditKind::Unsubscribe,
        ] {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
    }
}
