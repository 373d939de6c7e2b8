//! The SQLite store: the embedded default, one file, WAL mode, every commit
//! durable (`synchronous = FULL`).
//!
//! SQLite takes one writer at a time; rather than have concurrent writers
//! collide and retry, the store queues them on one async mutex, and reads go
//! on in parallel on the pool's other connections (WAL lets them).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, SecondsFormat, Utc};
use kith_core::{NhsNumber, WithdrawReason};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::Mutex;

use super::codec::{self, body_of, hash32};
use super::migrations::{self, SQLITE};
use super::{
    ChangeAudit, ChangeOutcome, PublishAudit, Publishable, RecordKey, Store, StoreError,
    StoreOutcome, StoredAuditEntry, StoredCheckpoint, StoredRecord,
};
use crate::audit::AuditEntry;

/// Record keys per SELECT: 2 parameters each, under SQLite's 32,766.
const KEYS_PER_SELECT: usize = 10_000;
/// Record rows per upsert: 10 parameters each.
const RECORD_ROWS_PER_INSERT: usize = 1_000;

pub struct SqliteStore {
    pool: SqlitePool,
    writer: Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or
    /// `sqlite::memory:`) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            // Each in-memory connection is its own database: keep one.
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(options)
            .await?;
        migrations::migrator(SQLITE).await?.run(&pool).await?;
        Ok(Self {
            pool,
            writer: Mutex::new(()),
        })
    }

    /// The underlying pool, for tests that must reach past the interface
    /// (for example to tamper with a stored row).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Appends `entries` with consecutive indexes inside `tx`, in multi-row
