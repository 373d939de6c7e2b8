//! The hub's store: one interface, one implementation per database.
//!
//! The domain ([`crate::publish`], [`crate::query`]) talks only to the
//! [`Store`] trait. Each write that changes records commits in the same
//! transaction as the audit entry recording it, so no change is ever
//! acknowledged, or lost, without its entry. Audit entries are append-only:
//! no method here updates or deletes one.
//!
//! SQLite ([`sqlite`]) is the embedded default. PostgreSQL ([`postgres`])
//! is the production store, which several hub replicas may share.

mod codec;
pub mod migrations;
pub mod postgres;
pub mod sql;
pub mod sqlite;
mod sqlite_audit;
mod sqlite_reads;

use async_trait::async_trait;
use chrono::NaiveDate;
use kith_core::{Directive, NhsNumber, Record, WithdrawReason};

use crate::audit::AuditEntry;
use crate::model::{BreakGlassAccess, Notification, Review, Subscription};

/// SHA-256 leaf hash of an entry's bytes (RFC 9162 section 2.1.1).
pub fn leaf_hash_of(entry: &[u8]) -> [u8; 32] {
    kith_tlog::leaf_hash(entry)
}

pub use postgres::PostgresStore;
pub use sql::{Dialect, SqlStore};
pub use sqlite::{SqliteStore, sqlite_file};

/// Which store a `database_url` names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `sqlite://PATH` (a file: an in-memory database is refused when
    /// opened, since it would lose the audit log).
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl StoreKind {
    /// The store `url` names, or an error naming the schemes understood.
    pub fn of_url(url: &str) -> Result<Self, String> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            let scheme = url.split_once(':').map_or("", |(s, _)| s);
            Err(format!(
                "database_url: the scheme {scheme:?} is not supported; \
                 use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
            ))
        }
    }
}

/// Opens the store `url` names (see [`StoreKind::of_url`]).
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match StoreKind::of_url(url).map_err(StoreError::Config)? {
        StoreKind::Sqlite => Ok(std::sync::Arc::new(SqliteStore::open(url).await?)),
        StoreKind::Postgres => Ok(std::sync::Arc::new(PostgresStore::open(url).await?)),
    }
}

/// Names one record: its custodian and the custodian's record id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey {
    pub custodian: String,
    pub record_id: String,
}

/// Whether a record is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    Active,
    Withdrawn(WithdrawReason),
}

/// A record as held, with what happened to it since it was published.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The record; cut to its index and summary when `held_at_source`.
    pub record: Record,
    /// The detail stays with the custodian (residency): fetch it live.
    pub held_at_source: bool,
    pub status: RecordStatus,
    /// Set when the custodian ended the relationship after publishing.
    pub ended_on: Option<NaiveDate>,
    /// The record's sharing directives, current versions, any status.
    pub directives: Vec<Directive>,
}

/// A valid record ready to store: whole, or cut to its index when its
/// detail may not be held at the hub. `content_hash` is always the whole
/// record's.
#[derive(Debug, Clone, PartialEq)]
pub struct Publishable {
    pub record: Record,
    pub held_at_source: bool,
}

/// What storing one published record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored as the current version.
    Accepted,
    /// This exact version is already held.
    Unchanged,
    /// A newer version is held.
    Stale { held: u64 },
    /// This version is held with different content.
    Conflict,
}

/// What a change to an existing record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    Done,
    NotFound,
}

