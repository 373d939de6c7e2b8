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

/// The schema, oldest first. Each runs once, in its own transaction, and
/// `PRAGMA user_version` records how many have run. (`sqlx::migrate!` would
/// need sqlx's `macros` feature, which this workspace leaves off.)
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_outbox", include_str!("../migrations/0001_outbox.sql")),
    (
        "0002_directives_and_notifications",
        include_str!("../migrations/0002_directives_and_notifications.sql"),
    ),
];

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

    /// Writes records (or directives) in one transaction. One whose id and
    /// version are already there (or earlier in `items`) is skipped: counted
    /// as a duplicate when its content hash is the one already taken,
    /// reported as a conflict when it differs. What is already queued wins
    /// over what comes earlier in `items`.
    pub async fn enqueue<T: Queued>(&self, items: &[T]) -> Result<EnqueueSummary, OutboxError> {
        if items.is_empty() {
            return Ok(EnqueueSummary::default());
        }
        let queue = T::QUEUE;
        // The first item of each (id, version), in order, and the indexes
        // of the later ones.
        let mut position: HashMap<(&str, u64), usize> = HashMap::new();
        let mut firsts: Vec<(usize, &T)> = Vec::new();
        let mut later: Vec<Vec<usize>> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match position.entry((item.queue_id(), item.queue_version())) {
                std::collections::hash_map::Entry::Occupied(at) => later[*at.get()].push(index),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(firsts.len());
                    firsts.push((index, item));
                    later.push(Vec::new());
                }
            }
        }
        let mut summary = EnqueueSummary::default();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for (chunk_no, chunk) in firsts.chunks(INSERT_CHUNK).enumerate() {
            // Writing first takes the write lock, so the rows read back below
            // cannot change before the commit.
            let mut insert = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO {} ({}, version, content_hash, {}, state, enqueued_at{}) ",
                queue.table, queue.id_column, queue.json_column, queue.extra_columns
            ));
            insert.push_values(chunk, |mut row, (_, item)| {
                let json = serde_json::to_string(item).expect("domain values always serialise");
                row.push_bind(item.queue_id().to_string())
                    .push_bind(item.queue_version() as i64)
                    .push_bind(item.queue_hash())
                    .push_bind(json)
                    .push_bind("pending")
                    .push_bind(now);
                item.push_extra(&mut row);
            });
            insert.push(format!(
                " ON CONFLICT ({0}, version) DO NOTHING RETURNING {0} AS id, version",
                queue.id_column
            ));
            let inserted: HashSet<(String, i64)> = insert
                .build()
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("id")?, row.try_get("version")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            summary.enqueued += inserted.len();
            let key = |r: &T| (r.queue_id().to_string(), r.queue_version() as i64);
            let skipped: Vec<&T> = chunk
                .iter()
                .map(|(_, r)| *r)
                .filter(|r| !inserted.contains(&key(r)))
                .collect();
            // What the rows queued before this call hold.
            let mut held: HashMap<(String, i64), String> = HashMap::new();
            if !skipped.is_empty() {
                let mut query = QueryBuilder::<Sqlite>::new(format!(
                    "SELECT {0} AS id, version, content_hash FROM {1} WHERE {0} IN (",
                    queue.id_column, queue.table
                ));
                let mut list = query.separated(", ");
                for item in &skipped {
                    list.push_bind(item.queue_id().to_string());
                }
                list.push_unseparated(")");
                for row in query.build().fetch_all(&mut *tx).await? {
                    held.insert(
                        (row.try_get("id")?, row.try_get("version")?),
                        row.try_get("content_hash")?,
                    );
                }
            }
            for (offset, &(index, item)) in chunk.iter().enumerate() {
                // The content this id and version stands for: what was
                // queued before, or else this call's first item of it.
                let first_hash = item.queue_hash();
                let taken = held
                    .get(&key(item))
                    .map_or(first_hash.as_str(), String::as_str);
                let mut judge = |index: usize| {
                    let item = &items[index];
                    if item.queue_hash() == taken {
                        summary.duplicates += 1;
                    } else {
                        summary.conflicts.push(EnqueueConflict {
                            index,
                            id: item.queue_id().to_string(),
                            version: item.queue_version(),
                            noun: queue.noun,
                        });
                    }
                };
                if !inserted.contains(&key(item)) {
                    judge(index);
                }
                for &index in &later[chunk_no * INSERT_CHUNK + offset] {
                    judge(index);
                }
            }
        }
        tx.commit().await?;
        summary.conflicts.sort_by_key(|c| c.index);
        Ok(summary)
    }

    /// Up to `limit` pending records, oldest first.
    ///
    /// A stored row that no longer reads as a record (it cannot happen short
    /// of hand-editing the file) is marked rejected rather than blocking the
    /// queue.
    pub async fn next_batch(&self, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let rows = self.pending::<Record>(limit, "").await?;
        Ok(rows
            .into_iter()
            .map(|(id, record)| OutboxEntry { id, record })
            .collect())
    }

    /// Up to `limit` pending directives, oldest first, that may go now:
    /// every record queued before each has left `pending`, and so has every
    /// queued version of the record it governs (the hub refuses a directive
    /// for a record it does not hold).
    pub async fn next_directive_batch(
        &self,
        limit: usize,
    ) -> Result<Vec<DirectiveEntry>, OutboxError> {
        let ready = "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.state = 'pending' \
                     AND (o.id <= q.after_record OR o.record_id = q.record_id))";
        let rows = self.pending::<Directive>(limit, ready).await?;
        Ok(rows
            .into_iter()
            .map(|(id, directive)| DirectiveEntry { id, directive })
            .collect())
    }

    /// Pending items of one kind, oldest first, that meet `condition` (SQL
    /// over the queue's row `q`; our own constant).
    async fn pending<T: Queued>(
        &self,
        limit: usize,
        condition: &str,
    ) -> Result<Vec<(OutboxId, T)>, OutboxError> {
        let queue = T::QUEUE;
        let rows = sqlx::query(&format!(
            "SELECT q.id AS id, q.{} AS json FROM {} q WHERE q.state = 'pending' {condition} \
             ORDER BY q.id LIMIT ?",
            queue.json_column, queue.table
        ))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let json: String = row.try_get("json")?;
            match serde_json::from_str::<T>(&json) {
                Ok(item) => batch.push((id, item)),
                Err(e) => {
                    tracing::error!(outbox_id = id, queue = queue.table, error = %e,
                        "stored item is unreadable; marking it rejected");
                    self.mark_rejected_in(
                        queue,
                        id,
                        &format!("stored {} is unreadable: {e}", queue.noun),
                    )
                    .await?;
                }
            }
        }
        Ok(batch)
    }

    /// The directives this agent has queued for `record_id` that stand as
    /// the custodian's word: of each directive, its highest version not
    /// refused by the hub.
    pub async fn directives_for(&self, record_id: &str) -> Result<Vec<Directive>, OutboxError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT d.directive_json FROM directive_outbox d \
             WHERE d.record_id = ? AND d.state != 'rejected' AND d.version = \
               (SELECT MAX(e.version) FROM directive_outbox e \
                WHERE e.directive_id = d.directive_id AND e.state != 'rejected') \
             ORDER BY d.id",
        )
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|e| OutboxError::Sql(sqlx::Error::Decode(Box::new(e))))
            })
            .collect()
    }

    /// The record with this id and version as it was queued, if the outbox
    /// holds it (whatever its delivery state). The hub asks for it when the
    /// record's detail is held at source.
    pub async fn record(
        &self,
        record_id: &str,
        version: u64,
    ) -> Result<Option<Record>, OutboxError> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT record_json FROM outbox WHERE record_id = ? AND version = ?",
        )
        .bind(record_id)
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Marks record rows delivered with the hub's outcome.
    pub async fn mark_delivered(
        &self,
        ids: &[OutboxId],
        outcome: DeliveryOutcome,
    ) -> Result<(), OutboxError> {
        self.mark_delivered_in(RECORDS, ids, outcome).await
    }

    /// Marks a record row permanently refused, keeping the reason. It is not
    /// retried.
    pub async fn mark_rejected(&self, id: OutboxId, reason: &str) -> Result<(), OutboxError> {
        self.mark_rejected_in(RECORDS, id, reason).await
    }

    /// Marks rows of `queue` delivered with the hub's outcome.
    pub async fn mark_delivered_in(
        &self,
        queue: Queue,
        ids: &[OutboxId],
        outcome: DeliveryOutcome,
    ) -> Result<(), OutboxError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in ids.chunks(UPDATE_CHUNK) {
            let mut update = QueryBuilder::<Sqlite>::new(format!(
                "UPDATE {} SET state = 'delivered', outcome = ",
                queue.table
            ));
            update.push_bind(outcome.as_str());
            update.push(", delivered_at = ");
            update.push_bind(now);
            update.push(" WHERE state = 'pending' AND id IN (");
            let mut list = update.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            list.push_unseparated(")");
            update.build().execute(&mut *tx).await?;
        }
        clear_attempt_error(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a row of `queue` permanently refused, keeping the reason.
    pub async fn mark_rejected_in(
        &self,
        queue: Queue,
        id: OutboxId,
        reason: &str,
    ) -> Result<(), OutboxError> {
        sqlx::query(&format!(
            "UPDATE {} SET state = 'rejected', reject_reason = ?, rejected_at = ? \
             WHERE id = ? AND state = 'pending'",
            queue.table
        ))
        .bind(reason)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remembers the latest failed attempt to reach the hub, for `status`.
    pub async fn record_attempt_error(&self, message: &str) -> Result<(), OutboxError> {
        sqlx::query(
            "INSERT INTO agent_state (key, value, at) VALUES ('last_error', ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
        )
        .bind(message)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notes that the hub answered a publish: the current error, if any,
    /// becomes the previous error. ([`Outbox::mark_delivered`] does this
    /// too.)
    pub async fn record_attempt_success(&self) -> Result<(), OutboxError> {
        // Most calls find nothing to clear; they need not write (and sync).
        let current: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM agent_state WHERE key = 'last_error'")
                .fetch_optional(&self.pool)
                .await?;
        if current.is_none() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        clear_attempt_error(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts by state and the latest delivery and error.
    pub async fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let records = self.counts(RECORDS).await?;
        let mut stats = OutboxStats {
            pending: records.pending,
            delivered: records.delivered,
            rejected: records.rejected,
            directives: self.counts(DIRECTIVES).await?,
            ..OutboxStats::default()
        };
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(delivered_at) FROM outbox WHERE state = 'delivered'")
                .fetch_one(&self.pool)
                .await?;
        stats.last_delivery_at = from_ms(last);
        if let Some(row) = sqlx::query("SELECT value, at FROM agent_state WHERE key = 'last_error'")
            .fetch_optional(&self.pool)
            .await?
        {
            stats.last_error = Some(row.try_get("value")?);
            stats.last_error_at = from_ms(Some(row.try_get("at")?));
        }
        if let Some(row) =
            sqlx::query("SELECT value, at FROM agent_state WHERE key = 'previous_error'")
                .fetch_optional(&self.pool)
                .await?
        {
            stats.previous_error = Some(row.try_get("value")?);
            stats.previous_error_at = from_ms(Some(row.try_get("at")?));
        }
        Ok(stats)
    }

    /// How many rows of `queue` stand in each state.
    async fn counts(&self, queue: Queue) -> Result<QueueCounts, OutboxError> {
        let mut counts = QueueCounts::default();
        let rows = sqlx::query(&format!(
            "SELECT state, COUNT(*) AS n FROM {} GROUP BY state",
            queue.table
        ))
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let state: String = row.try_get("state")?;
            let n = row.try_get::<i64, _>("n")? as u64;
            match state.as_str() {
                "pending" => counts.pending = n,
                "delivered" => counts.delivered = n,
                "rejected" => counts.rejected = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// The most recently refused directives, newest first, with the hub's
    /// reasons.
    pub async fn rejected_directives(
        &self,
        limit: usize,
    ) -> Result<Vec<RejectedDirective>, OutboxError> {
        let rows = sqlx::query(
            "SELECT directive_id, version, record_id, reject_reason, rejected_at \
             FROM directive_outbox WHERE state = 'rejected' \
             ORDER BY rejected_at DESC, id DESC LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(RejectedDirective {
                    directive_id: row.try_get("directive_id")?,
                    version: row.try_get::<i64, _>("version")? as u64,
                    record_id: row.try_get("record_id")?,
                    reason: row
                        .try_get::<Option<String>, _>("reject_reason")?
                        .unwrap_or_default(),
                    rejected_at: from_ms(row.try_get("rejected_at")?),
                })
            })
            .collect()
    }

    /// The pool, for the other tables in the agent's database
    /// ([`crate::notifications`]).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The state of every row for a record id, oldest version first.
    pub async fn entries_for(&self, record_id: &str) -> Result<Vec<EntryStatus>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, record_id, version, state, outcome, reject_reason FROM outbox \
             WHERE record_id = ? ORDER BY version, id",
        )
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(entry_status).collect()
    }

    /// The most recently rejected rows, newest first, with their reasons.
    pub async fn recent_rejections(&self, limit: usize) -> Result<Vec<EntryStatus>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, record_id, version, state, outcome, reject_reason FROM outbox \
             WHERE state = 'rejected' ORDER BY rejected_at DESC, id DESC LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(entry_status).collect()
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Moves the current error, if there is one, to `previous_error`.
async fn clear_attempt_error(tx: &mut sqlx::Transaction<'_, Sqlite>) -> Result<(), sqlx::Error> {
    // The WHERE clause also settles SQLite's INSERT ... SELECT ... ON CONFLICT
    // parsing ambiguity.
    sqlx::query(
        "INSERT INTO agent_state (key, value, at) \
         SELECT 'previous_error', value, at FROM agent_state WHERE key = 'last_error' \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM agent_state WHERE key = 'last_error'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn entry_status(row: sqlx::sqlite::SqliteRow) -> Result<EntryStatus, OutboxError> {
    let state: String = row.try_get("state")?;
    let state = state
        .parse()
        .map_err(|e: String| OutboxError::Sql(sqlx::Error::Decode(e.into())))?;
    Ok(EntryStatus {
        id: row.try_get("id")?,
        record_id: row.try_get("record_id")?,
        version: row.try_get::<i64, _>("version")? as u64,
        state,
        outcome: row.try_get("outcome")?,
        reject_reason: row.try_get("reject_reason")?,
    })
}
