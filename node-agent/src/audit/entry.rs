//! One entry of the audit log as an auditor receives it.
//!
//! An entry is its leaf index, the leaf hash the hub logged when it was
//! appended (`SHA-256(0x00 || entry)`, RFC 9162 §2.1.1), and — unless it is
//! outside the auditor's scope — its exact bytes: the hub's canonical JSON
//! (keys sorted, compact). The bytes are what the leaf hash commits to, so
//! they are kept as received and only parsed into an [`EntryView`] for
//! display, searching and export. The view is lenient: an unknown field is
//! ignored and a missing one is empty, so an older agent still reads a newer
//! hub's entries.

use kith_tlog::{Hash, leaf_hash};
use serde::{Deserialize, Serialize};

/// An entry: index, logged leaf hash, and its bytes when visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    /// The leaf hash as the hub logged it.
    pub leaf_hash: Hash,
    /// The exact bytes, or `None` when withheld from this auditor.
    pub entry: Option<Vec<u8>>,
}

impl LogEntry {
    /// Whether the bytes, when visible, still hash to the logged leaf hash.
    /// A withheld entry has nothing to check and counts as matching.
    pub fn content_matches(&self) -> bool {
        self.entry
            .as_ref()
            .is_none_or(|bytes| leaf_hash(bytes) == self.leaf_hash)
    }

    /// The parsed entry, when visible and JSON.
    pub fn view(&self) -> Option<EntryView> {
        serde_json::from_slice(self.entry.as_ref()?).ok()
    }

    /// The leaf hash as lower-case hex.
    pub fn leaf_hash_hex(&self) -> String {
        hex::encode(self.leaf_hash)
    }
}

/// One record an entry names, and what was decided for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordView {
    pub custodian: String,
    pub record_id: String,
    pub version: u64,
    /// Publish outcome (`accepted`, `stale`, ...) or disclosure level
    /// (`detail`, `summary`, `withheld`, `hidden`).
    pub decision: String,
    /// The policies that decided it (agreement policies are named
    /// `<agreement>.<level>`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub decided_by: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// An entry's content, as the hub wrote it (see `kith-hub`'s `audit.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EntryView {
    /// `publish`, `end`, `withdraw`, `query`, `refusal`, `audit_read`, ...
    pub kind: String,
    /// When the hub decided, RFC 3339 UTC.
    pub at: String,
    /// The acting authority, from its certificate.
    pub authority: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The NHS number asked about, for queries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `ok`, `refused`, ...
    pub outcome: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    /// The break-glass reason, when the user broke glass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<serde_json::Value>,
}

impl EntryView {
    /// Whether the act was a break-glass access: the entry says so, or a
    /// break-glass policy decided one of its records.
    pub fn is_break_glass(&self) -> bool {
        let flagged = match &self.break_glass {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => !s.trim().is_empty(),
            Some(_) => true,
        };
        flagged
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
                .filter(|r| matches!(r.decision.as_str(), "detail" | "summary"))
                .flat_map(|r| &r.decided_by),
        )
    }
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
    fn a_changed_byte_no_longer_matches_its_leaf_hash() {
        let bytes =
            br#"{"at":"2026-01-01T00:00:00.000Z","authority":"A","kind":"query","outcome":"ok"}"#;
        let mut e = LogEntry {
            index: 3,
            leaf_hash: leaf_hash(bytes),
            entry: Some(bytes.to_vec()),
        };
        assert!(e.content_matches());
        assert_eq!(e.view().unwrap().kind, "query");
        e.entry.as_mut().unwrap()[10] ^= 1;
        assert!(!e.content_matches());
        e.entry = None;
        assert!(e.content_matches(), "withheld: nothing to check");
    }

    #[test]
    fn break_glass_and_agreements_are_read_from_the_decisions() {
        let v: EntryView = serde_json::from_str(
            r#"{"kind":"query","records":[
                {"custodian":"A","decision":"detail","decided_by":["children-safeguarding.detail","forbid-sealed"]},
                {"custodian":"B","decision":"withheld","decided_by":["break-glass-emergency-summary","adult-care.summary"]}],
              "future_field":1}"#,
        )
        .unwrap();
        assert!(v.is_break_glass());
        assert_eq!(v.agreements(), ["children-safeguarding"]);
        let plain: EntryView = serde_json::from_str(r#"{"kind":"query"}"#).unwrap();
        assert!(!plain.is_break_glass());
    }
}