/// A database driver's error, kept whole as the cause (for logs and
/// `source()`), without naming the driver's type in [`StoreError`].
pub type DriverError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement, a transaction or a
    /// connection (through sqlx, or the SQLite store's own rusqlite
    /// connections on the query path and the audit group commit).
    #[error("database error: {0}")]
    Database(DriverError),
    #[error("migration failed: {0}")]
    Migrate(DriverError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(Box::new(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

/// What storing one published directive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectiveOutcome {
    /// Stored as the current version.
    Accepted,
    /// This exact version is already held.
    Unchanged,
    /// A newer version is held.
    Stale { held: u64 },
    /// This version is held with different content.
    Conflict,
    /// The custodian has no record with the directive's record id.
    UnknownRecord,
    /// The directive id is held for another of the custodian's records.
    OtherRecord { held_for: String },
}

/// Builds the audit entry for a directive publish once the outcomes are known.
pub type DirectiveAudit<'a> = &'a (dyn Fn(&[DirectiveOutcome]) -> AuditEntry + Send + Sync);
/// Builds the audit entry for purging one record.
pub type PurgeAudit<'a> = &'a (dyn Fn(&RecordKey) -> AuditEntry + Send + Sync);

/// Builds the audit entry for a publish once the outcomes are known.
pub type PublishAudit<'a> = &'a (dyn Fn(&[StoreOutcome]) -> AuditEntry + Send + Sync);
/// Builds the audit entry for a change once its outcome is known.
pub type ChangeAudit<'a> = &'a (dyn Fn(ChangeOutcome) -> AuditEntry + Send + Sync);

/// Builds a publish's audit entry and the subscription notices it gives,
/// once the outcomes are known (the notices' `audit_index` is set to the
/// entry's when stored).
pub type PublishEffects<'a> =
    &'a (dyn Fn(&[StoreOutcome]) -> (AuditEntry, Vec<Notification>) + Send + Sync);
/// Builds a change's audit entry and the subscription notices it gives.
pub type ChangeEffects<'a> =
    &'a (dyn Fn(ChangeOutcome) -> (AuditEntry, Vec<Notification>) + Send + Sync);

/// What storing a new subscription did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// Stored.
    Created,
    /// The subscriber already holds a current one asking for the same.
    Duplicate { held: String },
    /// The subscriber holds as many current subscriptions for the person
    /// as one authority may.
    TooMany { held: usize },
}

/// Builds the audit entry for a subscribe once its outcome is known.
pub type SubscribeAudit<'a> = &'a (dyn Fn(&SubscribeOutcome) -> AuditEntry + Send + Sync);

/// What ending one of an authority's subscriptions did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeOutcome {
    Done,
    /// No current subscription with that id.
    NotFound,
    /// The id is another authority's subscription: nothing changed.
    NotYours,
}

