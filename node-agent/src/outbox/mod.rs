//! The durable outbox between the source systems and the hub.
//!
//! A record the agent accepts is written here, in one durable SQLite
//! transaction (WAL, `synchronous=FULL`), before the agent tells anyone it has
//! it. The publisher then takes pending rows oldest first and marks each
//! delivered or rejected as the hub answers. Nothing accepted is lost: a crash
//! or a hub outage leaves rows pending, and the publisher picks them up again.
//! Rows are marked, never deleted.
//!
//! Enqueueing is idempotent on (record id, version): the same record dropped
//! twice is one row. A record whose id and version are already queued with
//! *different* content is refused, not skipped: the hub would refuse it too
//! (one version, one content), and silently dropping a correction would leave
//! the hub with the old text. Rows are inserted with one multi-row `INSERT`
//! per chunk, which on this kind of machine is some 40 times faster than row
//! by row.
//!
//! Sharing directives are queued the same way, in their own table
//! (`directive_outbox`), under the same rules ([`Queued`] says how each kind
//! is stored). A directive waits until every record queued before it has
//! left `pending` ([`Outbox::next_directive_batch`]): the hub refuses a
//! directive for a record it does not hold yet.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the queues, their row types, opening and migrating |
//! | `enqueue.rs` | taking records and directives in |
//! | `take.rs` | what is pending, and one record for a detail request |
//! | `mark.rs` | delivered, rejected, the last attempt |
//! | `status.rs` | counts and rejections for `kith-agent status` |

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kith_core::{Directive, Record};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

mod enqueue;
mod mark;
mod status;
mod take;

/// The schema, oldest first. Each runs once, in its own transaction, and
/// `PRAGMA user_version` records how many have run. (`sqlx::migrate!` would
/// need sqlx's `macros` feature, which this workspace leaves off.)
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_outbox",
        include_str!("../../migrations/0001_outbox.sql"),
    ),
    (
        "0002_directives_and_notifications",
        include_str!("../../migrations/0002_directives_and_notifications.sql"),
    ),
    (
        "0003_console",
        include_str!("../../migrations/0003_console.sql"),
    ),
];

/// The schema version a fully migrated database records in `PRAGMA
/// user_version` (a backup from a newer agent is refused on restore).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Rows per multi-row statement: 7 bound values a row stays well under
/// SQLite's limit of 32,766 variables.
const INSERT_CHUNK: usize = 500;
/// Ids per `UPDATE ... WHERE id IN (...)`.
const UPDATE_CHUNK: usize = 900;

/// Identifies one row of the outbox.
pub type OutboxId = i64;

/// Where one kind of queued item lives. The names are our own constants,
/// never input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    table: &'static str,
    id_column: &'static str,
    json_column: &'static str,
    /// Columns beyond the common ones, each with a leading ", ".
    extra_columns: &'static str,
    /// What to call one item in messages.
    noun: &'static str,
}

impl Queue {
    /// What to call one item: "record" or "directive".
    pub fn noun(self) -> &'static str {
        self.noun
    }
}

/// Records: the `outbox` table.
pub const RECORDS: Queue = Queue {
    table: "outbox",
    id_column: "record_id",
    json_column: "record_json",
    extra_columns: "",
    noun: "record",
};

/// Sharing directives: the `directive_outbox` table.
pub const DIRECTIVES: Queue = Queue {
    table: "directive_outbox",
    id_column: "directive_id",
    json_column: "directive_json",
    extra_columns: ", record_id, after_record",
    noun: "directive",
};

/// Something the outbox queues for the hub, idempotent on (id, version).
pub trait Queued: Serialize + DeserializeOwned {
    const QUEUE: Queue;
    fn queue_id(&self) -> &str;
    fn queue_version(&self) -> u64;
    /// The content hash that tells two copies of one version apart.
    fn queue_hash(&self) -> String;
    /// Binds the values of [`Queue`]'s extra columns, in order.
    fn push_extra(&self, _row: &mut Separated<'_, '_, Sqlite, &'static str>) {}
}

impl Queued for Record {
    const QUEUE: Queue = RECORDS;
    fn queue_id(&self) -> &str {
        &self.record_id
    }
    fn queue_version(&self) -> u64 {
        self.version
    }
    fn queue_hash(&self) -> String {
        self.provenance.content_hash.clone()
    }
}

impl Queued for Directive {
    const QUEUE: Queue = DIRECTIVES;
    fn queue_id(&self) -> &str {
        &self.directive_id
    }
    fn queue_version(&self) -> u64 {
        self.version
    }
    fn queue_hash(&self) -> String {
        self.content_hash()
    }
    fn push_extra(&self, row: &mut Separated<'_, '_, Sqlite, &'static str>) {
        row.push_bind(self.record_id.clone());
        // The records queued so far go first.
        row.push("(SELECT COALESCE(MAX(id), 0) FROM outbox)");
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("outbox schema migration {name}: {source}")]
    Migrate {
        name: &'static str,
        source: sqlx::Error,
    },
    #[error("outbox: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot create folder {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How the hub took a delivered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Stored as the record's current version.
    Accepted,
    /// The hub already held exactly this version.
    Unchanged,
    /// The hub already held a newer version.
    Stale,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Accepted => "accepted",
            DeliveryOutcome::Unchanged => "unchanged",
            DeliveryOutcome::Stale => "stale",
        }
    }
}

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Pending,
    Delivered,
    Rejected,
}

