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
use super::sqlite_audit::AuditAppender;
use super::sqlite_reads::Readers;
use super::{
    AuditEffects, ChangeAudit, ChangeOutcome, DirectiveAudit, DirectiveOutcome, PublishAudit,
    Publishable, PurgeAudit, RecordKey, Store, StoreError, StoreOutcome, StoredAuditEntry,
    StoredCheckpoint, StoredRecord,
};
use crate::audit::AuditEntry;
use crate::model::{BreakGlassAccess, Notification, Review};
use kith_core::Directive;

/// Record keys per SELECT: 2 parameters each, under SQLite's 32,766.
const KEYS_PER_SELECT: usize = 10_000;
/// Record rows per upsert: 12 parameters each.
const RECORD_ROWS_PER_INSERT: usize = 1_000;

pub struct SqliteStore {
    pool: SqlitePool,
    writer: Mutex<()>,
    /// The query path's reads, on the calling thread.
    reads: Readers,
    /// The audit group commit, on a connection of its own.
    audit: AuditAppender,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `url`
    /// (`sqlite://path`) and brings its schema up to date. An in-memory
    /// database is refused: the audit log must outlive the process, and the
    /// query path reads the file through connections of its own.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Config(format!(
                "database_url {url:?}: an in-memory SQLite database would lose the audit log \
                 when the hub stops; give a file, sqlite://PATH"
            )));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let path = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A file on this machine does not go stale like a network
            // connection: pinging each connection's worker thread before
            // every use cost a thread hand-off per statement (measured).
            .test_before_acquire(false)
            // When a statement fails with SQLITE_FULL (or SQLITE_IOERR),
            // SQLite may roll the transaction back itself; the ROLLBACK sqlx
            // then sends fails ("no transaction is active"), and sqlx keeps
            // the connection marked as inside a transaction. Returned to the
            // pool like that, every later `BEGIN` on it failed ("begin_with
            // at non-zero transaction depth") until the hub restarted: a full
            // disk broke publishing and checkpoint signing for good. Such a
            // connection is closed instead, and the pool opens a fresh one.
            .before_acquire(|conn, _| Box::pin(async move { Ok(!poisoned(conn)) }))
            .connect_with(options)
            .await?;
        migrations::migrator(SQLITE).await?.run(&pool).await?;
        Ok(Self {
            pool,
            writer: Mutex::new(()),
            audit: AuditAppender::open(&path)?,
            reads: Readers::open(path)?,
        })
    }

    /// The underlying pool, for tests that must reach past the interface
    /// (for example to tamper with a stored row).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Whether a pooled connection still believes it is inside a transaction
/// (see the pool's `before_acquire` in [`SqliteStore::open`]). Checked as
/// the pool hands a connection out: by then the rollback a dropped
/// transaction queued has run (sqlx pings each connection on release).
fn poisoned(conn: &mut sqlx::SqliteConnection) -> bool {
    use sqlx::Connection;
    let stuck = conn.is_in_transaction();
    if stuck {
        tracing::warn!(
            "a pooled SQLite connection came back still inside a transaction \
             (SQLite rolled it back itself, for example on a full disk); closing it"
        );
    }
    stuck
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
            let stored = codec::AuditRow::of(entry);
            row.push_bind(first + (chunk_no * 1000 + i) as i64)
                .push_bind(stored.at)
                .push_bind(stored.bytes)
                .push_bind(stored.leaf_hash.to_vec());
        });
        insert.build().execute(&mut **tx).await?;
    }
    let disclosed = codec::disclosures_in(entries);
    let at = now_text();
    // 4 parameters per row.
    for chunk in disclosed.chunks(5000) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO disclosures (custodian, record_id, recipient, first_at) ",
        );
        insert.push_values(chunk, |mut row, (custodian, record_id, recipient)| {
            row.push_bind(*custodian)
                .push_bind(*record_id)
                .push_bind(*recipient)
                .push_bind(&at);
        });
        insert.push(" ON CONFLICT DO NOTHING");
        insert.build().execute(&mut **tx).await?;
    }
    Ok(first as u64)
}

