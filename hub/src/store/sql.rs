//! The store's one body: every statement SQLite and PostgreSQL share,
//! written once over sqlx's generic [`Database`].
//!
//! The two databases hold the same tables with the same columns
//! ([`super::codec`] lays the values out), so a publish, a directive, a
//! purge, a review or a notification is the same SQL on both. What differs
//! is small and named by the [`Dialect`] each store supplies:
//!
//! - how a write transaction begins and how writers are put in order
//!   (SQLite: `BEGIN IMMEDIATE` behind this process's writer lock;
//!   PostgreSQL: also a transaction-scoped advisory lock, since several
//!   hub processes may share the database);
//! - the three reads a query makes, which SQLite runs on rusqlite on the
//!   caller's thread (`sqlite_reads.rs`) and PostgreSQL with its arrays;
//! - the audit group commit, which SQLite runs as one blocking task on a
//!   connection of its own (`sqlite_audit.rs`) and PostgreSQL through
//!   [`SqlStore::append_audit_in`] here;
//! - the sequencer lease (only PostgreSQL has rivals for it).
//!
//! Placeholders are `$1`, `$2`, … in every statement: PostgreSQL's own
//! form, which sqlx's SQLite driver binds by number too. Batches go in
//! multi-row statements sized under SQLite's 32,766 bound parameters, the
//! lower of the two limits.

use async_trait::async_trait;
use chrono::{NaiveDate, SecondsFormat, Utc};
use kith_core::{Directive, NhsNumber, WithdrawReason};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type,
};
use tokio::sync::{Mutex, MutexGuard};

use super::codec::{self, body_of, hash32};
use super::{
    AuditEffects, ChangeAudit, ChangeEffects, ChangeOutcome, DirectiveAudit, DirectiveOutcome,
    PublishEffects, Publishable, PurgeAudit, RecordKey, Store, StoreError, StoreOutcome,
    StoredAuditEntry, StoredCheckpoint, StoredRecord, SubscribeAudit, SubscribeOutcome,
    UnsubscribeAudit, UnsubscribeOutcome,
};
use crate::audit::{AuditEntry, AuditKind};
use crate::model::{BreakGlassAccess, Notification, Review, Subscription};

/// Record keys per SELECT: 2 parameters each.
const KEYS_PER_SELECT: usize = 10_000;
/// Record rows per upsert: 13 parameters each.
const RECORD_ROWS_PER_INSERT: usize = 1_000;
/// Audit rows per INSERT: 4 parameters each.
const AUDIT_ROWS_PER_INSERT: usize = 5_000;
/// Disclosure or notification rows per INSERT: 4 parameters each.
const ROWS_PER_INSERT: usize = 5_000;

/// A value the store binds and reads back on database `DB`. Its
/// supertraits are implied wherever the bound is named, which keeps the
/// generic body's bounds to one line per column type.
pub trait Column<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + Sync
{
}
impl<DB: Database, T> Column<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + Sync
{
}

/// What one database does its own way (see the module doc).
#[async_trait]
pub trait Dialect: Send + Sync + Sized + 'static {
    type DB: Database;

    /// The statement a write transaction begins with.
    const BEGIN_WRITE: &'static str;

    /// A statement run first in every write transaction, to put writers
    /// from every process in order, if the database needs one.
    const ORDER_WRITERS: Option<&'static str>;

    /// A connection as the executor sqlx runs statements on.
    fn exec<'c>(
        conn: &'c mut <Self::DB as Database>::Connection,
    ) -> impl Executor<'c, Database = Self::DB> + 'c;

    /// See [`Store::records_for_nhs_number`].
    async fn records_for_nhs_number(
        &self,
        store: &SqlStore<Self>,
        nhs_digits: &str,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// See [`Store::records_for_demographics`].
    async fn records_for_demographics(
        &self,
        store: &SqlStore<Self>,
        dates_of_birth: &[NaiveDate],
        postcode_key: Option<&str>,
        limit: u32,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// See [`Store::open_break_glass`].
    async fn open_break_glass(
        &self,
        store: &SqlStore<Self>,
        authority: &str,
        user_id: &str,
        subject: &str,
        now: &str,
    ) -> Result<Option<BreakGlassAccess>, StoreError>;

    /// See [`Store::append_audit_with`].
    async fn append_audit_with(
        &self,
        store: &SqlStore<Self>,
        entries: &[AuditEntry],
        effects: &AuditEffects,
    ) -> Result<u64, StoreError>;

    /// See [`Store::hold_sequencer_lease`].
    async fn hold_sequencer_lease(&self, store: &SqlStore<Self>) -> Result<bool, StoreError>;

    /// See [`Store::release_sequencer_lease`].
    async fn release_sequencer_lease(&self) {}
}

/// A store over database `D::DB`: the pool, this process's writer queue,
/// and the dialect's own state.
pub struct SqlStore<D: Dialect> {
    pub(super) pool: Pool<D::DB>,
    /// Writers queue here rather than collide in the database and retry.
    pub(super) writer: Mutex<()>,
    pub(super) dialect: D,
}

/// A write transaction, holding this process's writer lock until it ends.
pub(super) struct Write<'a, DB: Database> {
    _queued: MutexGuard<'a, ()>,
    pub(super) tx: Transaction<'static, DB>,
}