impl FromStr for EntryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "rejected" => Ok(Self::Rejected),
            other => Err(format!("unknown outbox state {other:?}")),
        }
    }
}

/// A pending record, as handed to the publisher.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: OutboxId,
    pub record: Record,
}

/// A pending directive, as handed to the publisher.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectiveEntry {
    pub id: OutboxId,
    pub directive: Directive,
}

/// A directive the hub refused, for `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedDirective {
    pub directive_id: String,
    pub version: u64,
    pub record_id: String,
    pub reason: String,
    pub rejected_at: Option<DateTime<Utc>>,
}

/// How many items of one kind stand in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub pending: u64,
    pub delivered: u64,
    pub rejected: u64,
}

/// One row's state, for status and tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryStatus {
    pub id: OutboxId,
    pub record_id: String,
    pub version: u64,
    pub state: EntryState,
    /// `accepted`, `unchanged` or `stale` once delivered.
    pub outcome: Option<String>,
    /// Why the hub refused it, once rejected.
    pub reject_reason: Option<String>,
}

/// What one `enqueue` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnqueueSummary {
    /// Rows newly written.
    pub enqueued: usize,
    /// Records already in the outbox (or earlier in the same call) with the
    /// same id, version and content: harmless re-sends.
    pub duplicates: usize,
    /// Records whose id and version were already taken with different
    /// content. They were not written.
    pub conflicts: Vec<EnqueueConflict>,
}

/// A record (or directive) refused because its id and version were already
/// taken with different content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnqueueConflict {
    /// Its position in the slice given to [`Outbox::enqueue`].
    pub index: usize,
    /// The record's (or directive's) id.
    pub id: String,
    pub version: u64,
    /// "record" or "directive".
    #[serde(skip)]
    pub noun: &'static str,
}

impl EnqueueConflict {
    /// What to tell whoever sent it.
    pub fn reason(&self) -> String {
        format!(
            "version {} of this {} was already taken with different content; publish version {}",
            self.version,
            self.noun,
            self.version.saturating_add(1)
        )
    }
}

/// Counts and the latest events, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutboxStats {
    pub pending: u64,
    pub delivered: u64,
    pub rejected: u64,
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// The latest failed attempt to reach the hub, while it is current:
    /// cleared by the next successful delivery.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// The error a later success cleared, kept for the record.
    pub previous_error: Option<String>,
    pub previous_error_at: Option<DateTime<Utc>>,
    /// The sharing directives queued, by state.
    pub directives: QueueCounts,
}

/// The outbox database. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: SqlitePool,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn from_ms(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

impl Outbox {
    /// Opens (creating if need be) the outbox at `path` and brings its schema
    /// up to date.
    pub async fn open(path: &Path) -> Result<Self, OutboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| OutboxError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let outbox = Self { pool };
        outbox.migrate().await?;
        Ok(outbox)
    }

    async fn migrate(&self) -> Result<(), OutboxError> {
        let mut conn = self.pool.acquire().await?;
        // Take the write lock first, so two processes opening a fresh file at
        // once do not both run the same migration.
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let result: Result<(), OutboxError> = async {
            let applied: i64 = sqlx::query_scalar("PRAGMA user_version")
                .fetch_one(&mut *conn)
                .await?;
            for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
                let number = index as i64 + 1;
                if number <= applied {
                    continue;
                }
                sqlx::raw_sql(sql)
                    .execute(&mut *conn)
                    .await
                    .map_err(|source| OutboxError::Migrate { name, source })?;
                // PRAGMA takes no bound parameters; `number` is our own constant.
                sqlx::raw_sql(&format!("PRAGMA user_version = {number}"))
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
                Ok(())
            }
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                Err(e)
            }
        }
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
