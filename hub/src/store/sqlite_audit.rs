//! The SQLite store's audit group commit, on a connection of its own.
//!
//! Every query waits for its audit entry to be durable, and the
//! `AuditWriter` hands the store whatever entries are waiting as one
//! commit. Through sqlx that commit was six statements and a ping, each
//! handed to the connection's own thread and back; on 2 cores the
//! hand-offs, not SQLite, were the cost (`perf record`, see
//! docs/benchmarks.md). Here the whole transaction runs as one blocking task
//! on a rusqlite connection kept for it: one hand-off per commit.
//!
//! It is still one of the store's writes: it takes the store's writer lock
//! first, as every sqlx write does, so the two never contend for SQLite's
//! lock, and it begins `IMMEDIATE` with `synchronous = FULL`, so the entries
//! are on disk when it returns.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use super::codec::{self, AuditRow};
use super::{AuditEffects, StoreError};

/// A read-write connection to one SQLite file, for audit appends.
pub(super) struct AuditAppender {
    conn: Arc<Mutex<Connection>>,
}

impl AuditAppender {
    /// Opens the database file at `path` (already created and migrated).
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // The journal mode (WAL) is the file's; durability is per connection.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Appends `rows` with consecutive indexes, notes the records they
    /// disclosed, and stores `effects` (notifications and break-glass
    /// accesses, each `audit_index` a position in `rows`, stored as that
    /// row's index), in one durable transaction.
    /// Returns the first index. The caller holds the store's writer lock.
    pub(super) async fn append(
        &self,
        rows: Vec<AuditRow>,
        disclosed: Vec<(String, String, String)>,
        effects: AuditEffects,
        at: String,
    ) -> Result<u64, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic mid-transaction drops the transaction, which rolls
            // back: the connection is whole again.
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let first: i64 = tx.query_row(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_log",
                [],
                |row| row.get(0),
            )?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit_log (idx, recorded_at, entry, leaf_hash) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (i, row) in rows.iter().enumerate() {
                    insert.execute(params![
                        first + i as i64,
                        row.at,
                        row.bytes,
                        &row.leaf_hash[..]
                    ])?;
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO disclosures (custodian, record_id, recipient, first_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )?;
                for (custodian, record_id, recipient) in &disclosed {
                    insert.execute(params![custodian, record_id, recipient, at])?;
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO notifications (notification_id, authority, body, created_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                let placed = effects.placed_at(first as u64);
                for n in &placed.notifications {
                    insert.execute(params![
                        n.notification_id,
                        n.recipient,
                        codec::json_of(&n),
                        n.occurred_at
                    ])?;
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO break_glass (query_id, authority, user_id, subject, expires_at, reviewed, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
                )?;
                for access in &placed.break_glass {
                    insert.execute(params![
                        access.query_id,
                        access.authority,
                        access.user.user_id,
                        access.subject,
                        access.expires_at,
                        codec::json_of(access)
                    ])?;
                }
            }
            tx.commit()?;
            Ok(first as u64)
        })
        .await
        .map_err(|e| StoreError::Database(format!("the audit append task failed: {e}").into()))?
    }
}