/// The `VALUES` rows of a multi-row statement: `row` written `rows` times,
/// each `?` in it numbered on (`$1`, `$2`, …) across the rows, in the order
/// the values are bound.
fn values(row: &str, rows: usize) -> String {
    let mut out = String::with_capacity((row.len() + 16) * rows);
    let mut n = 0;
    for i in 0..rows {
        if i > 0 {
            out.push_str(", ");
        }
        for c in row.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
    }
    out
}

pub(super) fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl<D: Dialect> SqlStore<D> {
    /// The underlying pool, for tests that must reach past the interface
    /// (for example to tamper with a stored row).
    pub fn pool(&self) -> &Pool<D::DB> {
        &self.pool
    }
}

impl<D> SqlStore<D>
where
    D: Dialect,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
    i64: Column<D::DB>,
    String: Column<D::DB>,
    Option<String>: Column<D::DB>,
    Vec<u8>: Column<D::DB>,
{
    /// Starts a write transaction: queued behind this process's other
    /// writers, begun as the dialect says, writers ordered across processes
    /// where the dialect needs it.
    pub(super) async fn write(&self) -> Result<Write<'_, D::DB>, StoreError> {
        let queued = self.writer.lock().await;
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        if let Some(order) = D::ORDER_WRITERS {
            sqlx::query(order).execute(D::exec(&mut tx)).await?;
        }
        Ok(Write {
            _queued: queued,
            tx,
        })
    }

    /// Appends `entries` with consecutive indexes inside a write
    /// transaction, notes the records they disclosed, and stores `effects`
    /// (each `audit_index` a position in `entries`). Returns the first index.
    pub(super) async fn append_audit_in(
        tx: &mut Transaction<'static, D::DB>,
        entries: &[AuditEntry],
        effects: &AuditEffects,
    ) -> Result<u64, StoreError> {
        let first = Self::append_in(tx, entries).await?;
        let placed = effects.placed_at(first);
        Self::insert_notifications_in(tx, &placed.notifications).await?;
        for chunk in placed.break_glass.chunks(ROWS_PER_INSERT / 2) {
            let sql = format!(
                "INSERT INTO break_glass (query_id, authority, user_id, subject, expires_at, reviewed, body) \
                 VALUES {}",
                values("(?, ?, ?, ?, ?, 0, ?)", chunk.len())
            );
            let mut insert = sqlx::query(&sql);
            for access in chunk {
                insert = insert
                    .bind(access.query_id.clone())
                    .bind(access.authority.clone())
                    .bind(access.user.user_id.clone())
                    .bind(access.subject.clone())
                    .bind(access.expires_at.clone())
                    .bind(codec::json_of(access));
            }
            insert.execute(D::exec(tx)).await?;
        }
        Ok(first)
    }

    /// Appends `entries` with consecutive indexes inside `tx`, in multi-row
    /// INSERTs (each statement costs far more than each row), and notes the
    /// records they disclosed. Returns the first index.
    async fn append_in(
        tx: &mut Transaction<'static, D::DB>,
        entries: &[AuditEntry],
    ) -> Result<u64, StoreError> {
        let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log")
            .fetch_one(D::exec(tx))
            .await?;
        for (chunk_no, chunk) in entries.chunks(AUDIT_ROWS_PER_INSERT).enumerate() {
            let sql = format!(
                "INSERT INTO audit_log (idx, recorded_at, entry, leaf_hash) VALUES {}",
                values("(?, ?, ?, ?)", chunk.len())
            );
            let mut insert = sqlx::query(&sql);
            for (i, entry) in chunk.iter().enumerate() {
                let stored = codec::AuditRow::of(entry);
                insert = insert
                    .bind(first + (chunk_no * AUDIT_ROWS_PER_INSERT + i) as i64)
                    .bind(stored.at)
                    .bind(stored.bytes)
                    .bind(stored.leaf_hash.to_vec());
            }
            insert.execute(D::exec(tx)).await?;
        }
        let disclosed = codec::disclosures_in(entries);
        let at = now_text();
        for chunk in disclosed.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO disclosures (custodian, record_id, recipient, first_at) VALUES {} \
                 ON CONFLICT DO NOTHING",
                values("(?, ?, ?, ?)", chunk.len())
            );
            let mut insert = sqlx::query(&sql);
            for (custodian, record_id, recipient) in chunk {
                insert = insert
                    .bind(custodian.to_string())
                    .bind(record_id.to_string())
                    .bind(recipient.to_string())
                    .bind(at.clone());
            }
            insert.execute(D::exec(tx)).await?;
        }
        Ok(first as u64)
    }

    /// Appends one entry inside `tx`; returns its index.
    async fn append_one(
        tx: &mut Transaction<'static, D::DB>,
        entry: AuditEntry,
    ) -> Result<u64, StoreError> {
        Self::append_in(tx, std::slice::from_ref(&entry)).await
    }

    /// Inserts notifications inside `tx`, in multi-row statements.
    async fn insert_notifications_in(
        tx: &mut Transaction<'static, D::DB>,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        for chunk in notifications.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO notifications (notification_id, authority, body, created_at) VALUES {}",
                values("(?, ?, ?, ?)", chunk.len())
            );
            let mut insert = sqlx::query(&sql);
            for n in chunk {
                insert = insert
                    .bind(n.notification_id.clone())
                    .bind(n.recipient.clone())
                    .bind(codec::json_of(n))
                    .bind(n.occurred_at.clone());
            }
            insert.execute(D::exec(tx)).await?;
        }
        Ok(())
    }

    /// What is held for `records`' keys: (custodian, record id) → (version,
    /// content hash), in one statement per chunk. A join, not
    /// `(custodian, record_id) IN (VALUES …)`: SQLite plans that as a scan
    /// of the whole table. Both name a `VALUES` list's columns `column1`,
    /// `column2`, ….
    async fn held_for(
        tx: &mut Transaction<'static, D::DB>,
        records: &[Publishable],
    ) -> Result<codec::Held, StoreError> {
        let mut held = codec::Held::new();
        for chunk in records.chunks(KEYS_PER_SELECT) {
            let sql = format!(
                "SELECT r.custodian, r.record_id, r.version, r.content_hash FROM (VALUES {}) AS k \
                 JOIN records r ON r.custodian = k.column1 AND r.record_id = k.column2",
                values("(?, ?)", chunk.len())
            );
            let mut select = sqlx::query_as(&sql);
            for p in chunk {
                select = select
                    .bind(p.record.custodian.clone())
                    .bind(p.record.record_id.clone());
            }
            let rows: Vec<(String, String, i64, String)> = select.fetch_all(D::exec(tx)).await?;
            held.extend(rows.into_iter().map(|(c, id, v, h)| ((c, id), (v, h))));
        }
        Ok(held)
    }

    /// Writes the accepted versions (`rows`, indexes into `records`), in
    /// multi-row upserts.
    async fn upsert_records(
        tx: &mut Transaction<'static, D::DB>,
        records: &[Publishable],
        rows: &[usize],
    ) -> Result<(), StoreError> {
        let now = now_text();
        for chunk in rows.chunks(RECORD_ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO records (custodian, record_id, version, nhs_number, relationship_type, \
                 status, withdraw_reason, ended_on, content_hash, retain_until, held_at_source, body, \
                 updated_at, date_of_birth, postcode_key) VALUES {} \
                 ON CONFLICT (custodian, record_id) DO UPDATE SET version = excluded.version, \
                 nhs_number = excluded.nhs_number, relationship_type = excluded.relationship_type, \
                 status = 'active', withdraw_reason = NULL, ended_on = NULL, \
                 content_hash = excluded.content_hash, retain_until = excluded.retain_until, \
                 held_at_source = excluded.held_at_source, body = excluded.body, \
                 updated_at = excluded.updated_at, date_of_birth = excluded.date_of_birth, \
                 postcode_key = excluded.postcode_key",
                values(
                    "(?, ?, ?, ?, ?, 'active', NULL, NULL, ?, ?, ?, ?, ?, ?, ?)",
                    chunk.len()
                )
            );
            let mut upsert = sqlx::query(&sql);
            for &i in chunk {
                let Publishable {
                    record,
                    held_at_source,
                } = &records[i];
                let (date_of_birth, postcode_key) = codec::blocking_keys(record);
                upsert = upsert
                    .bind(record.custodian.clone())
                    .bind(record.record_id.clone())
                    .bind(record.version as i64)
                    .bind(record.subject.nhs_number.map(|n| n.as_digits()))
                    .bind(record.relationship_type.as_str().to_string())
                    .bind(record.provenance.content_hash.clone())
                    .bind(record.retain_until.map(|d| d.to_string()))
                    .bind(i64::from(*held_at_source))
                    .bind(body_of(record))
                    .bind(now.clone())
                    .bind(date_of_birth)
                    .bind(postcode_key);
            }
            upsert.execute(D::exec(tx)).await?;
        }
        Ok(())
    }

    /// Runs `sql`, an UPDATE of one active record binding `value`, the
    /// time, the custodian and the record id and returning its NHS number;
    /// ends the custodian's own subscriptions for that person when it holds
    /// no other open record of them (`end_reason`); appends the change's
    /// entry (and one `unsubscribe` entry per subscription ended) and
    /// stores the notices `effects` gives, all in one transaction.
    async fn change(
        &self,
        key: &RecordKey,
        sql: &'static str,
        value: String,
        end_reason: &str,
        effects: ChangeEffects<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        let mut write = self.write().await?;
        let at = now_text();
        let changed: Option<Option<String>> = sqlx::query_scalar(sql)
            .bind(value)
            .bind(at.clone())
            .bind(key.custodian.clone())
            .bind(key.record_id.clone())
            .fetch_optional(D::exec(&mut write.tx))
            .await?;
        let outcome = match changed {
            Some(_) => ChangeOutcome::Done,
            None => ChangeOutcome::NotFound,
        };
        let ended: Vec<String> = match changed.flatten() {
            Some(nhs_number) => {
                sqlx::query_scalar(
                    "UPDATE subscriptions SET ended_at = $1, end_reason = $2 \
                     WHERE subscriber = $3 AND nhs_number = $4 AND ended_at IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM records WHERE custodian = $5 \
                     AND nhs_number = $6 AND status = 'active' AND ended_on IS NULL) \
                     RETURNING subscription_id",
                )
                .bind(at.clone())
                .bind(end_reason.to_string())
                .bind(key.custodian.clone())
                .bind(nhs_number.clone())
                .bind(key.custodian.clone())
                .bind(nhs_number)
                .fetch_all(D::exec(&mut write.tx))
                .await?
            }
            None => Vec::new(),
        };
        let (entry, notices) = effects(outcome);
        let mut entries = vec![entry];
        let mut ended = ended;
        ended.sort();
        for id in ended {
            let mut e = AuditEntry::new(AuditKind::Unsubscribe, &key.custodian, Utc::now());
            e.outcome = "ok".into();
            e.reason = format!(
                "{end_reason}: {}'s own relationship {} with the person ended",
                key.custodian, key.record_id
            );
            e.subscription_id = Some(id);
            entries.push(e);
        }
        let index = Self::append_in(&mut write.tx, &entries).await?;
        Self::insert_notices_in(&mut write.tx, notices, index).await?;
        write.tx.commit().await?;
        Ok((outcome, index))
    }

    /// Stores subscription notices given by the entry at `index`.
    async fn insert_notices_in(
        tx: &mut Transaction<'static, D::DB>,
        mut notices: Vec<Notification>,
        index: u64,
    ) -> Result<(), StoreError> {
        for n in &mut notices {
            n.audit_index = index;
        }
        Self::insert_notifications_in(tx, &notices).await
    }

    /// Decodes subscription rows (body, ended_at, end_reason).
    fn subscriptions_of_rows(
        rows: Vec<(String, Option<String>, Option<String>)>,
    ) -> Result<Vec<Subscription>, StoreError> {
        rows.into_iter()
            .map(|(body, ended_at, end_reason)| {
                let mut s: Subscription = codec::from_json(&body, "subscription body")?;
                s.ended_at = ended_at;
                s.end_reason = end_reason;
                Ok(s)
            })
            .collect()
    }

    /// The version, content hash and record id held for a directive's id,
    /// and whether its record exists.
    async fn held_directive(
        tx: &mut Transaction<'static, D::DB>,
        d: &Directive,
    ) -> Result<(Option<(i64, String, String)>, bool), StoreError> {
        let held: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT version, content_hash, record_id FROM directives \
             WHERE custodian = $1 AND directive_id = $2",
        )
        .bind(d.custodian.clone())
        .bind(d.directive_id.clone())
        .fetch_optional(D::exec(tx))
        .await?;
        let record: Option<String> = sqlx::query_scalar(
            "SELECT record_id FROM records WHERE custodian = $1 AND record_id = $2",
        )
        .bind(d.custodian.clone())
        .bind(d.record_id.clone())
        .fetch_optional(D::exec(tx))
        .await?;
        Ok((held, record.is_some()))
    }

    /// Runs a read returning JSON bodies on a pooled connection, and
    /// decodes each as `what`.
    async fn bodies<'q, T: serde::de::DeserializeOwned>(
        &self,
        query: sqlx::query::QueryScalar<'q, D::DB, String, <D::DB as Database>::Arguments<'q>>,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = query.fetch_all(D::exec(&mut conn)).await?;
        rows.iter().map(|b| codec::from_json(b, what)).collect()
    }
}

