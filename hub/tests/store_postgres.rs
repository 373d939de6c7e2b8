//! The PostgreSQL store against a real server at 127.0.0.1:5432 (trust
//! auth, as CI sets up): the same publish, version, conflict, change, audit
//! and checkpoint behaviour as the SQLite store, and gapless audit indexes
//! when several stores (standing in for hub replicas) share one database.
//!
//! Each test makes its own database, `kith_store_test_<random hex>`, and
//! drops it afterwards, so the tests run in parallel.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use kith_core::{NhsNumber, Record, WithdrawReason};
use kith_hub::audit::{AuditEntry, AuditKind};
use kith_hub::store::{
    ChangeOutcome, PostgresStore, Publishable, RecordKey, RecordStatus, Store, StoreKind,
    StoreOutcome, StoredCheckpoint,
};

/// The maintenance database the test databases are made from. Loopback only.
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped (with any connections to it) when this drops.
struct TestDb {
    name: String,
}

impl TestDb {
    async fn new() -> Self {
        let name = format!("kith_store_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let admin = sqlx::PgPool::connect(ADMIN_URL).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at 127.0.0.1:5432 is needed for these tests ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            )
        });
        // A name cannot be bound as a parameter; this one is ours, [a-z0-9_].
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::open(&self.url()).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Best effort, on a thread of its own: a runtime cannot block inside
        // the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

fn nhs(n: u32) -> String {
    let mut nine = [9u8, 9, 9, 0, 0, 0, 0, 0, 0];
    let mut k = n;
    loop {
        let mut rest = k % 1_000_000;
        for slot in nine[3..].iter_mut().rev() {
            *slot = (rest % 10) as u8;
            rest /= 10;
        }
        if let Some(n) = NhsNumber::from_first_nine(nine) {
            return n.as_digits();
        }
        k += 1_000_003;
    }
}

fn record(custodian: &str, id: &str, version: u64, nhs: &str, hash: &str) -> Publishable {
    let json = serde_json::json!({
        "record_id": id,
        "version": version,
        "custodian": custodian,
        "subject": {"nhs_number": nhs},
        "relationship_type": "child_protection_plan",
        "sensitivity": "normal",
        "service": "Children's Services",
        "period": {"start": "2025-02-01"},
        "lawful_basis": {"article6": "public_task", "article9": "substantial_public_interest",
            "statute": "Children Act 1989 s47"},
        "permitted_purposes": ["safeguarding"],
        "residency": "england",
        "provenance": {"source_system": "mosaic", "content_hash": hash}
    });
    let record: Record = serde_json::from_value(json).unwrap();
    Publishable {
        record,
        held_at_source: false,
    }
}

fn entry(authority: &str) -> AuditEntry {
    AuditEntry::new(AuditKind::Query, authority, Utc::now())
}

fn key(custodian: &str, id: &str) -> RecordKey {
    RecordKey {
        custodian: custodian.into(),
        record_id: id.into(),
    }
}

async fn publish(store: &PostgresStore, records: &[Publishable]) -> (Vec<StoreOutcome>, u64) {
    store
        .publish(records, &|_: &[StoreOutcome]| entry("E08000003"))
        .await
        .unwrap()
}

#[test]
fn the_url_scheme_chooses_the_store() {
    assert_eq!(StoreKind::of_url("sqlite://hub.db"), Ok(StoreKind::Sqlite));
    assert_eq!(StoreKind::of_url("sqlite::memory:"), Ok(StoreKind::Sqlite));
    assert_eq!(
        StoreKind::of_url("postgres://u@127.0.0.1/kith"),
        Ok(StoreKind::Postgres)
    );
    assert_eq!(
        StoreKind::of_url("postgresql://u@127.0.0.1/kith"),
        Ok(StoreKind::Postgres)
    );
    let err = StoreKind::of_url("mysql://u@127.0.0.1/kith").unwrap_err();
    assert!(err.contains("\"mysql\" is not supported"), "{err}");
}

#[tokio::test]
async fn publish_is_idempotent_per_version_and_refuses_stale_and_conflicting_versions() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let n = nhs(1);
    let a = "E08000003";

    let (o, i0) = publish(&store, &[record(a, "r1", 1, &n, "h1")]).await;
    assert_eq!((o, i0), (vec![StoreOutcome::Accepted], 0));
    let (o, i1) = publish(&store, &[record(a, "r1", 1, &n, "h1")]).await;
    assert_eq!((o, i1), (vec![StoreOutcome::Unchanged], 1));
    let (o, _) = publish(&store, &[record(a, "r1", 1, &n, "other")]).await;
    assert_eq!(o, vec![StoreOutcome::Conflict]);
    let (o, _) = publish(&store, &[record(a, "r1", 2, &n, "h2")]).await;
    assert_eq!(o, vec![StoreOutcome::Accepted]);
    let (o, _) = publish(&store, &[record(a, "r1", 1, &n, "h1")]).await;
    assert_eq!(o, vec![StoreOutcome::Stale { held: 2 }]);

