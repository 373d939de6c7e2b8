//! The database a test's hubs use: SQLite in the test's folder, or a fresh
//! PostgreSQL database per test (`KITH_TEST_DATABASE=postgres`), dropped
//! afterwards; and `HubDb`, a raw connection to it for tampering tests.

use super::*;

/// Which store a test hub uses: SQLite (`hub.db` in the test folder) by
/// default, or PostgreSQL when `KITH_TEST_DATABASE=postgres`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStore {
    Sqlite,
    Postgres,
}

impl TestStore {
    /// The store chosen by `KITH_TEST_DATABASE` (`postgres`, or `sqlite`,
    /// the default).
    pub fn from_env() -> Self {
        match std::env::var("KITH_TEST_DATABASE").as_deref() {
            Ok("postgres") | Ok("postgresql") => Self::Postgres,
            Ok("") | Ok("sqlite") | Err(_) => Self::Sqlite,
            Ok(other) => panic!("KITH_TEST_DATABASE={other:?}: use sqlite or postgres"),
        }
    }
}

/// The PostgreSQL server the tests use: loopback only, trust auth.
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own on the local PostgreSQL, `kith_test_<random hex>`,
/// dropped (with any connections still open to it) when this drops.
pub struct PostgresTestDb {
    name: String,
}

impl PostgresTestDb {
    /// Creates the database. Blocking: runs on a thread of its own, so it
    /// works inside and outside a tokio runtime.
    pub fn create() -> Self {
        let name = format!("kith_test_{}", hex_id());
        // A database name cannot be a bound parameter; this one is ours,
        // [a-z0-9_] only.
        let sql = format!("CREATE DATABASE {name}");
        admin_blocking(sql).unwrap_or_else(|e| {
            panic!(
                "KITH_TEST_DATABASE=postgres needs PostgreSQL at 127.0.0.1:5432 ({e}); start it \
                 with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            )
        });
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PostgresTestDb {
    fn drop(&mut self) {
        // Best effort: a failed drop leaves a database behind, nothing worse.
        let _ = admin_blocking(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

pub(crate) fn hex_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Runs one statement on the maintenance database, on a thread with its own
/// runtime (a runtime cannot block inside another).
pub(crate) fn admin_blocking(sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL)
                .await
                .map_err(|e| e.to_string())?;
            let result = sqlx::query(&sql).execute(&mut conn).await;
            let _ = conn.close().await;
            result.map(|_| ()).map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "the database thread panicked".to_string())?
}

/// Direct access to a test hub's database, past the hub, on whichever store
/// the tests run: to tamper with rows, break writes, or look for data.
pub enum HubDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl HubDb {
    /// Connects to the database `t`'s hubs use.
    pub async fn connect(t: &TestDir) -> Self {
        match t.store_kind() {
            TestStore::Sqlite => Self::Sqlite(
                sqlx::SqlitePool::connect(&t.database_url())
                    .await
                    .expect("hub.db"),
            ),
            TestStore::Postgres => Self::Postgres(t.postgres_pool().await),
        }
    }

    /// Runs a statement with no parameters, in the dialect of the store.
    pub async fn execute(&self, sqlite: &str, postgres: &str) {
        match self {
            Self::Sqlite(pool) => sqlx::raw_sql(sqlite).execute(pool).await.map(|_| ()),
            Self::Postgres(pool) => sqlx::raw_sql(postgres).execute(pool).await.map(|_| ()),
        }
        .expect("statement runs");
    }

    /// The stored bytes of audit entry `idx`.
    pub async fn audit_entry(&self, idx: i64) -> Vec<u8> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query_scalar("SELECT entry FROM audit_log WHERE idx = ?")
                    .bind(idx)
                    .fetch_one(pool)
                    .await
            }
            Self::Postgres(pool) => {
                sqlx::query_scalar("SELECT entry FROM audit_log WHERE idx = $1")
                    .bind(idx)
                    .fetch_one(pool)
                    .await
            }
        }
        .expect("an audit entry")
    }

    /// Overwrites audit entry `idx`'s bytes, and its leaf hash if given (the
    /// append-only triggers must be gone first).
    pub async fn rewrite_audit_entry(&self, idx: i64, entry: &[u8], leaf_hash: Option<[u8; 32]>) {
        let leaf = leaf_hash.map(|h| h.to_vec());
        match self {
            Self::Sqlite(pool) => sqlx::query(
                "UPDATE audit_log SET entry = ?, leaf_hash = COALESCE(?, leaf_hash) WHERE idx = ?",
            )
            .bind(entry)
            .bind(leaf)
            .bind(idx)
            .execute(pool)
            .await
            .map(|_| ()),
            Self::Postgres(pool) => sqlx::query(
                "UPDATE audit_log SET entry = $1, leaf_hash = COALESCE($2, leaf_hash) WHERE idx = $3",
            )
            .bind(entry)
            .bind(leaf)
            .bind(idx)
            .execute(pool)
            .await
            .map(|_| ()),
        }
        .expect("rewrite");
    }

    pub async fn close(self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}
