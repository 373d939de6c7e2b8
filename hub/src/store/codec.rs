//! How records and hashes are laid out in the store's columns, shared by
//! every backend so that SQLite and PostgreSQL hold identical values.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::NaiveDate;
use kith_core::Record;

use super::{Publishable, RecordStatus, StoreError, StoreOutcome, StoredRecord};

/// What the store holds for a record key: (custodian, record id) →
/// (version, content hash).
pub(crate) type Held = HashMap<(String, String), (i64, String)>;

/// Decides a publish batch against what is `held` for its keys, record by
/// record in order, as if stored one after another (a later record of the
/// same key in the batch sees an earlier one). Returns each record's
/// outcome and the indexes, ascending, of the records to write: the last
/// accepted version of each key.
pub(crate) fn decide_publish(
    records: &[Publishable],
    mut held: Held,
) -> (Vec<StoreOutcome>, Vec<usize>) {
    let mut outcomes = Vec::with_capacity(records.len());
    let mut accepted: HashMap<(String, String), usize> = HashMap::new();
    for (i, Publishable { record, .. }) in records.iter().enumerate() {
        let key = (record.custodian.clone(), record.record_id.clone());
        let version = record.version as i64;
        let outcome = match held.get(&key) {
            Some((held, _)) if *held > version => StoreOutcome::Stale { held: *held as u64 },
            Some((held, hash)) if *held == version => {
                if *hash == record.provenance.content_hash {
                    StoreOutcome::Unchanged
                } else {
                    StoreOutcome::Conflict
                }
            }
            _ => {
                held.insert(
                    key.clone(),
                    (version, record.provenance.content_hash.clone()),
                );
                accepted.insert(key, i);
                StoreOutcome::Accepted
            }
        };
        outcomes.push(outcome);
    }
    let mut rows: Vec<usize> = accepted.into_values().collect();
    rows.sort_unstable();
    (outcomes, rows)
}

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

/// A record's columns as read: `body`, `held_at_source`, `status`,
/// `withdraw_reason`, `ended_on`.
pub(crate) type RecordColumns = (String, i64, String, Option<String>, Option<String>);

/// A row of a `records r LEFT JOIN directives d` select: the record's key
/// (custodian, record id), its columns, and one directive's body or none.
pub(crate) type RecordRow = ((String, String), RecordColumns, Option<String>);

/// A stored record from its columns (without its directives).
pub(crate) fn stored_record(
    (body, held_at_source, status, withdraw_reason, ended_on): RecordColumns,
) -> Result<StoredRecord, StoreError> {
    let record: Record = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("record body: {e}")))?;
    let status = match status.as_str() {
        "active" => RecordStatus::Active,
        "withdrawn" => RecordStatus::Withdrawn(
            withdraw_reason
                .as_deref()
                .unwrap_or("no_longer_shared")
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("withdraw reason: {e}")))?,
        ),
        other => return Err(StoreError::Corrupt(format!("record status {other:?}"))),
    };
    let ended_on = ended_on
        .map(|d| NaiveDate::from_str(&d).map_err(|e| StoreError::Corrupt(format!("ended_on: {e}"))))
        .transpose()?;
    Ok(StoredRecord {
        record,
        held_at_source: held_at_source != 0,
        status,
        ended_on,
        directives: Vec::new(),
    })
}

