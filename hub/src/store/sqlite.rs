//! The SQLite store: the embedded default, one file, WAL mode, every commit
//! durable (`synchronous = FULL`).
//!
//! SQLite takes one writer at a time; rather than have concurrent writers
//! collide and retry, the store queues them on one async mutex (the
//! [`SqlStore`]'s), and reads go on in parallel on the pool's other
//! connections (WAL lets them). Every statement but the query path's reads
//! and the audit group commit is the shared body in `sql.rs`; this file
//! holds what SQLite does its own way.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, Sqlite, SqliteConnection};
use tokio::sync::Mutex;

use super::codec;
use super::migrations::{self, SQLITE};
use super::sql::{Dialect, SqlStore, now_text};
use super::sqlite_audit::AuditAppender;
use super::sqlite_reads::Readers;
use super::{AuditEffects, StoreError, StoredRecord};
use crate::audit::AuditEntry;
use crate::model::BreakGlassAccess;

/// The SQLite store.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// What SQLite does its own way: the query path's reads through rusqlite
/// on the calling thread, and the audit group commit on a connection of
/// its own.
pub struct SqliteDialect {
    /// The query path's reads, on the calling thread.
    reads: Readers,
    /// The audit group commit, on a connection of its own.
    audit: AuditAppender,
}

/// The database file a `sqlite:` URL names (for backups, which read the
/// file itself); an error says why the URL names none.
pub fn sqlite_file(url: &str) -> Result<std::path::PathBuf, String> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err("an in-memory database has no file".into());
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    Ok(options.get_filename().to_path_buf())
}

impl SqlStore<SqliteDialect> {
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
            dialect: SqliteDialect {
                audit: AuditAppender::open(&path)?,
                reads: Readers::open(path)?,
            },
        })
    }
}

/// Whether a pooled connection still believes it is inside a transaction
/// (see the pool's `before_acquire` in [`SqliteStore::open`]). Checked as
/// the pool hands a connection out: by then the rollback a dropped
/// transaction queued has run (sqlx pings each connection on release).
fn poisoned(conn: &mut SqliteConnection) -> bool {
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

#[async_trait]
impl Dialect for SqliteDialect {
    type DB = Sqlite;

    /// `IMMEDIATE`, so SQLite takes the write lock at once (a deferred
    /// transaction that upgrades later can fail with "database is locked"
    /// without waiting).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    /// One SQLite file serves one hub process: the writer lock orders them.
    const ORDER_WRITERS: Option<&'static str> = None;

    fn exec<'c>(conn: &'c mut SqliteConnection) -> impl Executor<'c, Database = Sqlite> + 'c {
        conn
    }

    async fn records_for_nhs_number(
        &self,
        _store: &SqliteStore,
        nhs_digits: &str,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.reads.records_for_nhs_number(nhs_digits, today)
    }

    async fn records_for_demographics(
        &self,
        _store: &SqliteStore,
        dates_of_birth: &[NaiveDate],
        postcode_key: Option<&str>,
        limit: u32,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.reads
            .records_for_demographics(dates_of_birth, postcode_key, limit, today)
    }

    async fn open_break_glass(
        &self,
        _store: &SqliteStore,
        authority: &str,
        user_id: &str,
        subject: &str,
        now: &str,
    ) -> Result<Option<BreakGlassAccess>, StoreError> {
        self.reads
            .open_break_glass(authority, user_id, subject, now)
    }

    async fn append_audit_with(
        &self,
        store: &SqliteStore,
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
        let _writer = store.writer.lock().await;
        self.audit
            .append(rows, disclosed, effects.clone(), now_text())
            .await
    }

    /// One SQLite file serves one hub process: it always sequences.
    async fn hold_sequencer_lease(&self, _store: &SqliteStore) -> Result<bool, StoreError> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Publishable, Store, StoreOutcome};
    use chrono::Utc;

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