/// Builds the audit entry for an unsubscribe once its outcome is known.
pub type UnsubscribeAudit<'a> = &'a (dyn Fn(UnsubscribeOutcome) -> AuditEntry + Send + Sync);

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a batch of valid records of one custodian, each idempotent on
    /// (custodian, record id, version), and the batch's audit entry, in one
    /// transaction. Returns one outcome per record and the entry's index.
    async fn publish(
        &self,
        records: &[Publishable],
        audit: PublishAudit<'_>,
    ) -> Result<(Vec<StoreOutcome>, u64), StoreError> {
        self.publish_notifying(records, &|o: &[StoreOutcome]| (audit(o), Vec::new()))
            .await
    }

    /// [`Store::publish`], storing the subscription notices `effects` gives
    /// in the same transaction as the entry, each with the entry's index.
    async fn publish_notifying(
        &self,
        records: &[Publishable],
        effects: PublishEffects<'_>,
    ) -> Result<(Vec<StoreOutcome>, u64), StoreError>;

    /// Sets the end of a record's relationship.
    async fn end_record(
        &self,
        key: &RecordKey,
        end: NaiveDate,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        self.end_record_notifying(key, end, &|o| (audit(o), Vec::new()))
            .await
    }

    /// [`Store::end_record`], with the notices `effects` gives, in the same
    /// transaction. The custodian's own subscriptions for the person end
    /// too when it holds no other open record of them.
    async fn end_record_notifying(
        &self,
        key: &RecordKey,
        end: NaiveDate,
        effects: ChangeEffects<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError>;

    /// Withdraws a record from sharing.
    async fn withdraw_record(
        &self,
        key: &RecordKey,
        reason: WithdrawReason,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError> {
        self.withdraw_record_notifying(key, reason, &|o| (audit(o), Vec::new()))
            .await
    }

    /// [`Store::withdraw_record`], with the notices `effects` gives, in the
    /// same transaction; ends the custodian's own subscriptions for the
    /// person as [`Store::end_record_notifying`] does.
    async fn withdraw_record_notifying(
        &self,
        key: &RecordKey,
        reason: WithdrawReason,
        effects: ChangeEffects<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError>;

    /// Stores a new subscription and its audit entry (whose index it gets)
    /// in one transaction, unless the subscriber already holds a current
    /// one asking for the same, or too many for the person on `today`.
    async fn subscribe(
        &self,
        subscription: &Subscription,
        today: NaiveDate,
        audit: SubscribeAudit<'_>,
    ) -> Result<(SubscribeOutcome, u64), StoreError>;

    /// Ends `subscriber`'s subscription `subscription_id` (`reason`, e.g.
    /// "unsubscribed"), with its audit entry, in one transaction.
    async fn end_subscription(
        &self,
        subscriber: &str,
        subscription_id: &str,
        reason: &str,
        audit: UnsubscribeAudit<'_>,
    ) -> Result<(UnsubscribeOutcome, u64), StoreError>;

    /// `subscriber`'s subscriptions, newest first (at most 10,000): current
    /// on `today` only, or all.
    async fn subscriptions_of(
        &self,
        subscriber: &str,
        include_ended: bool,
        today: NaiveDate,
    ) -> Result<Vec<Subscription>, StoreError>;

    /// Every subscription current on `today` for any of these people (NHS
    /// number digits): one indexed lookup per subject.
    async fn subscriptions_for_subjects(
        &self,
        nhs_numbers: &[String],
        today: NaiveDate,
    ) -> Result<Vec<Subscription>, StoreError>;

    /// Stores a batch of valid directives of one custodian, each idempotent
    /// on (custodian, directive id, version), and the batch's audit entry,
    /// in one transaction. A directive for a record the custodian has not
    /// published is refused.
    async fn publish_directives(
        &self,
        directives: &[Directive],
        audit: DirectiveAudit<'_>,
    ) -> Result<(Vec<DirectiveOutcome>, u64), StoreError>;

    /// Deletes every record whose `retain_until` is before `today`, with its
    /// directives, each with its own audit entry in the same transaction.
    /// Returns the keys purged and their entries' indexes.
    async fn purge_expired(
        &self,
        today: NaiveDate,
        audit: PurgeAudit<'_>,
    ) -> Result<Vec<(RecordKey, u64)>, StoreError>;

    /// The authorities whose users were shown this record (summary or more).
    async fn recipients_of(&self, key: &RecordKey) -> Result<Vec<String>, StoreError>;

    /// Stores notifications for delivery.
    async fn enqueue_notifications(&self, notifications: &[Notification])
    -> Result<(), StoreError>;

    /// Up to `limit` notifications to `authority` not yet acknowledged,
    /// oldest first.
    async fn pending_notifications(
        &self,
        authority: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Marks one of `authority`'s notifications delivered; returns it, or
    /// `None` when there is no such undelivered notification.
    async fn mark_notification_delivered(
        &self,
        authority: &str,
        notification_id: &str,
        at: &str,
    ) -> Result<Option<Notification>, StoreError>;

    /// The latest access of this user at `authority` to `subject` that is
    /// still open at `now` (RFC 3339).
    async fn open_break_glass(
        &self,
        authority: &str,
        user_id: &str,
        subject: &str,
        now: &str,
    ) -> Result<Option<BreakGlassAccess>, StoreError>;

    /// `authority`'s break-glass accesses, newest first: unreviewed, or all.
    async fn break_glass_accesses(
        &self,
        authority: &str,
        include_reviewed: bool,
    ) -> Result<Vec<BreakGlassAccess>, StoreError>;

    /// One of `authority`'s break-glass accesses, by its query id.
    async fn break_glass_access(
        &self,
        authority: &str,
        query_id: &str,
    ) -> Result<Option<BreakGlassAccess>, StoreError>;

    /// Records the review of one of `authority`'s accesses, and its audit
    /// entry (whose index the stored review gets), in one transaction.
    async fn review_break_glass(
        &self,
        authority: &str,
        query_id: &str,
        review: &Review,
        audit: ChangeAudit<'_>,
    ) -> Result<(ChangeOutcome, u64), StoreError>;

    /// Every active record about the person with this NHS number that is
    /// still within its retention on `today` (a record past its
    /// `retain_until` is gone at once, before the purge removes it).
    async fn records_for_nhs_number(
        &self,
        nhs_number: &NhsNumber,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// Active records within their retention on `today` whose subject was
    /// born on one of `dates_of_birth` or lives at `postcode_key`
    /// (normalised): the block a demographic query is scored against. At
    /// most `limit`, with their directives; expired records are left out
    /// before the limit is applied, so they never crowd out current ones.
    async fn records_for_demographics(
        &self,
        dates_of_birth: &[NaiveDate],
        postcode_key: Option<&str>,
        limit: u32,
        today: NaiveDate,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// The record with this key, whatever its status, with its directives.
    async fn record(&self, key: &RecordKey) -> Result<Option<StoredRecord>, StoreError>;

    /// Appends audit entries in one transaction (one durable commit for the
    /// lot: group commit); returns the index of the first. Entries get
    /// consecutive indexes in order. A query entry's disclosures (summary or
    /// more) are noted for [`Store::recipients_of`] in the same transaction.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<u64, StoreError> {
        self.append_audit_with(entries, &AuditEffects::default())
            .await
    }

    /// [`Store::append_audit`], storing `effects` in the same transaction:
    /// never the entries without their effects, nor the effects without
    /// their entries. Each effect's `audit_index` is read as a position in
    /// `entries` and stored as that entry's index.
    async fn append_audit_with(
        &self,
        entries: &[AuditEntry],
        effects: &AuditEffects,
    ) -> Result<u64, StoreError>;

    /// Up to `limit` audit entries from index `from`, as stored.
    async fn audit_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredAuditEntry>, StoreError>;

    /// As [`Store::audit_entries`], stopping once the entries read hold
    /// `max_bytes` of entry bytes or more (always at least one entry when
    /// there is one): a page of large entries stays small.
    async fn audit_entries_within(
        &self,
        from: u64,
        limit: u32,
        max_bytes: usize,
    ) -> Result<Vec<StoredAuditEntry>, StoreError>;

    /// Up to `limit` leaf hashes from index `from`, in order.
    async fn audit_leaf_hashes(&self, from: u64, limit: u32) -> Result<Vec<[u8; 32]>, StoreError>;

    /// How many audit entries there are.
    async fn audit_len(&self) -> Result<u64, StoreError>;

    /// The checkpoint with the largest tree size, if any.
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Records a newly signed checkpoint.
    async fn append_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError>;

    /// Takes, or confirms this process still holds, the lease that makes it
    /// the one hub signing checkpoints for this database. Other replicas
    /// follow the checkpoints it stores. Returns whether this process holds it.
    async fn hold_sequencer_lease(&self) -> Result<bool, StoreError>;

    /// Gives the lease up (at shutdown), so another replica takes over at
    /// once rather than when the connection is found dead.
    async fn release_sequencer_lease(&self) {}
}

/// What a query's audit entry commits with (see [`Store::append_audit_with`]).
#[derive(Debug, Clone, Default)]
pub struct AuditEffects {
    /// Notices to store for delivery over the recipients' links.
    pub notifications: Vec<Notification>,
    /// Break-glass accesses claimed by the entries, opened for review.
    pub break_glass: Vec<BreakGlassAccess>,
}

impl AuditEffects {
    /// These effects placed at `first`: every `audit_index` turned from a
    /// position in the entries into an index in the log.
    pub fn placed_at(&self, first: u64) -> AuditEffects {
        AuditEffects {
            notifications: self
                .notifications
                .iter()
                .map(|n| Notification {
                    audit_index: first + n.audit_index,
                    ..n.clone()
                })
                .collect(),
            break_glass: self
                .break_glass
                .iter()
                .map(|b| BreakGlassAccess {
                    audit_index: first + b.audit_index,
                    ..b.clone()
                })
                .collect(),
        }
    }

    /// Appends `other`, whose positions count from `base` in a larger group.
    pub fn extend_from(&mut self, other: &AuditEffects, base: u64) {
        let placed = other.placed_at(base);
        self.notifications.extend(placed.notifications);
        self.break_glass.extend(placed.break_glass);
    }
}

/// An audit entry as stored: its index, its exact bytes, and the leaf hash
/// computed from them when it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEntry {
    pub index: u64,
    pub entry: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

/// A signed checkpoint of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root_hash: [u8; 32],
    /// The C2SP signed note, exactly as signed.
    pub signed_note: String,
}