/// INSERTs (one statement per chunk: each statement costs far more than
/// each row). Returns the first index.
async fn append_in(
    tx: &mut Transaction<'_, Sqlite>,
    entries: &[AuditEntry],
) -> Result<u64, StoreError> {
    let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log")
        .fetch_one(&mut **tx)
        .await?;
    // SQLite allows 32,766 bound parameters; 4 per row.
    for (chunk_no, chunk) in entries.chunks(1000).enumerate() {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_log (idx, recorded_at, entry, leaf_hash) ",
        );
        insert.push_values(chunk.iter().enumerate(), |mut row, (i, entry)| {
            let bytes = entry.to_bytes();
            let leaf = super::leaf_hash_of(&bytes);
            row.push_bind(first + (chunk_no * 1000 + i) as i64)
                .push_bind(entry.at.clone())
                .push_bind(bytes)
                .push_bind(leaf.to_vec());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(first as u64)
}

fn row_to_stored(row: &SqliteRow) -> Result<StoredRecord, StoreError> {
    let body: String = row.try_get("body")?;
    let held_at_source: i64 = row.try_get("held_at_source")?;
    let status: String = row.try_get("status")?;
    let withdraw_reason: Option<String> = row.try_get("withdraw_reason")?;
    let ended_on: Option<String> = row.try_get("ended_on")?;
    codec::stored_record(
        &body,
        held_at_source != 0,
        &status,
        withdraw_reason.as_deref(),
        ended_on.as_deref(),
    )
}

impl SqliteStore {
    /// Starts a write transaction: queued behind this process's other
    /// writers, and `BEGIN IMMEDIATE` so SQLite takes the write lock at once
    /// (a deferred transaction that upgrades later can fail with "database
    /// is locked" without waiting).
    async fn write(
        &self,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, Transaction<'_, Sqlite>), StoreError> {
        let guard = self.writer.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((guard, tx))
    }

    async fn change(
        &self,
        key: &RecordKey,
        sql: &'static str,
        value: String,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        let (_writer, mut tx) = self.write().await?;
        let changed = sqlx::query(sql)
            .bind(value)
            .bind(now_text())
            .bind(&key.custodian)
            .bind(&key.record_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let outcome = if changed == 1 {
            ChangeOutcome::Done
        } else {
            ChangeOutcome::NotFound
        };
        let index = append_in(&mut tx, std::slice::from_ref(&audit(outcome))).await?;
        tx.commit().await?;
        Ok((outcome, index))
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// One SQLite file serves one hub process: it always sequences.
    async fn hold_sequencer_lease(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn publish(
        &self,
        records: &[Publishable],
        audit: PublishAudit<'_>,
    ) -> Result<(Vec<StoreOutcome>, u64), StoreError> {
        let (_writer, mut tx) = self.write().await?;
        let now = now_text();

        // What is held for the batch's keys, in one statement per chunk
        // (each statement through sqlx costs far more than each row).
        let mut held = codec::Held::new();
        for chunk in records.chunks(KEYS_PER_SELECT) {
            // A join, not `(custodian, record_id) IN (VALUES …)`: SQLite
            // plans that as a scan of the whole table.
            let mut select = sqlx::QueryBuilder::<Sqlite>::new(
                "SELECT r.custodian, r.record_id, r.version, r.content_hash FROM (",
            );
            select.push_values(chunk, |mut key, p| {
                key.push_bind(&p.record.custodian)
                    .push_bind(&p.record.record_id);
            });
            select.push(
                ") AS k JOIN records r ON r.custodian = k.column1 AND r.record_id = k.column2",
            );
            let rows: Vec<(String, String, i64, String)> =
                select.build_query_as().fetch_all(&mut *tx).await?;
            held.extend(rows.into_iter().map(|(c, id, v, h)| ((c, id), (v, h))));
        }
        let (outcomes, rows) = codec::decide_publish(records, held);

        // The accepted versions (the last of each key), in multi-row upserts.
        for chunk in rows.chunks(RECORD_ROWS_PER_INSERT) {
            let mut upsert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO records (custodian, record_id, version, nhs_number, relationship_type, \
                 status, withdraw_reason, ended_on, content_hash, retain_until, held_at_source, body, \
                 updated_at) ",
            );
            upsert.push_values(chunk, |mut row, &i| {
                let Publishable {
                    record,
                    held_at_source,
                } = &records[i];
                row.push_bind(&record.custodian)
                    .push_bind(&record.record_id)
                    .push_bind(record.version as i64)
                    .push_bind(record.subject.nhs_number.map(|n| n.as_digits()))
                    .push_bind(record.relationship_type.as_str())
                    .push("'active'")
                    .push("NULL")
                    .push("NULL")
                    .push_bind(&record.provenance.content_hash)
                    .push_bind(record.retain_until.map(|d| d.to_string()))
                    .push_bind(i64::from(*held_at_source))
                    .push_bind(body_of(record))
                    .push_bind(&now);
            });
            upsert.push(
                " ON CONFLICT (custodian, record_id) DO UPDATE SET version = excluded.version, \
                 nhs_number = excluded.nhs_number, relationship_type = excluded.relationship_type, \
                 status = 'active', withdraw_reason = NULL, ended_on = NULL, \
                 content_hash = excluded.content_hash, retain_until = excluded.retain_until, \
                 held_at_source = excluded.held_at_source, body = excluded.body, \
                 updated_at = excluded.updated_at",
            );
            upsert.build().execute(&mut *tx).await?;
        }
        let index = append_in(&mut tx, std::slice::from_ref(&audit(&outcomes))).await?;
        tx.commit().await?;
        Ok((outcomes, index))
    }

    async fn end_record(
        &self,
        key: &RecordKey,
        end: NaiveDate,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        self.change(
            key,
            "UPDATE records SET ended_on = ?, updated_at = ? WHERE custodian = ? AND record_id = ? AND status = 'active'",
            end.to_string(),
            audit,
        )
        .await
    }

    async fn withdraw_record(
        &self,
        key: &RecordKey,
        reason: WithdrawReason,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        self.change(
            key,
            "UPDATE records SET status = 'withdrawn', withdraw_reason = ?, updated_at = ? \
             WHERE custodian = ? AND record_id = ? AND status = 'active'",
            reason.as_str().to_string(),
            audit,
        )
        .await
    }

    async fn records_for_nhs_number(
        &self,
        nhs_number: &NhsNumber,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, held_at_source, status, withdraw_reason, ended_on FROM records \
             WHERE nhs_number = ? AND status = 'active' ORDER BY custodian, record_id",
        )
        .bind(nhs_number.as_digits())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_stored).collect()
    }

    async fn record(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT body, held_at_source, status, withdraw_reason, ended_on FROM records WHERE custodian = ? AND record_id = ?",
        )
        .bind(&key.custodian)
        .bind(&key.record_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_stored).transpose()
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<u64, StoreError> {
        let (_writer, mut tx) = self.write().await?;
        let first = append_in(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(first)
    }

    async fn audit_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredAuditEntry>, StoreError> {
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT idx, entry, leaf_hash FROM audit_log WHERE idx >= ? ORDER BY idx LIMIT ?",
        )
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(codec::audit_entry).collect()
    }

    async fn audit_leaf_hashes(&self, from: u64, limit: u32) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT leaf_hash FROM audit_log WHERE idx >= ? ORDER BY idx LIMIT ?",
        )
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|h| hash32(h, "leaf hash")).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row: Option<(i64, Vec<u8>, String)> = sqlx::query_as(
            "SELECT tree_size, root_hash, signed_note FROM audit_checkpoints \
             ORDER BY tree_size DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(codec::checkpoint).transpose()
    }

    async fn append_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (tree_size, root_hash, signed_note, signed_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(checkpoint.tree_size as i64)
        .bind(checkpoint.root_hash.to_vec())
        .bind(&checkpoint.signed_note)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_len(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }
}
