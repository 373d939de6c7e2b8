//! The hub's disk fills and empties again: while it is full, publishes and
//! queries fail closed (no record is disclosed without its audit entry);
//! once there is space, publishing, queries and checkpoint signing recover
//! by themselves, without a restart.
//!
//! Runs on a small tmpfs, so it needs root (to mount); as another user it
//! is skipped with a message saying so.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kith_tests::*;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A tmpfs mounted at a temporary folder, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed as root");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system holding `path` with one file, until a write fails.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let buf = vec![0u8; chunk];
        while file.write_all(&buf).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    written
}

fn record(i: u32, nhs: &str) -> v1::RelationshipRecord {
    record_wire(
        COUNCIL_A,
        &format!("cin-{i}"),
        1,
        nhs,
        "child_in_need",
        &["safeguarding"],
    )
}

async fn publish(
    hub: &kith_hub::server::RunningHub,
    t: &TestDir,
    records: Vec<v1::RelationshipRecord>,
) -> Result<v1::PublishRecordsResponse, tonic::Status> {
    let mut c = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    c.publish_records(v1::PublishRecordsRequest { records })
        .await
        .map(|r| r.into_inner())
}

async fn query(
    hub: &kith_hub::server::RunningHub,
    t: &TestDir,
    nhs: &str,
) -> Result<v1::QueryResponse, tonic::Status> {
    ask_as(
        hub.addr(),
        &t.agent_tls(COUNCIL_B),
        query_request(nhs, v1::Purpose::Safeguarding, "social_worker"),
    )
    .await
}

#[tokio::test]
async fn after_a_full_disk_publishes_queries_and_checkpoint_signing_recover_without_a_restart() {
    if !is_root() {
        eprintln!("SKIPPED: this test mounts a tmpfs to fill it, which needs root; run it as root");
        return;
    }
    let fs = Tmpfs::mount("24m");
    let t = TestDir::new();
    let mut config = t.hub_config(0);
    let db = fs.path().join("hub.db");
    config.database_url = format!("sqlite://{}", db.display());
    let hub = kith_hub::server::start(&config).await.expect("hub starts");
    let nhs = test_nhs_number(31);
    let accepted = publish(&hub, &t, vec![record(0, &nhs)]).await.unwrap();
    assert_eq!(
        accepted.results[0].outcome,
        v1::PublishOutcome::Accepted as i32
    );
    assert_eq!(query(&hub, &t, &nhs).await.unwrap().records.len(), 1);

    // Empty the WAL into the database and truncate it, so every later
    // write needs new space; then fill the disk.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let filler = fs.path().join("filler");
    let filled = fill(&filler);
    eprintln!("filled the tmpfs with {filled} bytes");

    // Full: every publish and every query fails, and no query discloses.
    let mut failed_publishes = 0;
    let mut failed_queries = 0;
    for i in 1..=10 {
        let records = (0..50).map(|j| record(i * 100 + j, &nhs)).collect();
        match publish(&hub, &t, records).await {
            Err(status) => {
                failed_publishes += 1;
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Internal
                    ),
                    "{status:?}"
                );
            }
            Ok(r) => panic!(
                "a publish was acknowledged on a full disk: {:?}",
                r.results.first()
            ),
        }
        match query(&hub, &t, &nhs).await {
            Err(status) => {
                failed_queries += 1;
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            }
            Ok(answer) => panic!(
                "a query answered on a full disk, disclosing {} records",
                answer.records.len()
            ),
        }
    }
    assert_eq!((failed_publishes, failed_queries), (10, 10));
    // Health says so: the store is not writable.
    let writable = kith_hub::health::Condition::StoreWritable;
    assert!(!hub.hub().conditions().holds(writable));
    assert!(
        !hub.hub()
            .conditions()
            .serving(kith_hub::health::Service::Query)
    );

    // Space returns: everything recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = None;
    for attempt in 0..100 {
        if let Ok(r) = publish(&hub, &t, vec![record(9999, &nhs)]).await {
            recovered = Some((attempt, r));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (attempt, r) = recovered.expect("publishing recovered within 10 s of space returning");
    assert_eq!(r.results[0].outcome, v1::PublishOutcome::Accepted as i32);
    eprintln!("publishing recovered at attempt {attempt}");
    for i in 0..5 {
        let records = (0..50)
            .map(|j| record(20_000 + i * 100 + j, &nhs))
            .collect();
        let r = publish(&hub, &t, records)
            .await
            .expect("publishes keep working");
        assert!(
            r.results
                .iter()
                .all(|r| r.outcome == v1::PublishOutcome::Accepted as i32)
        );
    }
    let answer = query(&hub, &t, &nhs).await.expect("queries recover");
    assert!(hub.hub().conditions().failing().is_empty());
    assert_eq!(answer.records.len(), 1 + 1 + 250);

    // Checkpoint signing recovers: a signed checkpoint covers every entry,
    // including those of the queries answered after recovery.
    let entries = audit_entries(&hub).await.len() as u64;
    assert!(
        eventually(Duration::from_secs(10), || async {
            hub.log()
                .latest()
                .await
                .is_some_and(|c| c.tree_size >= entries)
        })
        .await,
        "no checkpoint covers the {entries} entries after recovery (latest: {:?})",
        hub.log().latest().await.map(|c| c.tree_size)
    );
    hub.shutdown().await.unwrap();
}