    // In one batch, later records see earlier ones, as if stored in turn.
    let (o, i) = publish(
        &store,
        &[
            record(a, "r1", 3, &n, "h3"),
            record(a, "r2", 1, &n, "x1"),
            record(a, "r1", 4, &n, "h4"),
            record(a, "r1", 3, &n, "h3"),
            record(a, "r1", 4, &n, "h4"),
            record(a, "r1", 4, &n, "h4-other"),
        ],
    )
    .await;
    assert_eq!(
        o,
        vec![
            StoreOutcome::Accepted,
            StoreOutcome::Accepted,
            StoreOutcome::Accepted,
            StoreOutcome::Stale { held: 4 },
            StoreOutcome::Unchanged,
            StoreOutcome::Conflict,
        ]
    );
    assert_eq!(i, 5, "one audit entry per publish, consecutive");
    let held = store.record(&key(a, "r1")).await.unwrap().unwrap();
    assert_eq!(held.record.version, 4);
    assert_eq!(held.record.provenance.content_hash, "h4");
    assert_eq!(held.status, RecordStatus::Active);
    assert!(!held.held_at_source);
    assert_eq!(
        store
            .records_for_nhs_number(&n.parse().unwrap(), chrono::Utc::now().date_naive())
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(store.audit_len().await.unwrap(), 6);
}

#[tokio::test]
async fn ending_and_withdrawing_change_the_record_and_are_audited() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let n = nhs(2);
    let a = "E08000003";
    let mut source_only = record(a, "r2", 1, &n, "s1");
    source_only.held_at_source = true;
    publish(&store, &[record(a, "r1", 1, &n, "h1"), source_only]).await;

    let end = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let (o, i) = store
        .end_record(&key(a, "r1"), end, &|_| entry(a))
        .await
        .unwrap();
    assert_eq!((o, i), (ChangeOutcome::Done, 1));
    let held = store.record(&key(a, "r1")).await.unwrap().unwrap();
    assert_eq!(held.ended_on, Some(end));
    assert!(
        store
            .record(&key(a, "r2"))
            .await
            .unwrap()
            .unwrap()
            .held_at_source
    );

    let (o, i) = store
        .withdraw_record(&key(a, "r1"), WithdrawReason::EnteredInError, &|_| entry(a))
        .await
        .unwrap();
    assert_eq!((o, i), (ChangeOutcome::Done, 2));
    let held = store.record(&key(a, "r1")).await.unwrap().unwrap();
    assert_eq!(
        held.status,
        RecordStatus::Withdrawn(WithdrawReason::EnteredInError)
    );
    let active = store
        .records_for_nhs_number(&n.parse().unwrap(), chrono::Utc::now().date_naive())
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].record.record_id, "r2");

    // A withdrawn or unknown record is not found; the refusal is audited too.
    let (o, i) = store
        .withdraw_record(&key(a, "r1"), WithdrawReason::EnteredInError, &|_| entry(a))
        .await
        .unwrap();
    assert_eq!((o, i), (ChangeOutcome::NotFound, 3));
    let (o, _) = store
        .end_record(&key(a, "nope"), end, &|_| entry(a))
        .await
        .unwrap();
    assert_eq!(o, ChangeOutcome::NotFound);

    // Publishing a newer version makes it active again, with no end.
    let (o, _) = publish(&store, &[record(a, "r1", 2, &n, "h2")]).await;
    assert_eq!(o, vec![StoreOutcome::Accepted]);
    let held = store.record(&key(a, "r1")).await.unwrap().unwrap();
    assert_eq!(held.status, RecordStatus::Active);
    assert_eq!(held.ended_on, None);
}

#[tokio::test]
async fn audit_batches_get_consecutive_indexes_and_their_leaf_hashes() {
    let db = TestDb::new().await;
    let store = db.store().await;
    assert_eq!(store.append_audit(&[entry("A")]).await.unwrap(), 0);
    // Larger than one multi-row INSERT.
    let batch: Vec<AuditEntry> = (0..12_345).map(|i| entry(&format!("B{i}"))).collect();
    assert_eq!(store.append_audit(&batch).await.unwrap(), 1);
    let last = entry("C");
    assert_eq!(
        store
            .append_audit(std::slice::from_ref(&last))
            .await
            .unwrap(),
        12_346
    );
    assert_eq!(store.audit_len().await.unwrap(), 12_347);

    let got = store.audit_entries(10_000, 3).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.index).collect::<Vec<_>>(),
        [10_000, 10_001, 10_002]
    );
    assert_eq!(got[0].entry, batch[9_999].to_bytes());
    assert_eq!(got[0].leaf_hash, kith_tlog::leaf_hash(&got[0].entry));
    let leaves = store.audit_leaf_hashes(12_345, 10).await.unwrap();
    assert_eq!(leaves.len(), 2);
    assert_eq!(leaves[1], kith_tlog::leaf_hash(&last.to_bytes()));
}

