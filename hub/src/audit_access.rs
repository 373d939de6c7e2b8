//! Who may read which audit entries.
//!
//! The scope comes from the policy set (`audit_scope`): an authority's
//! auditor sees the entries its own users made, and those naming only its
//! own records; a federation auditor sees all; anyone else none. A query
//! entry names only what the querying authority may know (its own records
//! and those its user was shown at some level); each other custodian whose
//! records the query reached gets an `access` entry beside it, in the same
//! commit, naming only that custodian's records (see
//! [`crate::audit::AuditEntry::scoped_for_audit`]), and only that
//! custodian's auditor reads it. So each custodian's auditor sees every
//! access to its own records, and no auditor learns from an entry what
//! another custodian holds. An entry outside the
//! caller's scope is still listed, as its leaf hash alone, so every auditor
//! can recompute the tree and check it against the signed checkpoint
//! without reading other authorities' business. Every read is itself
//! audited.

use kith_core::FieldError;
use kith_policy::AuditScope;

use crate::audit::{AuditEntry, AuditKind, concerns};
use crate::disclosure::{self, ActingUser};
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};

/// Most entries one read returns.
pub const MAX_ENTRIES: u32 = 1000;

/// A read stops once its entries hold this many bytes (always at least
/// one entry): a page of large entries (a 500-record publish is about
/// 67 KB) stays well under a client's 4 MiB default decode limit. The
/// agent pages by what it got back.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// One entry as an auditor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditView {
    pub index: u64,
    pub leaf_hash: [u8; 32],
    /// `None` when withheld from this auditor.
    pub entry: Option<Vec<u8>>,
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
        // Who is reading must be a bounded, printable assertion before it
        // is written into the read's own entry.
        let mut errors = Vec::new();
        user.check("acting_user", &mut errors);
        if !errors.is_empty() {
            return Err(HubError::InvalidArgument(errors));
        }
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
        let stored = self
            .store
            .audit_entries_within(start, count, MAX_PAGE_BYTES)
            .await?;
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

    #[test]
    fn matches_count_as_named_and_an_access_entry_is_its_custodians_alone() {
        // A query by A whose records are all C's, but which matched B's.
        let matched_b = br#"{"authority":"A","kind":"query","records":[{"custodian":"C"}],"matches":[{"custodian":"C"},{"custodian":"B"}]}"#;
        assert!(concerns(matched_b, "A"));
        assert!(!concerns(matched_b, "C"), "it would tell C what B holds");
        let access = br#"{"authority":"A","kind":"access","records":[{"custodian":"C"}],"matches":[{"custodian":"C"}]}"#;
        assert!(concerns(access, "C"));
        assert!(!concerns(access, "A"), "it may name what A was not shown");
        let only_matches = br#"{"authority":"A","kind":"access","matches":[{"custodian":"C"}]}"#;
        assert!(concerns(only_matches, "C"));
        assert!(!concerns(br#"{"authority":"A","kind":"access"}"#, "A"));
    }
}
