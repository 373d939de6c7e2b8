//! The PostgreSQL store: the production store, shared by several stateless
//! hub replicas.
//!
//! Every write transaction appends to the audit log, whose indexes must be
//! consecutive with no gaps. Writers are therefore sequenced across every
//! process on the database by one transaction-scoped advisory lock
//! ([`AUDIT_LOCK`]), taken first in each write transaction and released by
//! its commit or rollback; `MAX(idx) + 1` is read under it (READ COMMITTED
//! takes a fresh snapshot per statement, so it sees the previous holder's
//! committed rows). Reads take no lock. Commits are durable: the server's
//! default `synchronous_commit = on` is left alone.
//!
//! Only parameterised SQL; batches go in multi-row statements (PostgreSQL
//! allows 65,535 bound parameters per statement).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, SecondsFormat, Utc};
use kith_core::{NhsNumber, WithdrawReason};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};

use super::codec::{self, body_of, hash32};
use super::migrations::{self, POSTGRES};
use super::{
    AuditEffects, ChangeAudit, ChangeOutcome, DirectiveAudit, DirectiveOutcome, PublishAudit,
    Publishable, PurgeAudit, RecordKey, Store, StoreError, StoreOutcome, StoredAuditEntry,
    StoredCheckpoint, StoredRecord,
};
use crate::audit::AuditEntry;
use crate::model::{BreakGlassAccess, Notification, Review};
use kith_core::Directive;

/// The advisory lock key that sequences audit appends (and so every write)
/// across all hub processes sharing the database: "kith" "audt" in ASCII.
pub const AUDIT_LOCK: i64 = 0x6b69_7468_6175_6474;

/// Audit rows per INSERT: 4 parameters each, under PostgreSQL's 65,535.
const AUDIT_ROWS_PER_INSERT: usize = 10_000;
/// Record rows per upsert: 13 parameters each.
const RECORD_ROWS_PER_INSERT: usize = 5_000;

pub struct PostgresStore {
    pool: PgPool,
    /// While this process sequences: the connection whose session holds
    /// [`SEQUENCER_LOCK`]. PostgreSQL frees the lock if the process or the
    /// connection dies, and another replica takes it.
    sequencer: tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<Postgres>>>,
}

