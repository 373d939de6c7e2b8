//! How records and hashes are laid out in the store's columns, shared by
//! every backend so that SQLite and PostgreSQL hold identical values.

use std::str::FromStr;

use chrono::NaiveDate;
use kith_core::Record;

use super::{RecordStatus, StoreError, StoredRecord};

/// A 32-byte hash column.
pub(crate) fn hash32(bytes: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

/// The `body` column: the record's JSON.
pub(crate) fn body_of(record: &Record) -> String {
    serde_json::to_string(record).expect("a record always serialises")
}

/// A stored record from its columns: `body`, `held_at_source`, `status`,
/// `withdraw_reason`, `ended_on`.
pub(crate) fn stored_record(
    body: &str,
    held_at_source: bool,
    status: &str,
    withdraw_reason: Option<&str>,
    ended_on: Option<&str>,
) -> Result<StoredRecord, StoreError> {
    let record: Record =
        serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("record body: {e}")))?;
    let status = match status {
        "active" => RecordStatus::Active,
        "withdrawn" => RecordStatus::Withdrawn(
            withdraw_reason
                .unwrap_or("no_longer_shared")
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("withdraw reason: {e}")))?,
        ),
        other => return Err(StoreError::Corrupt(format!("record status {other:?}"))),
    };
    let ended_on = ended_on
        .map(|d| NaiveDate::from_str(d).map_err(|e| StoreError::Corrupt(format!("ended_on: {e}"))))
        .transpose()?;
    Ok(StoredRecord {
        record,
        held_at_source,
        status,
        ended_on,
    })
}

/// An audit entry from its `(idx, entry, leaf_hash)` columns.
pub(crate) fn audit_entry(
    (index, entry, leaf): (i64, Vec<u8>, Vec<u8>),
) -> Result<super::StoredAuditEntry, StoreError> {
    Ok(super::StoredAuditEntry {
        index: index as u64,
        entry,
        leaf_hash: hash32(leaf, "leaf hash")?,
    })
}

/// A checkpoint from its `(tree_size, root_hash, signed_note)` columns.
pub(crate) fn checkpoint(
    (size, root, note): (i64, Vec<u8>, String),
) -> Result<super::StoredCheckpoint, StoreError> {
    Ok(super::StoredCheckpoint {
        tree_size: size as u64,
        root_hash: hash32(root, "checkpoint root")?,
        signed_note: note,
    })
}