/// Inserts notifications inside `tx`, in multi-row statements.
async fn insert_notifications_in(
    tx: &mut Transaction<'_, Sqlite>,
    notifications: &[Notification],
) -> Result<(), StoreError> {
    for chunk in notifications.chunks(5000) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO notifications (notification_id, authority, body, created_at) ",
        );
        insert.push_values(chunk, |mut row, n| {
            row.push_bind(&n.notification_id)
                .push_bind(&n.recipient)
                .push_bind(codec::json_of(n))
                .push_bind(&n.occurred_at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
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
                 updated_at, date_of_birth, postcode_key) ",
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
                let (date_of_birth, postcode_key) = codec::blocking_keys(record);
                row.push_bind(date_of_birth).push_bind(postcode_key);
            });
            upsert.push(
                " ON CONFLICT (custodian, record_id) DO UPDATE SET version = excluded.version, \
                 nhs_number = excluded.nhs_number, relationship_type = excluded.relationship_type, \
                 status = 'active', withdraw_reason = NULL, ended_on = NULL, \
                 content_hash = excluded.content_hash, retain_until = excluded.retain_until, \
                 held_at_source = excluded.held_at_source, body = excluded.body, \
                 updated_at = excluded.updated_at, date_of_birth = excluded.date_of_birth, \
                 postcode_key = excluded.postcode_key",
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
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.reads
            .records_for_nhs_number(&nhs_number.as_digits(), today)
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

    async fn append_audit_with(
        &self,
        entries: &[AuditEntry],
        effects: &AuditEffects,
    ) -> Result<u64, StoreError> {
        // Everything but the transaction is prepared here, before taking
        // the writer lock.
        let rows: Vec<codec::AuditRow> = entries.iter().map(codec::AuditRow::of).collect();
        let disclosed = codec::disclosures_in(entries)
            .into_iter()
            .map(|(c, r, to)| (c.to_string(), r.to_string(), to.to_string()))
            .collect();
        let _writer = self.writer.lock().await;
        self.audit
            .append(rows, disclosed, effects.clone(), now_text())
            .await
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

    async fn audit_entries_within(
        &self,
        from: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<Vec<StoredAuditEntry>, StoreError> {
        let rows = sqlx::query_as::<_, (i64, Vec<u8>, Vec<u8>)>(
            "SELECT idx, entry, leaf_hash FROM audit_log WHERE idx >= ? ORDER BY idx LIMIT ?",
        )
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch(&self.pool);
        codec::audit_entries_within(rows, max_bytes).await
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

    async fn records_for_demographics(
        &self,
        dates_of_birth: &[NaiveDate],
        postcode_key: Option<&str>,
        limit: u32,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.reads
            .records_for_demographics(dates_of_birth, postcode_key, limit, today)
    }

    async fn publish_directives(
        &self,
        directives: &[Directive],
        audit: DirectiveAudit<'_>,
    ) -> Result<(Vec<DirectiveOutcome>, u64), StoreError> {
        let (_writer, mut tx) = self.write().await?;
        let now = now_text();
        let mut outcomes = Vec::with_capacity(directives.len());
        for d in directives {
            let hash = d.content_hash();
            let held: Option<(i64, String, String)> = sqlx::query_as(
                "SELECT version, content_hash, record_id FROM directives \
                 WHERE custodian = ? AND directive_id = ?",
            )
            .bind(&d.custodian)
            .bind(&d.directive_id)
            .fetch_optional(&mut *tx)
            .await?;
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM records WHERE custodian = ? AND record_id = ?")
                    .bind(&d.custodian)
                    .bind(&d.record_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = codec::directive_outcome(d, &hash, held, exists.is_some());
            if outcome == DirectiveOutcome::Accepted {
                sqlx::query(
                    "INSERT INTO directives (custodian, directive_id, version, record_id, content_hash, body, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (custodian, directive_id) DO UPDATE SET version = excluded.version, \
                     record_id = excluded.record_id, content_hash = excluded.content_hash, \
                     body = excluded.body, updated_at = excluded.updated_at",
                )
                .bind(&d.custodian)
                .bind(&d.directive_id)
                .bind(d.version as i64)
                .bind(&d.record_id)
                .bind(&hash)
                .bind(codec::json_of(d))
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
            outcomes.push(outcome);
        }
        let index = append_in(&mut tx, std::slice::from_ref(&audit(&outcomes))).await?;
        tx.commit().await?;
        Ok((outcomes, index))
    }

    async fn purge_expired(
        &self,
        today: NaiveDate,
        audit: PurgeAudit<'_>,
    ) -> Result<Vec<(RecordKey, u64)>, StoreError> {
        let (_writer, mut tx) = self.write().await?;
        let expired: Vec<(String, String)> = sqlx::query_as(
            "SELECT custodian, record_id FROM records WHERE retain_until IS NOT NULL AND retain_until < ? \
             ORDER BY custodian, record_id LIMIT 1000",
        )
        .bind(today.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut purged = Vec::with_capacity(expired.len());
        for (custodian, record_id) in expired {
            let key = RecordKey {
                custodian,
                record_id,
            };
            for sql in [
                "DELETE FROM directives WHERE custodian = ? AND record_id = ?",
                "DELETE FROM records WHERE custodian = ? AND record_id = ?",
            ] {
                sqlx::query(sql)
                    .bind(&key.custodian)
                    .bind(&key.record_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let index = append_in(&mut tx, std::slice::from_ref(&audit(&key))).await?;
            purged.push((key, index));
        }
        tx.commit().await?;
        Ok(purged)
    }

    async fn recipients_of(&self, key: &RecordKey) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT recipient FROM disclosures WHERE custodian = ? AND record_id = ? ORDER BY recipient",
        )
        .bind(&key.custodian)
        .bind(&key.record_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn enqueue_notifications(
        &self,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.write().await?;
        insert_notifications_in(&mut tx, notifications).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_notifications(
        &self,
        authority: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM notifications WHERE authority = ? AND delivered_at IS NULL \
             ORDER BY created_at, notification_id LIMIT ?",
        )
        .bind(authority)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|b| codec::from_json(b, "notification body"))
            .collect()
    }

    async fn mark_notification_delivered(
        &self,
        authority: &str,
        notification_id: &str,
        at: &str,
    ) -> Result<Option<Notification>, StoreError> {
        let (_writer, mut tx) = self.write().await?;
        let body: Option<String> = sqlx::query_scalar(
            "UPDATE notifications SET delivered_at = ? \
             WHERE notification_id = ? AND authority = ? AND delivered_at IS NULL RETURNING body",
        )
        .bind(at)
        .bind(notification_id)
        .bind(authority)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        body.map(|b| codec::from_json(&b, "notification body"))
            .transpose()
    }

    async fn open_break_glass(
        &self,
        authority: &str,
        user_id: &str,
        subject: &str,
        now: &str,
    ) -> Result<Option<BreakGlassAccess>, StoreError> {
        self.reads
            .open_break_glass(authority, user_id, subject, now)
    }

    async fn break_glass_accesses(
        &self,
        authority: &str,
        include_reviewed: bool,
    ) -> Result<Vec<BreakGlassAccess>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM break_glass WHERE authority = ? AND (reviewed = 0 OR ?) \
             ORDER BY expires_at DESC, query_id LIMIT 10000",
        )
        .bind(authority)
        .bind(include_reviewed)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|b| codec::from_json(b, "break-glass body"))
            .collect()
    }

    async fn break_glass_access(
        &self,
        authority: &str,
        query_id: &str,
    ) -> Result<Option<BreakGlassAccess>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM break_glass WHERE authority = ? AND query_id = ?")
                .bind(authority)
                .bind(query_id)
                .fetch_optional(&self.pool)
                .await?;
        body.map(|b| codec::from_json(&b, "break-glass body"))
            .transpose()
    }

    async fn review_break_glass(
        &self,
        authority: &str,
        query_id: &str,
        review: &Review,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        let (_writer, mut tx) = self.write().await?;
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM break_glass WHERE authority = ? AND query_id = ?")
                .bind(authority)
                .bind(query_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(body) = body else {
            let index = append_in(
                &mut tx,
                std::slice::from_ref(&audit(ChangeOutcome::NotFound)),
            )
            .await?;
            tx.commit().await?;
            return Ok((ChangeOutcome::NotFound, index));
        };
        let index = append_in(&mut tx, std::slice::from_ref(&audit(ChangeOutcome::Done))).await?;
        let mut access: BreakGlassAccess = codec::from_json(&body, "break-glass body")?;
        access.review = Some(Review {
            audit_index: index,
            ..review.clone()
        });
        sqlx::query(
            "UPDATE break_glass SET reviewed = 1, body = ? WHERE authority = ? AND query_id = ?",
        )
        .bind(codec::json_of(&access))
        .bind(authority)
        .bind(query_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((ChangeOutcome::Done, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_database_is_refused_with_the_reason() {
        for url in ["sqlite::memory:", "sqlite://file?mode=memory"] {
            let Err(StoreError::Config(message)) = SqliteStore::open(url).await else {
                panic!("{url} was accepted");
            };
            assert!(message.contains("would lose the audit log"), "{message}");
            assert!(message.contains("sqlite://PATH"), "{message}");
        }
    }

    fn today() -> chrono::NaiveDate {
        Utc::now().date_naive()
    }

    /// A valid record about `nhs`, sealed, kept until `retain_until`.
    fn record_about(nhs: &kith_core::NhsNumber, id: &str, retain_until: &str) -> kith_core::Record {
        let mut record: kith_core::Record = serde_json::from_value(serde_json::json!({
            "record_id": id, "version": 1, "custodian": "E08000006",
            "subject": {"nhs_number": nhs.as_digits(),
                "demographics": {"given_name": "Amara", "family_name": "Davies",
                    "date_of_birth": "2016-05-14", "postcode": "M16 6TR"}},
            "relationship_type": "child_in_need", "sensitivity": "normal",
            "period": {"start": "2020-01-01"},
            "key_worker": {"name": "J. Smith", "phone": "0161 496 0000"},
            "lawful_basis": {"article6": "public_task"},
            "permitted_purposes": ["safeguarding"], "residency": "england",
            "retain_until": retain_until
        }))
        .unwrap();
        record.seal();
        record
    }

    #[tokio::test]
    async fn records_past_retention_are_left_out_by_the_read_before_the_block_limit() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let nhs = kith_core::NhsNumber::in_test_range(2);
        let yesterday = (today() - chrono::Days::new(1)).to_string();
        let publishable = [
            // First in key order: with a block of one, it would take the slot.
            Publishable {
                record: record_about(&nhs, "case-0", &yesterday),
                held_at_source: false,
            },
            Publishable {
                record: record_about(&nhs, "case-1", &today().to_string()),
                held_at_source: false,
            },
        ];
        let audit = |_: &[StoreOutcome]| {
            AuditEntry::new(crate::audit::AuditKind::Publish, "E08000006", Utc::now())
        };
        store.publish(&publishable, &audit).await.unwrap();
        let ids = |found: Vec<StoredRecord>| -> Vec<String> {
            found.into_iter().map(|s| s.record.record_id).collect()
        };
        assert_eq!(
            ids(store.records_for_nhs_number(&nhs, today()).await.unwrap()),
            ["case-1"],
            "kept until today is still current; until yesterday is gone"
        );
        let born = chrono::NaiveDate::from_ymd_opt(2016, 5, 14).unwrap();
        assert_eq!(
            ids(store
                .records_for_demographics(&[born], None, 1, today())
                .await
                .unwrap()),
            ["case-1"],
            "the expired record does not count against the block's limit"
        );
        // The day before its expiry, it is still there.
        assert_eq!(
            store
                .records_for_nhs_number(&nhs, today() - chrono::Days::new(1))
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn a_query_path_read_sees_what_the_writer_just_committed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let nhs = kith_core::NhsNumber::in_test_range(1);
        assert!(
            store
                .records_for_nhs_number(&nhs, today())
                .await
                .unwrap()
                .is_empty()
        );
        let mut record: kith_core::Record = serde_json::from_value(serde_json::json!({
            "record_id": "case-1", "version": 1, "custodian": "E08000006",
            "subject": {"nhs_number": nhs.as_digits()},
            "relationship_type": "child_in_need", "sensitivity": "normal",
            "period": {"start": "2025-01-01"},
            "key_worker": {"name": "J. Smith", "phone": "0161 496 0000"},
            "lawful_basis": {"article6": "public_task"},
            "permitted_purposes": ["safeguarding"], "residency": "england"
        }))
        .unwrap();
        record.seal();
        let publishable = [Publishable {
            record,
            held_at_source: false,
        }];
        let audit = |_: &[StoreOutcome]| {
            AuditEntry::new(crate::audit::AuditKind::Publish, "E08000006", Utc::now())
        };
        store.publish(&publishable, &audit).await.unwrap();
        let found = store.records_for_nhs_number(&nhs, today()).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].record, publishable[0].record);
    }
}