/// Session advisory lock held by the one replica that signs checkpoints.
pub const SEQUENCER_LOCK: i64 = 0x6b69_7468_7365_7171;

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`)
    /// and brings its schema up to date. Several processes may open the same
    /// database at once: sqlx's migrator serialises them on its own advisory
    /// lock.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("kith-hub")
            // Every statement the hub runs is a short indexed lookup or a
            // batched write. Without planner statistics (autovacuum off, or
            // not yet run after a bulk load) a lookup in 10M records is
            // costed above `jit_above_cost` and JIT-compiled on every call:
            // ~20 ms for a 0.1 ms read (measured, docs/benchmarks.md).
            .options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx already pings every connection as it goes back to the
            // pool and closes it if broken; a second ping before each use
            // cost a round trip to the server per statement.
            .test_before_acquire(false)
            // sqlx-postgres counts a dropped transaction's rollback at once,
            // so a connection cannot come back marked as inside one (as a
            // SQLite connection can after a full disk); the check is kept
            // so that it never does.
            .before_acquire(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .connect_with(options)
            .await?;
        migrations::migrator(POSTGRES).await?.run(&pool).await?;
        Ok(Self {
            pool,
            sequencer: tokio::sync::Mutex::new(None),
        })
    }

    /// The underlying pool, for tests that must reach past the interface.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a write transaction holding the audit sequencing lock.
    async fn write(&self) -> Result<Transaction<'_, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn change(
        &self,
        key: &RecordKey,
        sql: &'static str,
        value: String,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        let mut tx = self.write().await?;
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

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Appends `entries` with consecutive indexes inside `tx`, which must hold
/// [`AUDIT_LOCK`]. Returns the first index.
async fn append_in(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[AuditEntry],
) -> Result<u64, StoreError> {
    let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log")
        .fetch_one(&mut **tx)
        .await?;
    for (chunk_no, chunk) in entries.chunks(AUDIT_ROWS_PER_INSERT).enumerate() {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO audit_log (idx, recorded_at, entry, leaf_hash) ",
        );
        insert.push_values(chunk.iter().enumerate(), |mut row, (i, entry)| {
            let stored = codec::AuditRow::of(entry);
            row.push_bind(first + (chunk_no * AUDIT_ROWS_PER_INSERT + i) as i64)
                .push_bind(stored.at)
                .push_bind(stored.bytes)
                .push_bind(stored.leaf_hash.to_vec());
        });
        insert.build().execute(&mut **tx).await?;
    }
    let disclosed = codec::disclosures_in(entries);
    let at = now_text();
    // 4 parameters per row.
    for chunk in disclosed.chunks(10_000) {
        let mut insert = QueryBuilder::<Postgres>::new(
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
    tx: &mut Transaction<'_, Postgres>,
    notifications: &[Notification],
) -> Result<(), StoreError> {
    for chunk in notifications.chunks(5000) {
        let mut insert = QueryBuilder::<Postgres>::new(
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

/// Records from rows of a `records r LEFT JOIN directives d` select in key
/// order (columns `custodian`, `record_id`, the record's columns, and
/// `directive`, the directive's body or NULL): one record per key, with
/// its directives.
fn records_with_directives(rows: &[PgRow]) -> Result<Vec<StoredRecord>, StoreError> {
    let mut records: Vec<StoredRecord> = Vec::new();
    let mut last: Option<(String, String)> = None;
    for row in rows {
        let key: (String, String) = (row.try_get("custodian")?, row.try_get("record_id")?);
        if last.as_ref() != Some(&key) {
            records.push(row_to_stored(row)?);
            last = Some(key);
        }
        let directive: Option<String> = row.try_get("directive")?;
        if let (Some(body), Some(stored)) = (directive, records.last_mut()) {
            stored
                .directives
                .push(codec::from_json(&body, "directive body")?);
        }
    }
    Ok(records)
}

fn row_to_stored(row: &PgRow) -> Result<StoredRecord, StoreError> {
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

#[async_trait]
impl Store for PostgresStore {
    async fn release_sequencer_lease(&self) {
        if let Some(mut conn) = self.sequencer.lock().await.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SEQUENCER_LOCK)
                .execute(&mut *conn)
                .await;
        }
    }

    async fn hold_sequencer_lease(&self) -> Result<bool, StoreError> {
        let mut held = self.sequencer.lock().await;
        if let Some(conn) = held.as_mut() {
            // Still alive? A dead connection has lost the lock with it.
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                return Ok(true);
            }
            *held = None;
            tracing::warn!("lost the sequencer lease with its connection");
        }
        let mut conn = self.pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SEQUENCER_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            tracing::info!("this hub now signs the audit log's checkpoints");
            *held = Some(conn);
        }
        Ok(got)
    }

    async fn publish(
        &self,
        records: &[Publishable],
        audit: PublishAudit<'_>,
    ) -> Result<(Vec<StoreOutcome>, u64), StoreError> {
        let mut tx = self.write().await?;
        let now = now_text();

        // What is held for every record in the batch, in one statement.
        let custodians: Vec<&str> = records
            .iter()
            .map(|p| p.record.custodian.as_str())
            .collect();
        let ids: Vec<&str> = records
            .iter()
            .map(|p| p.record.record_id.as_str())
            .collect();
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT r.custodian, r.record_id, r.version, r.content_hash \
             FROM records r \
             JOIN UNNEST($1::text[], $2::text[]) AS k (custodian, record_id) \
               ON r.custodian = k.custodian AND r.record_id = k.record_id \
             FOR UPDATE OF r",
        )
        .bind(&custodians)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let held: codec::Held = rows
            .into_iter()
            .map(|(c, id, v, h)| ((c, id), (v, h)))
            .collect();
        let (outcomes, rows) = codec::decide_publish(records, held);

        // The accepted versions (the last of each key), in multi-row upserts.
        for chunk in rows.chunks(RECORD_ROWS_PER_INSERT) {
            let mut upsert = QueryBuilder::<Postgres>::new(
                "INSERT INTO records (custodian, record_id, version, nhs_number, relationship_type, \
                 status, withdraw_reason, ended_on, content_hash, retain_until, held_at_source, body, \
                 updated_at, date_of_birth, postcode_key) ",
            );
            upsert.push_values(chunk, |mut row, &i| {
                let Publishable {
                    record,
                    held_at_source,
                } = &records[i];
                row.push_bind(record.custodian.clone())
                    .push_bind(record.record_id.clone())
                    .push_bind(record.version as i64)
                    .push_bind(record.subject.nhs_number.map(|n| n.as_digits()))
                    .push_bind(record.relationship_type.as_str())
                    .push("'active'")
                    .push("NULL")
                    .push("NULL")
                    .push_bind(record.provenance.content_hash.clone())
                    .push_bind(record.retain_until.map(|d| d.to_string()))
                    .push_bind(i64::from(*held_at_source))
                    .push_bind(body_of(record))
                    .push_bind(now.clone());
                let (date_of_birth, postcode_key) = codec::blocking_keys(record);
                row.push_bind(date_of_birth).push_bind(postcode_key);
            });
            upsert.push(
                " ON CONFLICT (custodian, record_id) DO UPDATE SET version = EXCLUDED.version, \
                 nhs_number = EXCLUDED.nhs_number, relationship_type = EXCLUDED.relationship_type, \
                 status = 'active', withdraw_reason = NULL, ended_on = NULL, \
                 content_hash = EXCLUDED.content_hash, retain_until = EXCLUDED.retain_until, \
                 held_at_source = EXCLUDED.held_at_source, body = EXCLUDED.body, \
                 updated_at = EXCLUDED.updated_at, date_of_birth = EXCLUDED.date_of_birth, \
                 postcode_key = EXCLUDED.postcode_key",
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
            "UPDATE records SET ended_on = $1, updated_at = $2 \
             WHERE custodian = $3 AND record_id = $4 AND status = 'active'",
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
            "UPDATE records SET status = 'withdrawn', withdraw_reason = $1, updated_at = $2 \
             WHERE custodian = $3 AND record_id = $4 AND status = 'active'",
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
        // One statement: each record with its directives (one row per
        // directive, or one row with none), in key order.
        let rows = sqlx::query(
            "SELECT r.custodian, r.record_id, r.body, r.held_at_source, r.status, \
             r.withdraw_reason, r.ended_on, d.body AS directive FROM records r \
             LEFT JOIN directives d ON d.custodian = r.custodian AND d.record_id = r.record_id \
             WHERE r.nhs_number = $1 AND r.status = 'active' \
             AND (r.retain_until IS NULL OR r.retain_until >= $2) ORDER BY r.custodian, r.record_id",
        )
        .bind(nhs_number.as_digits())
        .bind(today.to_string())
        .fetch_all(&self.pool)
        .await?;
        records_with_directives(&rows)
    }

    async fn record(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT body, held_at_source, status, withdraw_reason, ended_on FROM records \
             WHERE custodian = $1 AND record_id = $2",
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
        let mut tx = self.write().await?;
        let first = append_in(&mut tx, entries).await?;
        let placed = effects.placed_at(first);
        insert_notifications_in(&mut tx, &placed.notifications).await?;
        for access in &placed.break_glass {
            sqlx::query(
                "INSERT INTO break_glass (query_id, authority, user_id, subject, expires_at, reviewed, body) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6)",
            )
            .bind(&access.query_id)
            .bind(&access.authority)
            .bind(&access.user.user_id)
            .bind(&access.subject)
            .bind(&access.expires_at)
            .bind(codec::json_of(access))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(first)
    }

    async fn audit_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredAuditEntry>, StoreError> {
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT idx, entry, leaf_hash FROM audit_log WHERE idx >= $1 ORDER BY idx LIMIT $2",
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
            "SELECT idx, entry, leaf_hash FROM audit_log WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch(&self.pool);
        codec::audit_entries_within(rows, max_bytes).await
    }

    async fn audit_leaf_hashes(&self, from: u64, limit: u32) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT leaf_hash FROM audit_log WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|h| hash32(h, "leaf hash")).collect()
    }

    async fn audit_len(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
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
        sqlx::query(
            "INSERT INTO audit_checkpoints (tree_size, root_hash, signed_note, signed_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(checkpoint.tree_size as i64)
        .bind(checkpoint.root_hash.to_vec())
        .bind(&checkpoint.signed_note)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn records_for_demographics(
        &self,
        dates_of_birth: &[NaiveDate],
        postcode_key: Option<&str>,
        limit: u32,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        // The block (at most `limit` records), each with its directives,
        // in one statement.
        let dates: Vec<String> = dates_of_birth.iter().map(|d| d.to_string()).collect();
        let rows = sqlx::query(
            "SELECT r.custodian, r.record_id, r.body, r.held_at_source, r.status, \
             r.withdraw_reason, r.ended_on, d.body AS directive FROM \
             (SELECT * FROM records WHERE status = 'active' \
              AND (date_of_birth = ANY($1::text[]) OR postcode_key = $2) \
              AND (retain_until IS NULL OR retain_until >= $4) \
              ORDER BY custodian, record_id LIMIT $3) r \
             LEFT JOIN directives d ON d.custodian = r.custodian AND d.record_id = r.record_id \
             ORDER BY r.custodian, r.record_id",
        )
        .bind(&dates)
        .bind(postcode_key.unwrap_or_default())
        .bind(i64::from(limit))
        .bind(today.to_string())
        .fetch_all(&self.pool)
        .await?;
        records_with_directives(&rows)
    }

    async fn publish_directives(
        &self,
        directives: &[Directive],
        audit: DirectiveAudit<'_>,
    ) -> Result<(Vec<DirectiveOutcome>, u64), StoreError> {
        let mut tx = self.write().await?;
        let now = now_text();
        let mut outcomes = Vec::with_capacity(directives.len());
        for d in directives {
            let hash = d.content_hash();
            let held: Option<(i64, String, String)> = sqlx::query_as(
                "SELECT version, content_hash, record_id FROM directives \
                 WHERE custodian = $1 AND directive_id = $2",
            )
            .bind(&d.custodian)
            .bind(&d.directive_id)
            .fetch_optional(&mut *tx)
            .await?;
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT 1::bigint FROM records WHERE custodian = $1 AND record_id = $2",
            )
            .bind(&d.custodian)
            .bind(&d.record_id)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = codec::directive_outcome(d, &hash, held, exists.is_some());
            if outcome == DirectiveOutcome::Accepted {
                sqlx::query(
                    "INSERT INTO directives (custodian, directive_id, version, record_id, content_hash, body, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
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
        let mut tx = self.write().await?;
        let expired: Vec<(String, String)> = sqlx::query_as(
            "SELECT custodian, record_id FROM records WHERE retain_until IS NOT NULL AND retain_until < $1 \
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
                "DELETE FROM directives WHERE custodian = $1 AND record_id = $2",
                "DELETE FROM records WHERE custodian = $1 AND record_id = $2",
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
            "SELECT recipient FROM disclosures WHERE custodian = $1 AND record_id = $2 ORDER BY recipient",
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
        let mut tx = self.write().await?;
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
            "SELECT body FROM notifications WHERE authority = $1 AND delivered_at IS NULL \
             ORDER BY created_at, notification_id LIMIT $2",
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
        let mut tx = self.write().await?;
        let body: Option<String> = sqlx::query_scalar(
            "UPDATE notifications SET delivered_at = $1 \
             WHERE notification_id = $2 AND authority = $3 AND delivered_at IS NULL RETURNING body",
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
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM break_glass WHERE authority = $1 AND user_id = $2 AND subject = $3 \
             AND expires_at > $4 ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(authority)
        .bind(user_id)
        .bind(subject)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        body.map(|b| codec::from_json(&b, "break-glass body"))
            .transpose()
    }

    async fn break_glass_accesses(
        &self,
        authority: &str,
        include_reviewed: bool,
    ) -> Result<Vec<BreakGlassAccess>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM break_glass WHERE authority = $1 AND (reviewed = 0 OR $2::boolean) \
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
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM break_glass WHERE authority = $1 AND query_id = $2",
        )
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
        let mut tx = self.write().await?;
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM break_glass WHERE authority = $1 AND query_id = $2",
        )
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
            "UPDATE break_glass SET reviewed = 1, body = $1 WHERE authority = $2 AND query_id = $3",
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
