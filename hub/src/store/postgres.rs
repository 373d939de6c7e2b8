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
//! Every statement but the query path's reads (which use PostgreSQL's
//! arrays) is the shared body in `sql.rs`; this file holds what PostgreSQL
//! does its own way, and the sequencer lease that picks the one replica
//! signing checkpoints.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Executor, Postgres};

use super::codec::{self, RecordRow};
use super::migrations::{self, POSTGRES};
use super::sql::{Dialect, SqlStore};
use super::{AuditEffects, StoreError, StoredRecord};
use crate::audit::AuditEntry;
use crate::model::BreakGlassAccess;

/// The advisory lock key that sequences audit appends (and so every write)
/// across all hub processes sharing the database: "kith" "audt" in ASCII.
pub const AUDIT_LOCK: i64 = 0x6b69_7468_6175_6474;

/// Session advisory lock held by the one replica that signs checkpoints.
pub const SEQUENCER_LOCK: i64 = 0x6b69_7468_7365_7171;

/// The PostgreSQL store.
pub type PostgresStore = SqlStore<PostgresDialect>;

/// What PostgreSQL does its own way: writers ordered by [`AUDIT_LOCK`],
/// the query path's reads with arrays, and the sequencer lease.
pub struct PostgresDialect {
    /// While this process sequences: the connection whose session holds
    /// [`SEQUENCER_LOCK`]. PostgreSQL frees the lock if the process or the
    /// connection dies, and another replica takes it.
    sequencer: tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<Postgres>>>,
}

impl SqlStore<PostgresDialect> {
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
            writer: tokio::sync::Mutex::new(()),
            dialect: PostgresDialect {
                sequencer: tokio::sync::Mutex::new(None),
            },
        })
    }
}

/// The columns [`records_with_directives`] reads, in order, from `records
/// r LEFT JOIN directives d`.
const RECORD_COLUMNS: &str = "r.custodian, r.record_id, r.body, r.held_at_source, r.status, \
     r.withdraw_reason, r.ended_on, d.body AS directive";

/// A row of [`RECORD_COLUMNS`], as sqlx decodes it.
type RecordTuple = (
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Records, each with its directives, from rows of [`RECORD_COLUMNS`] in
/// key order.
fn records_with_directives(rows: Vec<RecordTuple>) -> Result<Vec<StoredRecord>, StoreError> {
    codec::records_with_directives(rows.into_iter().map(
        |(custodian, record_id, body, held, status, withdraw_reason, ended_on, directive)| {
            Ok::<RecordRow, StoreError>((
                (custodian, record_id),
                (body, held, status, withdraw_reason, ended_on),
                directive,
            ))
        },
    ))
}

#[async_trait]
impl Dialect for PostgresDialect {
    type DB = Postgres;

    const BEGIN_WRITE: &'static str = "BEGIN";

    /// The audit sequencing lock, across every process on the database (a
    /// constant key: nothing of the caller's reaches the statement).
    const ORDER_WRITERS: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(7739845426273412212)");

    fn exec<'c>(conn: &'c mut PgConnection) -> impl Executor<'c, Database = Postgres> + 'c {
        conn
    }

    async fn records_for_nhs_number(
        &self,
        store: &PostgresStore,
        nhs_digits: &str,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        // One statement: each record with its directives (one row per
        // directive, or one row with none), in key order.
        let rows: Vec<RecordTuple> = sqlx::query_as(&format!(
            "SELECT {RECORD_COLUMNS} FROM records r \
             LEFT JOIN directives d ON d.custodian = r.custodian AND d.record_id = r.record_id \
             WHERE r.nhs_number = $1 AND r.status = 'active' \
             AND (r.retain_until IS NULL OR r.retain_until >= $2) ORDER BY r.custodian, r.record_id"
        ))
        .bind(nhs_digits)
        .bind(today.to_string())
        .fetch_all(store.pool())
        .await?;
        records_with_directives(rows)
    }

    async fn records_for_demographics(
        &self,
        store: &PostgresStore,
        dates_of_birth: &[NaiveDate],
        postcode_key: Option<&str>,
        limit: u32,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        // The block (at most `limit` records), each with its directives,
        // in one statement.
        let dates: Vec<String> = dates_of_birth.iter().map(|d| d.to_string()).collect();
        let rows: Vec<RecordTuple> = sqlx::query_as(&format!(
            "SELECT {RECORD_COLUMNS} FROM \
             (SELECT * FROM records WHERE status = 'active' \
              AND (date_of_birth = ANY($1::text[]) OR postcode_key = $2) \
              AND (retain_until IS NULL OR retain_until >= $4) \
              ORDER BY custodian, record_id LIMIT $3) r \
             LEFT JOIN directives d ON d.custodian = r.custodian AND d.record_id = r.record_id \
             ORDER BY r.custodian, r.record_id"
        ))
        .bind(&dates)
        .bind(postcode_key.unwrap_or_default())
        .bind(i64::from(limit))
        .bind(today.to_string())
        .fetch_all(store.pool())
        .await?;
        records_with_directives(rows)
    }

    async fn open_break_glass(
        &self,
        store: &PostgresStore,
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
        .fetch_optional(store.pool())
        .await?;
        body.map(|b| codec::from_json(&b, "break-glass body"))
            .transpose()
    }

    async fn append_audit_with(
        &self,
        store: &PostgresStore,
        entries: &[AuditEntry],
        effects: &AuditEffects,
    ) -> Result<u64, StoreError> {
        let mut write = store.write().await?;
        let first = PostgresStore::append_audit_in(&mut write.tx, entries, effects).await?;
        write.tx.commit().await?;
        Ok(first)
    }

    async fn release_sequencer_lease(&self) {
        if let Some(mut conn) = self.sequencer.lock().await.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SEQUENCER_LOCK)
                .execute(&mut *conn)
                .await;
        }
    }

    async fn hold_sequencer_lease(&self, store: &PostgresStore) -> Result<bool, StoreError> {
        let mut held = self.sequencer.lock().await;
        if let Some(conn) = held.as_mut() {
            // Still alive? A dead connection has lost the lock with it.
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                return Ok(true);
            }
            *held = None;
            tracing::warn!("lost the sequencer lease with its connection");
        }
        let mut conn = store.pool().acquire().await?;
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
}

#[cfg(test)]
mod tests {
    use super::AUDIT_LOCK;

    #[test]
    fn the_writers_statement_names_the_audit_lock() {
        use super::Dialect;
        let statement = super::PostgresDialect::ORDER_WRITERS.unwrap();
        assert_eq!(
            statement,
            format!("SELECT pg_advisory_xact_lock({AUDIT_LOCK})")
        );
    }
}
