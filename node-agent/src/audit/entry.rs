//! One entry of the audit log as an auditor receives it.
//!
//! An entry is its leaf index, the leaf hash the hub logged when it was
//! appended (`SHA-256(0x00 || entry)`, RFC 9162 §2.1.1), and — unless it is
//! outside the auditor's scope — its exact bytes: the hub's canonical JSON
//! (keys sorted, compact). The bytes are what the leaf hash commits to, so
//! they are kept as received and only parsed, into the one audit entry
//! shape hub and agent share ([`kith_core::audit::AuditEntry`]), for
//! display, searching and export. Parsing is lenient: an unknown field is
//! ignored and a missing one is empty, so an older agent still reads a newer
//! hub's entries.

pub use kith_core::audit::{AuditEntry, AuditKind, AuditedRecord, agreements_of};
use kith_tlog::{Hash, leaf_hash};

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
    pub fn view(&self) -> Option<AuditEntry> {
        serde_json::from_slice(self.entry.as_ref()?).ok()
    }

    /// The leaf hash as lower-case hex.
    pub fn leaf_hash_hex(&self) -> String {
        hex::encode(self.leaf_hash)
    }
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
        assert_eq!(e.view().unwrap().kind, AuditKind::Query);
        e.entry.as_mut().unwrap()[10] ^= 1;
        assert!(!e.content_matches());
        e.entry = None;
        assert!(e.content_matches(), "withheld: nothing to check");
    }
}
