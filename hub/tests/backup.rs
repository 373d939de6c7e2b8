//! `kith-hub backup` while a hub serves, and `kith-hub restore`: a round
//! trip brings back every record and an audit log the restarted hub
//! accepts; a backup changed after it was taken is refused, whether the
//! change is a flipped byte, an edited entry whose manifest was rewritten
//! to match, or an edited entry whose leaf hash was rewritten too; and a
//! refused restore changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kith_ops::sqlite_backup::{Manifest, file_sha256};
use kith_tests::process::{free_port, serve_hub, wait_listening, write_hub_config};
use kith_tests::v1 as pb;
use kith_tests::*;

const HUB: &str = env!("CARGO_BIN_EXE_kith-hub");

fn hub(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(HUB)
        .args(args)
        .env_remove("KITH_HUB_CONFIG")
        .output()
        .expect("kith-hub runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn database(t: &TestDir) -> PathBuf {
    t.path().join("hub.db")
}

/// A hub that served records and queries, stopped, with a backup taken
/// while it served. Returns the config path and the backup path.
async fn served_and_backed_up(t: &TestDir) -> (PathBuf, PathBuf) {
    let port = free_port();
    let config = write_hub_config(t, port);
    let log = t.path().join("hub.log");
    let mut process = serve_hub(Path::new(HUB), &config, &log);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        wait_listening(addr, Duration::from_secs(30)).await,
        "{}",
        process.log_text()
    );
    let tls = t.agent_tls(COUNCIL_A);
    let records = (0..20)
        .map(|i| {
            record_wire(
                COUNCIL_A,
                &format!("r-{i}"),
                1,
                &test_nhs_number(i),
                "child_protection_plan",
                &["direct_care", "safeguarding"],
            )
        })
        .collect();
    publish_accepted(addr, &tls, records).await;
    for i in 0..5 {
        let request = query_request(
            &test_nhs_number(i),
            pb::Purpose::Safeguarding,
            "social_worker",
        );
        ask_as(addr, &t.agent_tls(TRUST_C), request)
            .await
            .expect("query");
    }
    // Checkpoints are signed every 50 ms in tests.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let backup = t.path().join("hub-backup.db");
    let out = hub(&[
        "backup".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--out".as_ref(),
        backup.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("verified against the log's key"), "{said}");
    assert!(
        said.contains("audit log signing key"),
        "the manifest lists the key: {said}"
    );
    process.kill();
    (config, backup)
}

fn contents(backup: &Path) -> serde_json::Value {
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(Manifest::path_for(backup)).unwrap())
            .unwrap();
    manifest.contents
}

fn restore(config: &Path, from: &Path, replace: bool) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "restore".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--from".as_ref(),
        from.as_os_str(),
    ];
    if replace {
        args.push("--replace".as_ref());
    }
    hub(&args)
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_and_the_hub_serves_it() {
    let t = TestDir::with_store(TestStore::Sqlite);
    let (config, backup) = served_and_backed_up(&t).await;
    let state = contents(&backup);
    assert_eq!(state["records"], 20, "{state}");
    let entries = state["entries"].as_u64().unwrap();
    assert!(
        entries >= 6,
        "a publish and five queries were audited: {state}"
    );
    assert!(
        state["checkpoint"]["tree_size"].as_u64().unwrap() > 0,
        "{state}"
    );

    // Without --replace, an existing database is left alone.
    let out = restore(&config, &backup, false);
    assert!(!out.status.success());
    assert!(text(&out).contains("--replace"), "{}", text(&out));

    // The live database is lost; the backup comes back.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database(&t).display()));
    }
    let out = restore(&config, &backup, false);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("audit entries: {entries}")),
        "{}",
        text(&out)
    );

    // The restored hub opens its log (it checks it against the checkpoint)
    // and answers from the restored records.
    let port = free_port();
    let config = write_hub_config(&t, port);
    let mut process = serve_hub(Path::new(HUB), &config, &t.path().join("hub2.log"));
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        wait_listening(addr, Duration::from_secs(30)).await,
        "{}",
        process.log_text()
    );
    let request = query_request(
        &test_nhs_number(3),
        pb::Purpose::Safeguarding,
        "social_worker",
    );
    let answer = ask_as(addr, &t.agent_tls(TRUST_C), request)
        .await
        .expect("query");
    assert_eq!(answer.records.len(), 1, "{answer:?}");
    process.kill();
}

