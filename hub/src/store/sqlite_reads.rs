//! The SQLite store's query-path reads, run on the calling thread.
//!
//! sqlx runs every SQLite connection on a thread of its own and hands each
//! statement to it over a channel, pinging it again when the connection goes
//! back to its pool. On this 2-core machine those hand-offs cost more than
//! the indexed read itself: with the query's reads through sqlx, a third of
//! the hub's CPU went to waking and parking threads (`perf record`, see
//! docs/benchmarks.md). So the reads a query makes (records by NHS number
//! or demographic block, an open break glass) run here instead, through
//! rusqlite on the caller's own thread: a read of a few indexed rows takes
//! tens of microseconds, less than one hand-off.
//!
//! Each connection is read-only and the database is in WAL mode, so a read
//! never waits for the writer and sees every transaction committed before
//! it starts: a directive stored a moment ago is honoured by the very next
//! query. Connections are kept for reuse; since a read never yields, no
//! more are open at once than the runtime has threads.
//!
//! Writes stay on sqlx (`sqlite.rs`), batched so that the hand-offs are
//! paid per commit, not per row; the audit group commit, which every query
//! waits for, has a connection of its own (`sqlite_audit.rs`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDate;
use rusqlite::{Connection, OpenFlags, Row, params_from_iter};

use super::codec;
use super::{StoreError, StoredRecord};
use crate::model::BreakGlassAccess;

/// Idle connections kept for reuse.
const KEEP_IDLE: usize = 8;

/// Read-only connections to one SQLite file.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// The columns `stored_records` reads, in order.
const RECORD_COLUMNS: &str = "r.custodian, r.record_id, r.body, r.held_at_source, r.status, \
     r.withdraw_reason, r.ended_on, d.body AS directive";

impl Readers {
    /// Readers of the database file at `path`, which must exist (the sqlx
    /// pool has created it and run the migrations). One connection is opened
    /// now, so a path that cannot be read fails at start, not at the first
    /// query.
    pub(super) fn open(path: PathBuf) -> Result<Self, StoreError> {
        let readers = Self {
            path,
            idle: Mutex::new(Vec::new()),
        };
        let first = readers.connect()?;
        readers.idle_connections().push(first);
        Ok(readers)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }

    fn idle_connections(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while the lock was held cannot leave a connection half
        // used: the list only ever holds whole, idle connections.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `read` on an idle connection (or a new one), then keeps it.
    fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.idle_connections().pop() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = read(&conn);
        let mut idle = self.idle_connections();
        if idle.len() < KEEP_IDLE {
            idle.push(conn);
        }
        result
    }

    /// Active records about `nhs_digits` within their retention on
    /// `today`, each with its directives.
    pub(super) fn records_for_nhs_number(
        &self,
        nhs_digits: &str,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let today = today.to_string();
        self.with(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records r \
                 LEFT JOIN directives d ON d.custodian = r.custodian AND d.record_id = r.record_id \
                 WHERE r.nhs_number = ?1 AND r.status = 'active' \
                 AND (r.retain_until IS NULL OR r.retain_until >= ?2) \
                 ORDER BY r.custodian, r.record_id"
            ))?;
            let rows = statement.query([nhs_digits, today.as_str()])?;
            stored_records(rows)
        })
    }

    /// The demographic block: active records within their retention on
    /// `today`, born on one of `dates_of_birth` or at `postcode_key`, at
    /// most `limit`, each with its directives.
    pub(super) fn records_for_demographics(
        &self,
        dates_of_birth: &[NaiveDate],
        postcode_key: Option<&str>,
        limit: u32,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let dates: Vec<String> = dates_of_birth.iter().map(|d| d.to_string()).collect();
        let placeholders = vec!["?"; dates.len()].join(", ");
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM \
             (SELECT * FROM records WHERE status = 'active' AND (date_of_birth IN ({placeholders}) \
             OR postcode_key = ?) AND (retain_until IS NULL OR retain_until >= ?) \
             ORDER BY custodian, record_id LIMIT ?) r \
             LEFT JOIN directives d ON d.custodian = r.custodian AND d.record_id = r.record_id \
             ORDER BY r.custodian, r.record_id"
        );
        let values: Vec<rusqlite::types::Value> = dates
            .into_iter()
            .chain([
                postcode_key.unwrap_or_default().to_string(),
                today.to_string(),
            ])
            .map(rusqlite::types::Value::Text)
            .chain([rusqlite::types::Value::Integer(i64::from(limit))])
            .collect();
        self.with(|conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query(params_from_iter(values))?;
            stored_records(rows)
        })
    }

    /// The latest break glass by this user about this subject still open
    /// at `now` (RFC 3339).
    pub(super) fn open_break_glass(
        &self,
        authority: &str,
        user_id: &str,
        subject: &str,
        now: &str,
    ) -> Result<Option<BreakGlassAccess>, StoreError> {
        let body: Option<String> = self.with(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT body FROM break_glass WHERE authority = ?1 AND user_id = ?2 \
                 AND subject = ?3 AND expires_at > ?4 ORDER BY expires_at DESC LIMIT 1",
            )?;
            let mut rows = statement.query([authority, user_id, subject, now])?;
            Ok(match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            })
        })?;
        body.map(|b| codec::from_json(&b, "break-glass body"))
            .transpose()
    }
}

/// Records from rows of a `records r LEFT JOIN directives d` select in key
/// order (the columns of [`RECORD_COLUMNS`]): one record per key, with its
/// directives.
fn stored_records(rows: rusqlite::Rows<'_>) -> Result<Vec<StoredRecord>, StoreError> {
    let rows = rows.mapped(|row: &Row<'_>| {
        Ok((
            (row.get(0)?, row.get(1)?),
            (
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ),
            row.get(7)?,
        ))
    });
    codec::records_with_directives(rows.map(|row| row.map_err(StoreError::from)))
}
