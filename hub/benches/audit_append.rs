//! Audit appends per second through the group-commit writer, against one
//! durable commit per entry measured in the same run (the baseline).
//!
//! Run: `cargo bench -p kith-hub --bench audit_append` (release build).
//! Prints a table and one final JSON line.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use kith_hub::audit::{AuditEntry, AuditKind, AuditedRecord};
use kith_hub::audit_writer::AuditWriter;
use kith_hub::store::{SqliteStore, Store};

fn entry(n: u64) -> AuditEntry {
    let mut e = AuditEntry::new(AuditKind::Query, "E08000006", Utc::now());
    e.user = Some(format!("user-{}", n % 50));
    e.role = Some("social_worker".into());
    e.purpose = Some("safeguarding".into());
    e.subject = Some(format!("999{:07}", n % 1_000_000));
    e.records = vec![AuditedRecord {
        custodian: "E08000003".into(),
        record_id: format!("cpp-{n}"),
        version: 1,
        decision: "detail".into(),
        decided_by: vec!["children-safeguarding.detail".into()],
        reason:
            "detail shared under Children's safeguarding partnership information sharing agreement"
                .into(),
    }];
    e
}

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    (dir, Arc::new(SqliteStore::open(&url).await.unwrap()))
}

/// One durable transaction per entry, one caller at a time.
async fn one_commit_per_entry(n: u64) -> f64 {
    let (_dir, store) = store().await;
    let start = Instant::now();
    for i in 0..n {
        store.append_audit(&[entry(i)]).await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `callers` concurrent tasks each appending through the group-commit writer
/// and waiting for durability, as queries do.
async fn group_commit(callers: u64, per_caller: u64) -> f64 {
    let (_dir, store) = store().await;
    let writer = AuditWriter::spawn(store.clone(), Default::default(), Default::default());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_caller {
                writer.append(entry(c * per_caller + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (callers * per_caller) as f64 / start.elapsed().as_secs_f64();
    assert_eq!(store.audit_len().await.unwrap(), callers * per_caller);
    rate
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 500 } else { 2_000 };
    let baseline = one_commit_per_entry(n).await;
    println!("{:<44} {:>12}", "case", "appends/s");
    println!(
        "{:<44} {:>12.0}",
        "baseline: one durable commit per entry", baseline
    );
    let mut results = vec![("one_commit_per_entry".to_string(), baseline)];
    for callers in [1u64, 8, 32, 128] {
        let per = (if quick { 2_000 } else { 10_000 }) / callers;
        let rate = group_commit(callers, per.max(10)).await;
        println!(
            "{:<44} {:>12.0}",
            format!("group commit, {callers} concurrent callers"),
            rate
        );
        results.push((format!("group_commit_{callers}"), rate));
    }
    let json: Vec<String> = results
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v:.0}"))
        .collect();
    println!("{{\"bench\":\"audit_append\",{}}}", json.join(","));
}