#[tokio::test]
async fn the_audit_log_and_checkpoints_are_append_only_in_the_database() {
    let db = TestDb::new().await;
    let store = db.store().await;
    store.append_audit(&[entry("A"), entry("B")]).await.unwrap();
    assert_eq!(store.latest_checkpoint().await.unwrap(), None);
    let cp = |size: u64| StoredCheckpoint {
        tree_size: size,
        root_hash: [size as u8; 32],
        signed_note: format!("note {size}\n"),
    };
    store.append_checkpoint(&cp(1)).await.unwrap();
    store.append_checkpoint(&cp(2)).await.unwrap();
    assert_eq!(store.latest_checkpoint().await.unwrap(), Some(cp(2)));
    assert!(
        store.append_checkpoint(&cp(2)).await.is_err(),
        "a tree size is signed once"
    );

    for (sql, why) in [
        (
            "UPDATE audit_log SET entry = '\\x00'::bytea WHERE idx = 0",
            "audit entries are immutable",
        ),
        ("DELETE FROM audit_log", "audit entries are immutable"),
        ("TRUNCATE audit_log", "audit entries are immutable"),
        (
            "UPDATE audit_checkpoints SET signed_note = 'x'",
            "checkpoints are immutable",
        ),
        ("DELETE FROM audit_checkpoints", "checkpoints are immutable"),
        ("TRUNCATE audit_checkpoints", "checkpoints are immutable"),
    ] {
        let err = sqlx::query(sql).execute(store.pool()).await.unwrap_err();
        assert!(err.to_string().contains(why), "{sql}: {err}");
    }
    assert_eq!(store.audit_len().await.unwrap(), 2);

    // Short leaf hashes are refused by the schema.
    let err = sqlx::query(
        "INSERT INTO audit_log (idx, recorded_at, entry, leaf_hash) VALUES (2, 'now', '\\x00', '\\x00')",
    )
    .execute(store.pool())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("check constraint"), "{err}");
}

#[tokio::test]
async fn replicas_sharing_a_database_append_gapless_unique_indexes() {
    let db = TestDb::new().await;
    // Two stores, opened at once on a new database (both run migrations).
    let (a, b) = tokio::join!(db.store(), db.store());
    let stores: [Arc<PostgresStore>; 2] = [Arc::new(a), Arc::new(b)];

    const TASKS_PER_STORE: usize = 4;
    const ROUNDS: usize = 25;
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for t in 0..TASKS_PER_STORE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut appended = Vec::new();
                for r in 0..ROUNDS {
                    let tag = format!("s{s}t{t}r{r}");
                    if r % 5 == 4 {
                        // Publishes append too, under the same sequencing.
                        let n = nhs((s * 100 + t) as u32);
                        let p = record("E08000003", &tag, 1, &n, "h");
                        let (_, i) = store
                            .publish(&[p], &|_: &[StoreOutcome]| entry(&tag))
                            .await
                            .unwrap();
                        appended.push((i, vec![tag]));
                    } else {
                        let n = 1 + (r % 3);
                        let tags: Vec<String> = (0..n).map(|k| format!("{tag}k{k}")).collect();
                        let entries: Vec<AuditEntry> = tags.iter().map(|t| entry(t)).collect();
                        let first = store.append_audit(&entries).await.unwrap();
                        appended.push((first, tags));
                    }
                }
                appended
            }));
        }
    }
    let mut expected = Vec::new();
    for task in tasks {
        for (first, tags) in task.await.unwrap() {
            for (k, tag) in tags.into_iter().enumerate() {
                expected.push((first + k as u64, tag));
            }
        }
    }
    expected.sort();

    let total = expected.len() as u64;
    let stored = stores[0].audit_entries(0, 1_000_000).await.unwrap();
    assert_eq!(stored.len() as u64, total);
    assert_eq!(stores[1].audit_len().await.unwrap(), total);
    let indexes: HashSet<u64> = expected.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes.len() as u64, total, "no index handed out twice");
    for ((index, tag), stored) in expected.iter().zip(&stored) {
        assert_eq!(stored.index, *index, "gapless: 0..{total}");
        let e: serde_json::Value = serde_json::from_slice(&stored.entry).unwrap();
        assert_eq!(
            e["authority"], *tag,
            "entry {index} is the one its writer was told"
        );
        assert_eq!(stored.leaf_hash, kith_tlog::leaf_hash(&stored.entry));
    }
}

#[tokio::test]
async fn the_hubs_sessions_never_jit_compile_their_lookups() {
    // Without planner statistics a lookup in a large table is costed high
    // enough to be JIT-compiled on every call (~20 ms for a 0.1 ms read).
    let db = TestDb::new().await;
    let store = db.store().await;
    for _ in 0..3 {
        let jit: String = sqlx::query_scalar("SHOW jit")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(jit, "off");
    }
}
