//! Migrations compiled into the binary, so a hub needs no files beside it.
//!
//! sqlx's `migrate!` macro lives behind its `macros` feature, which this
//! workspace leaves off; this small [`MigrationSource`] does the same job.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// A list of (version, description, SQL).
#[derive(Debug, Clone, Copy)]
pub struct Embedded(pub &'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The SQLite schema.
pub const SQLITE: Embedded = Embedded(&[
    (
        1,
        "records and audit",
        include_str!("../../migrations/sqlite/0001_records_and_audit.sql"),
    ),
    (
        2,
        "directives, notifications and break glass",
        include_str!("../../migrations/sqlite/0002_directives_notifications_break_glass.sql"),
    ),
    (
        3,
        "subscriptions",
        include_str!("../../migrations/sqlite/0003_subscriptions.sql"),
    ),
]);

/// The PostgreSQL schema: the same tables and rules as [`SQLITE`].
pub const POSTGRES: Embedded = Embedded(&[
    (
        1,
        "records and audit",
        include_str!("../../migrations/postgres/0001_records_and_audit.sql"),
    ),
    (
        2,
        "directives, notifications and break glass",
        include_str!("../../migrations/postgres/0002_directives_notifications_break_glass.sql"),
    ),
    (
        3,
        "subscriptions",
        include_str!("../../migrations/postgres/0003_subscriptions.sql"),
    ),
]);

/// Builds the migrator for a set of migrations.
pub async fn migrator(source: Embedded) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(source).await
}
