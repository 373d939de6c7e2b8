//! Two `kith-hub serve` processes on one PostgreSQL database, under load,
//! and the one signing the audit log is killed outright (SIGKILL: no
//! graceful release of its lease). The other must take over signing, and
//! the log must hold every acknowledged publish exactly once, gapless, with
//! every stored checkpoint a correctly signed root of a prefix of it.
//! Needs PostgreSQL at 127.0.0.1:5432 (trust auth), as CI sets up.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_core::tls::TlsFiles;
use kith_proto::v1 as pb;
use kith_tlog::{MerkleTree, NoteVerifier, leaf_hash, open_checkpoint};
use tonic::transport::{Channel, Endpoint};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const AUTHORITY: &str = "E08000003";

fn hub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kith-hub"))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, name: &str, port: u16, database_url: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:{port}"
database_url = "{database_url}"
jurisdiction = "england"
policy_dir = "policies"
[tls]
ca = "pki/ca.crt.pem"
cert = "pki/hub.crt.pem"
key = "pki/hub.key.pem"
[audit]
signing_key = "pki/audit-log.skey"
checkpoint_interval_ms = 100
[[authorities]]
code = "{AUTHORITY}"
name = "Manchester City Council"
kind = "council"
jurisdiction = "england"
"#
        ),
    )
    .unwrap();
    path
}

