//! Who may read which audit entries.
//!
//! The scope comes from the policy set (`audit_scope`): an authority's
//! auditor sees the entries its own users made, and those naming only its
//! own records; a federation auditor sees all; anyone else none. An entry
//! that names other custodians' records too (another authority's query
//! that found records at several custodians) is withheld from a custodian's
//! auditor: showing it would tell them what the other custodians hold.
//! Each such query is therefore written with one `access` entry per
//! custodian beside it, in the same commit, naming only that custodian's
//! records: each custodian's auditor sees every access to its own records
//! through those. An entry outside the
//! caller's scope is still listed, as its leaf hash alone, so every auditor
//! can recompute the tree and check it against the signed checkpoint
//! without reading other authorities' business. Every read is itself
//! audited.

use kith_core::FieldError;
use kith_policy::AuditScope;

use crate::audit::{AuditEntry, AuditKind};
use crate::disclosure::{self, ActingUser};
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};

/// Most entries one read returns.
pub const MAX_ENTRIES: u32 = 1000;

/// One entry as an auditor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditView {
    pub index: u64,
    pub leaf_hash: [u8; 32],
    /// `None` when withheld from this auditor.
    pub entry: Option<Vec<u8>>,
}

/// Whether `authority`'s own auditor may read an entry: made by it, or
/// naming its records and no other custodian's.
pub fn concerns(entry: &[u8], authority: &str) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(entry) else {
        return false;
    };
    value["authority"] == authority
        || value["records"]
            .as_array()
            .is_some_and(|rs| !rs.is_empty() && rs.iter().all(|r| r["custodian"] == authority))
}

impl Hub {
    /// Entries `start .. start + count` (capped at `tree_size`, the latest
    /// checkpoint's) as `user` at `caller` may see them.
    pub async fn audit_entries(
        &self,
        caller: &Caller,
        user: &ActingUser,
        start: u64,
        count: u32,
        tree_size: u64,
    ) -> Result<Vec<AuditView>, HubError> {
        let access = self
            .policies()
            .audit_scope(&disclosure::requester(caller, user));
        let mut record = AuditEntry::new(AuditKind::AuditRead, caller.authority.as_str(), now());
        record.user = Some(user.user_id.clone());
        record.role = Some(user.role.clone());
        // A malformed read is still a read of the log attempted: audited,
        // then refused.
        if count == 0 || count > MAX_ENTRIES {
            let why = FieldError::new("count", format!("must be 1 to {MAX_ENTRIES}, not {count}"));
            record.outcome = "refused".into();
            record.reason = format!("entries from {start}: {why}");
            self.audit.append(record).await?;
            return Err(HubError::InvalidArgument(vec![why]));
        }
        record.reason = format!(
            "entries {start}..{} scope {:?}",
            start.saturating_add(u64::from(count)),
            access.scope
        );
        if access.scope == AuditScope::None {
            record.outcome = "refused".into();
            self.audit.append(record).await?;
            return Err(HubError::PermissionDenied(access.reason));
        }
        if start >= tree_size {
            self.audit.append(record).await?;
            return Ok(Vec::new());
        }
        let count = count.min((tree_size - start).min(u64::from(u32::MAX)) as u32);
        let stored = self.store.audit_entries(start, count).await?;
        // The read is audited before anything is returned.
        self.audit.append(record).await?;
        let authority = caller.authority.as_str();
        Ok(stored
            .into_iter()
            .map(|e| {
                let visible =
                    access.scope == AuditScope::Federation || concerns(&e.entry, authority);
                AuditView {
                    index: e.index,
                    leaf_hash: e.leaf_hash,
                    entry: visible.then_some(e.entry),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_concerns_its_actor_and_a_custodian_it_names_alone() {
        let mixed = br#"{"authority":"A","records":[{"custodian":"B"},{"custodian":"C"}]}"#;
        assert!(concerns(mixed, "A"), "the actor's auditor sees it");
        assert!(!concerns(mixed, "C"), "it would tell C what B holds");
        assert!(!concerns(mixed, "D"));
        let only_c = br#"{"authority":"A","records":[{"custodian":"C"},{"custodian":"C"}]}"#;
        assert!(concerns(only_c, "C"));
        assert!(!concerns(br#"{"authority":"A","records":[]}"#, "C"));
        assert!(!concerns(b"not json", "A"));
    }
}