/// Rewrites the manifest beside `backup` to the file's current hash, as
/// someone covering their tracks would.
fn rehash_manifest(backup: &Path) {
    let path = Manifest::path_for(backup);
    let mut manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (bytes, sha256) = file_sha256(backup).unwrap();
    manifest.bytes = bytes;
    manifest.sha256 = sha256;
    std::fs::write(&path, serde_json::to_string(&manifest).unwrap()).unwrap();
}

fn copy_backup(backup: &Path, name: &str) -> PathBuf {
    let copy = backup.with_file_name(name);
    std::fs::copy(backup, &copy).unwrap();
    std::fs::copy(Manifest::path_for(backup), Manifest::path_for(&copy)).unwrap();
    copy
}

/// Edits audit entry 0 in `file` (dropping the append-only triggers first,
/// as only someone with the file in hand could); with `leaf` also rewrites
/// its stored leaf hash to match the new bytes.
fn edit_first_entry(file: &Path, leaf: bool) {
    let conn = rusqlite::Connection::open(file).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_is_append_only_update;")
        .unwrap();
    let entry: Vec<u8> = conn
        .query_row("SELECT entry FROM audit_log WHERE idx = 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    // Still valid JSON, but not the bytes the log signed.
    let edited = String::from_utf8(entry)
        .unwrap()
        .replacen('{', "{ ", 1)
        .into_bytes();
    conn.execute("UPDATE audit_log SET entry = ?1 WHERE idx = 0", [&edited])
        .unwrap();
    if leaf {
        let hash = kith_tlog::leaf_hash(&edited).to_vec();
        conn.execute("UPDATE audit_log SET leaf_hash = ?1 WHERE idx = 0", [&hash])
            .unwrap();
    }
}

#[tokio::test]
async fn a_backup_changed_after_it_was_taken_is_refused_and_nothing_is_replaced() {
    let t = TestDir::with_store(TestStore::Sqlite);
    let (config, backup) = served_and_backed_up(&t).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database(&t).display()));
    }

    // A flipped byte: the manifest no longer matches.
    let flipped = copy_backup(&backup, "flipped.db");
    let mut data = std::fs::read(&flipped).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x40;
    std::fs::write(&flipped, data).unwrap();
    let out = restore(&config, &flipped, false);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not match its manifest"),
        "{}",
        text(&out)
    );

    // An edited entry, manifest rewritten: its bytes no longer hash to its leaf.
    let edited = copy_backup(&backup, "edited.db");
    edit_first_entry(&edited, false);
    rehash_manifest(&edited);
    let out = restore(&config, &edited, false);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("entry 0's bytes do not hash to its recorded leaf hash"),
        "{}",
        text(&out)
    );

    // Entry and leaf hash both rewritten: the signed root catches it.
    let rewritten = copy_backup(&backup, "rewritten.db");
    edit_first_entry(&rewritten, true);
    rehash_manifest(&rewritten);
    let out = restore(&config, &rewritten, false);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("differs from the signed root"),
        "{}",
        text(&out)
    );

    // No manifest at all: refused.
    let bare = t.path().join("bare.db");
    std::fs::copy(&backup, &bare).unwrap();
    let out = restore(&config, &bare, false);
    assert!(!out.status.success());
    assert!(text(&out).contains("manifest"), "{}", text(&out));

    assert!(
        !database(&t).exists(),
        "a refused restore put nothing in place"
    );
    // The untouched backup still restores.
    let out = restore(&config, &backup, false);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_postgres_hub_is_pointed_to_pg_dump() {
    let t = TestDir::with_store(TestStore::Sqlite);
    let mut config = t.hub_config(0);
    config.database_url = "postgres://kith@127.0.0.1:5432/kith".into();
    let path = t.path().join("pg-hub.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let out = hub(&[
        "backup".as_ref(),
        "--config".as_ref(),
        path.as_os_str(),
        "--out".as_ref(),
        t.path().join("x.db").as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
}