/// A hub process, killed if the test ends early.
struct HubProcess(Child);

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path, log: &Path) -> HubProcess {
    let log = std::fs::File::create(log).unwrap();
    HubProcess(
        hub()
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

async fn channel(addr: SocketAddr, tls: &TlsFiles) -> Channel {
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls.client_config("localhost").unwrap())
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    for _ in 0..100 {
        if let Ok(ch) = endpoint.connect().await {
            return ch;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("hub at {addr} never came up");
}

/// The latest checkpoint a hub serves, once it has one.
async fn checkpoint_size(ch: &Channel) -> Option<u64> {
    pb::audit_service_client::AuditServiceClient::new(ch.clone())
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .ok()
        .map(|r| r.into_inner().tree_size)
}

fn record(n: u32) -> pb::RelationshipRecord {
    let json = serde_json::json!({
        "record_id": format!("cin-{n}"), "version": 1, "custodian": AUTHORITY,
        "subject": {"nhs_number": nhs(n)},
        "relationship_type": "child_in_need",
        "sensitivity": "normal",
        "period": {"start": "2025-02-01"},
        "key_worker": {"name": "Jo Smith", "phone": "0161 234 5000"},
        "lawful_basis": {"article6": "public_task"},
        "permitted_purposes": ["safeguarding"], "residency": "england"
    });
    let mut r: kith_core::Record = serde_json::from_value(json).unwrap();
    r.seal();
    kith_core::wire::record_to_wire(&r)
}

/// A valid NHS number in the 999 test range.
fn nhs(n: u32) -> String {
    kith_core::NhsNumber::in_test_range(u64::from(n)).as_digits()
}

/// Each acknowledged publish: its audit index and the record ids it named.
type Acked = Arc<Mutex<Vec<(u64, Vec<String>)>>>;

/// Publishes batches of 5 through `ch` from id `from` on, until told to
/// stop or the hub goes; records (audit index, ids) of each acknowledged one.
async fn load(ch: Channel, from: u32, stop: tokio::sync::watch::Receiver<bool>, acked: Acked) {
    let mut c = pb::record_service_client::RecordServiceClient::new(ch);
    let mut n = from;
    while !*stop.borrow() {
        let records: Vec<_> = (n..n + 5).map(record).collect();
        n += 5;
        match c
            .publish_records(pb::PublishRecordsRequest { records })
            .await
        {
            Ok(r) => {
                let r = r.into_inner().results;
                assert!(
                    r.iter()
                        .all(|r| r.outcome == pb::PublishOutcome::Accepted as i32)
                );
                let ids = r.iter().map(|r| r.record_id.clone()).collect();
                acked.lock().unwrap().push((r[0].audit_index, ids));
            }
            Err(_) => return, // this hub is gone
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_signing_hub_mid_load_loses_and_duplicates_nothing() {
    kith_core::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(hub()
        .args(["pki", "init", "--dir"])
        .arg(d.join("pki"))
        .args(["--authority", AUTHORITY]));
    run(hub().args(["policy", "init"]).arg(d.join("policies")));

    let db = format!("kith_kill_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    let admin = sqlx::PgPool::connect(ADMIN_URL)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at 127.0.0.1:5432 is needed for this test ({e})"));
    // A name cannot be bound as a parameter; this one is ours, [a-z0-9_].
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");

    let (p0, p1) = (free_port(), free_port());
    let c0 = write_config(d, "hub0.toml", p0, &url);
    let c1 = write_config(d, "hub1.toml", p1, &url);
    let tls = TlsFiles {
        ca: d.join("pki/ca.crt.pem"),
        cert: d.join(format!("pki/authorities/{AUTHORITY}.crt.pem")),
        key: d.join(format!("pki/authorities/{AUTHORITY}.key.pem")),
    };

    // The first hub starts alone and signs (its start is audited, so it
    // has a checkpoint to sign); then the second joins and follows.
    let mut first = serve(&c0, &d.join("hub0.log"));
    let ch0 = channel(([127, 0, 0, 1], p0).into(), &tls).await;
    for _ in 0..100 {
        if checkpoint_size(&ch0).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(checkpoint_size(&ch0).await.is_some(), "the first hub signs");
    let _second = serve(&c1, &d.join("hub1.log"));
    let ch1 = channel(([127, 0, 0, 1], p1).into(), &tls).await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let through_first = tokio::spawn(load(ch0.clone(), 0, stopped.clone(), acked.clone()));
    let through_second = tokio::spawn(load(ch1.clone(), 1_000_000, stopped, acked.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    first.0.kill().unwrap(); // SIGKILL: no shutdown, no lease release
    first.0.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.send_replace(true);
    through_first.await.unwrap();
    through_second.await.unwrap();

    // The survivor signs a checkpoint covering every entry.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&pool)
            .await
            .unwrap() as u64
    };
    let mut covered = false;
    for _ in 0..150 {
        let total = count().await;
        if checkpoint_size(&ch1).await == Some(total) {
            covered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        covered,
        "the survivor took over signing: {}",
        std::fs::read_to_string(d.join("hub1.log")).unwrap_or_default()
    );

    // Gapless, each leaf hash the hash of its stored bytes.
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT idx, entry, leaf_hash FROM audit_log ORDER BY idx")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut tree = MerkleTree::new();
    for (i, (idx, entry, leaf)) in rows.iter().enumerate() {
        assert_eq!(*idx, i as i64, "no gap, no duplicate");
        assert_eq!(leaf.as_slice(), leaf_hash(entry).as_slice());
        tree.push(leaf_hash(entry));
    }

    // Every acknowledged publish is in the log, once, where it was said to be.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "load ran: {} batches", acked.len());
    assert!(
        acked.iter().any(|(_, ids)| ids[0].starts_with("cin-1000")),
        "the survivor served load"
    );
    let mut seen = std::collections::HashSet::new();
    for (index, ids) in &acked {
        let entry: serde_json::Value = serde_json::from_slice(&rows[*index as usize].1).unwrap();
        assert_eq!(entry["kind"], "publish");
        let named: Vec<_> = entry["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["record_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(&named, ids);
        assert!(seen.insert(*index), "one entry per acknowledged publish");
    }

    // Every checkpoint either hub stored is a signed root of a prefix.
    let vkey = std::fs::read_to_string(d.join("pki/audit-log.vkey")).unwrap();
    let verifier = NoteVerifier::from_vkey(vkey.trim()).unwrap();
    let checkpoints: Vec<(i64, Vec<u8>, String)> = sqlx::query_as(
        "SELECT tree_size, root_hash, signed_note FROM audit_checkpoints ORDER BY tree_size",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(checkpoints.len() >= 2);
    for (size, root, note) in &checkpoints {
        let opened = open_checkpoint(note, &verifier).unwrap();
        assert_eq!(opened.size(), *size as u64);
        let expected = tree.root_at(*size as u64).unwrap();
        assert_eq!(root.as_slice(), expected.as_slice(), "checkpoint {size}");
        assert_eq!(opened.root_hash().as_slice(), expected.as_slice());
    }

    pool.close().await;
    drop(_second);
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await;
    admin.close().await;
}