/// Records from the rows of a `records r LEFT JOIN directives d` select in
/// key order (one row per directive, or one row with none): one record per
/// key, with its directives. Both stores' query-path reads end here.
pub(crate) fn records_with_directives(
    rows: impl IntoIterator<Item = Result<RecordRow, StoreError>>,
) -> Result<Vec<StoredRecord>, StoreError> {
    let mut records: Vec<StoredRecord> = Vec::new();
    let mut last: Option<(String, String)> = None;
    for row in rows {
        let (key, columns, directive) = row?;
        if last.as_ref() != Some(&key) {
            records.push(stored_record(columns)?);
            last = Some(key);
        }
        if let (Some(body), Some(stored)) = (directive, records.last_mut()) {
            stored.directives.push(from_json(&body, "directive body")?);
        }
    }
    Ok(records)
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

/// Audit entries read from `rows` (`(idx, entry, leaf_hash)`, in index
/// order) until `max_bytes` of entry bytes are taken: always at least one
/// entry if there is one, and never more rows read than that needs. Both
/// stores page `GetEntries` through this.
pub(crate) async fn audit_entries_within<S, E>(
    mut rows: S,
    max_bytes: usize,
) -> Result<Vec<super::StoredAuditEntry>, StoreError>
where
    S: futures::Stream<Item = Result<(i64, Vec<u8>, Vec<u8>), E>> + Unpin,
    StoreError: From<E>,
{
    use futures::TryStreamExt;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while bytes < max_bytes {
        let Some(row) = rows.try_next().await? else {
            break;
        };
        bytes = bytes.saturating_add(row.1.len());
        out.push(audit_entry(row)?);
    }
    Ok(out)
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

/// A JSON `body` column of any stored document (directive, notification,
/// break-glass access).
pub(crate) fn json_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored documents always serialise")
}

/// Reads a JSON `body` column back; `what` names it in the error.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    body: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// One audit entry as stored: when, its canonical bytes, and their leaf
/// hash (computed once, from exactly the bytes stored).
pub(crate) struct AuditRow {
    pub at: String,
    pub bytes: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

impl AuditRow {
    pub(crate) fn of(entry: &crate::audit::AuditEntry) -> Self {
        let bytes = entry.to_bytes();
        Self {
            at: entry.at.clone(),
            leaf_hash: super::leaf_hash_of(&bytes),
            bytes,
        }
    }
}

/// The (custodian, record id, recipient) disclosures a batch of audit
/// entries records: every record a query showed at summary level or more,
/// to the querying authority. Its custodian showing itself is not one.
pub(crate) fn disclosures_in(entries: &[crate::audit::AuditEntry]) -> Vec<(&str, &str, &str)> {
    let mut out: Vec<(&str, &str, &str)> = entries
        .iter()
        .filter(|e| e.kind == crate::audit::AuditKind::Query)
        .flat_map(|e| {
            e.records
                .iter()
                .filter(|r| r.disclosed() && r.custodian != e.authority)
                .map(|r| {
                    (
                        r.custodian.as_str(),
                        r.record_id.as_str(),
                        e.authority.as_str(),
                    )
                })
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What storing one directive does, given the version, content hash and
/// record id held for its id (if any), and whether its record exists.
pub(crate) fn directive_outcome(
    directive: &kith_core::Directive,
    hash: &str,
    held: Option<(i64, String, String)>,
    record_exists: bool,
) -> super::DirectiveOutcome {
    use super::DirectiveOutcome;
    let version = directive.version as i64;
    match held {
        Some((_, _, held_for)) if held_for != directive.record_id => {
            DirectiveOutcome::OtherRecord { held_for }
        }
        Some((held, _, _)) if held > version => DirectiveOutcome::Stale { held: held as u64 },
        Some((held, held_hash, _)) if held == version => {
            if held_hash == hash {
                DirectiveOutcome::Unchanged
            } else {
                DirectiveOutcome::Conflict
            }
        }
        _ if !record_exists => DirectiveOutcome::UnknownRecord,
        _ => DirectiveOutcome::Accepted,
    }
}

/// The blocking-key columns of a record: its date of birth (ISO) and its
/// normalised postcode, when known.
pub(crate) fn blocking_keys(record: &Record) -> (Option<String>, Option<String>) {
    let Some(d) = &record.subject.demographics else {
        return (None, None);
    };
    let postcode = kith_core::matching::normalise_postcode(&d.postcode);
    (
        d.date_of_birth.map(|d| d.to_string()),
        (!postcode.is_empty()).then_some(postcode),
    )
}