#[async_trait]
impl<D> Store for SqlStore<D>
where
    D: Dialect,
    for<'q> <D::DB as Database>::Arguments<'q>: IntoArguments<'q, D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
    i64: Column<D::DB>,
    String: Column<D::DB>,
    Option<String>: Column<D::DB>,
    Vec<u8>: Column<D::DB>,
{
    async fn hold_sequencer_lease(&self) -> Result<bool, StoreError> {
        self.dialect.hold_sequencer_lease(self).await
    }

    async fn release_sequencer_lease(&self) {
        self.dialect.release_sequencer_lease().await
    }

    async fn publish_notifying(
        &self,
        records: &[Publishable],
        effects: PublishEffects<'_>,
    ) -> Result<(Vec<StoreOutcome>, u64), StoreError> {
        let mut write = self.write().await?;
        let held = Self::held_for(&mut write.tx, records).await?;
        let (outcomes, rows) = codec::decide_publish(records, held);
        Self::upsert_records(&mut write.tx, records, &rows).await?;
        let (entry, notices) = effects(&outcomes);
        let index = Self::append_one(&mut write.tx, entry).await?;
        Self::insert_notices_in(&mut write.tx, notices, index).await?;
        write.tx.commit().await?;
        Ok((outcomes, index))
    }

    async fn end_record_notifying(
        &self,
        key: &RecordKey,
        end: NaiveDate,
        effects: ChangeEffects<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        self.change(
            key,
            "UPDATE records SET ended_on = $1, updated_at = $2 \
             WHERE custodian = $3 AND record_id = $4 AND status = 'active' RETURNING nhs_number",
            end.to_string(),
            "relationship_ended",
            effects,
        )
        .await
    }

    async fn withdraw_record_notifying(
        &self,
        key: &RecordKey,
        reason: WithdrawReason,
        effects: ChangeEffects<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        self.change(
            key,
            "UPDATE records SET status = 'withdrawn', withdraw_reason = $1, updated_at = $2 \
             WHERE custodian = $3 AND record_id = $4 AND status = 'active' RETURNING nhs_number",
            reason.as_str().to_string(),
            "relationship_withdrawn",
            effects,
        )
        .await
    }

    async fn subscribe(
        &self,
        subscription: &Subscription,
        today: NaiveDate,
        audit: SubscribeAudit<'_>,
    ) -> Result<(SubscribeOutcome, u64), StoreError> {
        let mut write = self.write().await?;
        let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT body, ended_at, end_reason FROM subscriptions \
             WHERE subscriber = $1 AND nhs_number = $2 AND ended_at IS NULL AND ends_on >= $3",
        )
        .bind(subscription.subscriber.clone())
        .bind(subscription.nhs_number.clone())
        .bind(today.to_string())
        .fetch_all(D::exec(&mut write.tx))
        .await?;
        let current = Self::subscriptions_of_rows(rows)?;
        let outcome = if let Some(held) = current.iter().find(|c| c.same_as(subscription)) {
            SubscribeOutcome::Duplicate {
                held: held.subscription_id.clone(),
            }
        } else if current.len() >= kith_core::subscription::MAX_SUBSCRIPTIONS_PER_SUBJECT {
            SubscribeOutcome::TooMany {
                held: current.len(),
            }
        } else {
            SubscribeOutcome::Created
        };
        let index = Self::append_one(&mut write.tx, audit(&outcome)).await?;
        if outcome == SubscribeOutcome::Created {
            let stored = Subscription {
                audit_index: index,
                ended_at: None,
                end_reason: None,
                ..subscription.clone()
            };
            sqlx::query(
                "INSERT INTO subscriptions (subscription_id, subscriber, nhs_number, ends_on, \
                 created_at, ended_at, end_reason, body) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)",
            )
            .bind(stored.subscription_id.clone())
            .bind(stored.subscriber.clone())
            .bind(stored.nhs_number.clone())
            .bind(stored.ends_on.to_string())
            .bind(stored.created_at.clone())
            .bind(codec::json_of(&stored))
            .execute(D::exec(&mut write.tx))
            .await?;
        }
        write.tx.commit().await?;
        Ok((outcome, index))
    }

    async fn end_subscription(
        &self,
        subscriber: &str,
        subscription_id: &str,
        reason: &str,
        audit: UnsubscribeAudit<'_>,
    ) -> Result<(UnsubscribeOutcome, u64), StoreError> {
        let mut write = self.write().await?;
        let held: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT subscriber, ended_at FROM subscriptions WHERE subscription_id = $1",
        )
        .bind(subscription_id.to_string())
        .fetch_optional(D::exec(&mut write.tx))
        .await?;
        let outcome = match held {
            Some((owner, _)) if owner != subscriber => UnsubscribeOutcome::NotYours,
            Some((_, None)) => UnsubscribeOutcome::Done,
            _ => UnsubscribeOutcome::NotFound,
        };
        if outcome == UnsubscribeOutcome::Done {
            sqlx::query(
                "UPDATE subscriptions SET ended_at = $1, end_reason = $2 \
                 WHERE subscription_id = $3 AND subscriber = $4 AND ended_at IS NULL",
            )
            .bind(now_text())
            .bind(reason.to_string())
            .bind(subscription_id.to_string())
            .bind(subscriber.to_string())
            .execute(D::exec(&mut write.tx))
            .await?;
        }
        let index = Self::append_one(&mut write.tx, audit(outcome)).await?;
        write.tx.commit().await?;
        Ok((outcome, index))
    }

    async fn subscriptions_of(
        &self,
        subscriber: &str,
        include_ended: bool,
        today: NaiveDate,
    ) -> Result<Vec<Subscription>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT body, ended_at, end_reason FROM subscriptions WHERE subscriber = $1 \
             AND ($2 = 1 OR (ended_at IS NULL AND ends_on >= $3)) \
             ORDER BY created_at DESC, subscription_id LIMIT 10000",
        )
        .bind(subscriber.to_string())
        .bind(i64::from(include_ended))
        .bind(today.to_string())
        .fetch_all(D::exec(&mut conn))
        .await?;
        Self::subscriptions_of_rows(rows)
    }

    async fn subscriptions_for_subjects(
        &self,
        nhs_numbers: &[String],
        today: NaiveDate,
    ) -> Result<Vec<Subscription>, StoreError> {
        let mut out = Vec::new();
        if nhs_numbers.is_empty() {
            return Ok(out);
        }
        let mut conn = self.pool.acquire().await?;
        for chunk in nhs_numbers.chunks(KEYS_PER_SELECT) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT body, ended_at, end_reason FROM subscriptions \
                 WHERE ended_at IS NULL AND ends_on >= $1 AND nhs_number IN ({list})"
            );
            let mut select = sqlx::query_as(&sql).bind(today.to_string());
            for n in chunk {
                select = select.bind(n.clone());
            }
            let rows: Vec<(String, Option<String>, Option<String>)> =
                select.fetch_all(D::exec(&mut conn)).await?;
            out.extend(Self::subscriptions_of_rows(rows)?);
        }
        Ok(out)
    }

    async fn publish_directives(
        &self,
        directives: &[Directive],
        audit: DirectiveAudit<'_>,
    ) -> Result<(Vec<DirectiveOutcome>, u64), StoreError> {
        let mut write = self.write().await?;
        let now = now_text();
        let mut outcomes = Vec::with_capacity(directives.len());
        for d in directives {
            let hash = d.content_hash();
            let (held, record_exists) = Self::held_directive(&mut write.tx, d).await?;
            let outcome = codec::directive_outcome(d, &hash, held, record_exists);
            if outcome == DirectiveOutcome::Accepted {
                sqlx::query(
                    "INSERT INTO directives (custodian, directive_id, version, record_id, content_hash, body, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (custodian, directive_id) DO UPDATE SET version = excluded.version, \
                     record_id = excluded.record_id, content_hash = excluded.content_hash, \
                     body = excluded.body, updated_at = excluded.updated_at",
                )
                .bind(d.custodian.clone())
                .bind(d.directive_id.clone())
                .bind(d.version as i64)
                .bind(d.record_id.clone())
                .bind(hash)
                .bind(codec::json_of(d))
                .bind(now.clone())
                .execute(D::exec(&mut write.tx))
                .await?;
            }
            outcomes.push(outcome);
        }
        let index = Self::append_one(&mut write.tx, audit(&outcomes)).await?;
        write.tx.commit().await?;
        Ok((outcomes, index))
    }

    async fn purge_expired(
        &self,
        today: NaiveDate,
        audit: PurgeAudit<'_>,
    ) -> Result<Vec<(RecordKey, u64)>, StoreError> {
        let mut write = self.write().await?;
        let expired: Vec<(String, String)> = sqlx::query_as(
            "SELECT custodian, record_id FROM records \
             WHERE retain_until IS NOT NULL AND retain_until < $1 \
             ORDER BY custodian, record_id LIMIT 1000",
        )
        .bind(today.to_string())
        .fetch_all(D::exec(&mut write.tx))
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
                    .bind(key.custodian.clone())
                    .bind(key.record_id.clone())
                    .execute(D::exec(&mut write.tx))
                    .await?;
            }
            let index = Self::append_one(&mut write.tx, audit(&key)).await?;
            purged.push((key, index));
        }
        write.tx.commit().await?;
        Ok(purged)
    }

    async fn recipients_of(&self, key: &RecordKey) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(sqlx::query_scalar(
            "SELECT recipient FROM disclosures WHERE custodian = $1 AND record_id = $2 \
             ORDER BY recipient",
        )
        .bind(key.custodian.clone())
        .bind(key.record_id.clone())
        .fetch_all(D::exec(&mut conn))
        .await?)
    }

    async fn enqueue_notifications(
        &self,
        notifications: &[Notification],
    ) -> Result<(), StoreError> {
        let mut write = self.write().await?;
        Self::insert_notifications_in(&mut write.tx, notifications).await?;
        write.tx.commit().await?;
        Ok(())
    }

    async fn pending_notifications(
        &self,
        authority: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        self.bodies(
            sqlx::query_scalar(
                "SELECT body FROM notifications WHERE authority = $1 AND delivered_at IS NULL \
                 ORDER BY created_at, notification_id LIMIT $2",
            )
            .bind(authority.to_string())
            .bind(i64::from(limit)),
            "notification body",
        )
        .await
    }

    async fn mark_notification_delivered(
        &self,
        authority: &str,
        notification_id: &str,
        at: &str,
    ) -> Result<Option<Notification>, StoreError> {
        let mut write = self.write().await?;
        let body: Option<String> = sqlx::query_scalar(
            "UPDATE notifications SET delivered_at = $1 \
             WHERE notification_id = $2 AND authority = $3 AND delivered_at IS NULL RETURNING body",
        )
        .bind(at.to_string())
        .bind(notification_id.to_string())
        .bind(authority.to_string())
        .fetch_optional(D::exec(&mut write.tx))
        .await?;
        write.tx.commit().await?;
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
        self.dialect
            .open_break_glass(self, authority, user_id, subject, now)
            .await
    }

    async fn break_glass_accesses(
        &self,
        authority: &str,
        include_reviewed: bool,
    ) -> Result<Vec<BreakGlassAccess>, StoreError> {
        self.bodies(
            sqlx::query_scalar(
                "SELECT body FROM break_glass WHERE authority = $1 AND (reviewed = 0 OR $2 = 1) \
                 ORDER BY expires_at DESC, query_id LIMIT 10000",
            )
            .bind(authority.to_string())
            .bind(i64::from(include_reviewed)),
            "break-glass body",
        )
        .await
    }

    async fn break_glass_access(
        &self,
        authority: &str,
        query_id: &str,
    ) -> Result<Option<BreakGlassAccess>, StoreError> {
        let found: Vec<BreakGlassAccess> = self
            .bodies(
                sqlx::query_scalar(
                    "SELECT body FROM break_glass WHERE authority = $1 AND query_id = $2",
                )
                .bind(authority.to_string())
                .bind(query_id.to_string()),
                "break-glass body",
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn review_break_glass(
        &self,
        authority: &str,
        query_id: &str,
        review: &Review,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        let mut write = self.write().await?;
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM break_glass WHERE authority = $1 AND query_id = $2",
        )
        .bind(authority.to_string())
        .bind(query_id.to_string())
        .fetch_optional(D::exec(&mut write.tx))
        .await?;
        let outcome = match body {
            Some(_) => ChangeOutcome::Done,
            None => ChangeOutcome::NotFound,
        };
        let index = Self::append_one(&mut write.tx, audit(outcome)).await?;
        if let Some(body) = body {
            let mut access: BreakGlassAccess = codec::from_json(&body, "break-glass body")?;
            access.review = Some(Review {
                audit_index: index,
                ..review.clone()
            });
            sqlx::query(
                "UPDATE break_glass SET reviewed = 1, body = $1 WHERE authority = $2 AND query_id = $3",
            )
            .bind(codec::json_of(&access))
            .bind(authority.to_string())
            .bind(query_id.to_string())
            .execute(D::exec(&mut write.tx))
            .await?;
        }
        write.tx.commit().await?;
        Ok((outcome, index))
    }

    async fn records_for_nhs_number(
        &self,
        nhs_number: &NhsNumber,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.dialect
            .records_for_nhs_number(self, &nhs_number.as_digits(), today)
            .await
    }

    async fn records_for_demographics(
        &self,
        dates_of_birth: &[NaiveDate],
        postcode_key: Option<&str>,
        limit: u32,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.dialect
            .records_for_demographics(self, dates_of_birth, postcode_key, limit, today)
            .await
    }

    async fn record(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row: Option<codec::RecordColumns> = sqlx::query_as(
            "SELECT body, held_at_source, status, withdraw_reason, ended_on FROM records \
             WHERE custodian = $1 AND record_id = $2",
        )
        .bind(key.custodian.clone())
        .bind(key.record_id.clone())
        .fetch_optional(D::exec(&mut conn))
        .await?;
        let Some(mut stored) = row.map(codec::stored_record).transpose()? else {
            return Ok(None);
        };
        // Its directives too, as the query path's reads give them: a
        // subscription notice is decided with them (an objection stops it).
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM directives WHERE custodian = $1 AND record_id = $2 \
             ORDER BY directive_id",
        )
        .bind(key.custodian.clone())
        .bind(key.record_id.clone())
        .fetch_all(D::exec(&mut conn))
        .await?;
        stored.directives = bodies
            .iter()
            .map(|b| codec::from_json(b, "directive body"))
            .collect::<Result<_, _>>()?;
        Ok(Some(stored))
    }

    async fn append_audit_with(
        &self,
        entries: &[AuditEntry],
        effects: &AuditEffects,
    ) -> Result<u64, StoreError> {
        self.dialect.append_audit_with(self, entries, effects).await
    }

    async fn audit_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredAuditEntry>, StoreError> {
        self.audit_entries_within(from, limit, usize::MAX).await
    }

    async fn audit_entries_within(
        &self,
        from: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<Vec<StoredAuditEntry>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query_as::<_, (i64, Vec<u8>, Vec<u8>)>(
            "SELECT idx, entry, leaf_hash FROM audit_log WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch(D::exec(&mut conn));
        codec::audit_entries_within(rows, max_bytes).await
    }

    async fn audit_leaf_hashes(&self, from: u64, limit: u32) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT leaf_hash FROM audit_log WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch_all(D::exec(&mut conn))
        .await?;
        rows.into_iter().map(|h| hash32(h, "leaf hash")).collect()
    }

    async fn audit_len(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(D::exec(&mut conn))
            .await?;
        Ok(n as u64)
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row: Option<(i64, Vec<u8>, String)> = sqlx::query_as(
            "SELECT tree_size, root_hash, signed_note FROM audit_checkpoints \
             ORDER BY tree_size DESC LIMIT 1",
        )
        .fetch_optional(D::exec(&mut conn))
        .await?;
        row.map(codec::checkpoint).transpose()
    }

    async fn append_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        let mut write = self.write().await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (tree_size, root_hash, signed_note, signed_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(checkpoint.tree_size as i64)
        .bind(checkpoint.root_hash.to_vec())
        .bind(checkpoint.signed_note.clone())
        .bind(now_text())
        .execute(D::exec(&mut write.tx))
        .await?;
        write.tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_numbers_every_placeholder_across_the_rows() {
        assert_eq!(super::values("(?, 0, ?)", 1), "($1, 0, $2)");
        assert_eq!(
            super::values("(?, 'active', ?)", 3),
            "($1, 'active', $2), ($3, 'active', $4), ($5, 'active', $6)"
        );
        assert_eq!(super::values("(?)", 0), "");
    }
}
