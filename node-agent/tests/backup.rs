//! `kith-agent backup` and `kith-agent restore`: what the agent accepted
//! comes back after its database is lost; a backup changed after it was
//! taken, or one that is not an agent database, is refused and nothing is
//! replaced; an existing database is replaced only with `--replace`, and
//! then kept aside.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kith_agent(config: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kith-agent"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("KITH_LOG_FORMAT")
        .env_remove("KITH_AGENT_CONFIG")
        .output()
        .expect("kith-agent runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A config whose TLS files need not exist (ingest, backup and restore
/// never dial the hub); metrics off, so restore has no address to probe.
fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("kith-agent.toml");
    std::fs::write(
        &path,
        r#"
authority = "E08000003"
data_dir = "data"
drop_dir = "drop"
[hub]
addresses = ["https://127.0.0.1:1"]
[tls]
ca = "ca.pem"
cert = "agent.pem"
key = "agent.key"
[metrics]
enabled = false
"#,
    )
    .unwrap();
    path
}

fn line(id: &str) -> String {
    format!(
        r#"{{"record_id":"{id}","version":1,"subject":{{"nhs_number":"9434765919"}},"relationship_type":"adult_social_care","sensitivity":"normal","period":{{"start":"2025-01-01"}},"key_worker":{{"name":"J. Smith","phone":"0161 000 0000"}},"lawful_basis":{{"article6":"public_task","article9":"health_or_social_care"}},"permitted_purposes":["direct_care"],"residency":"england"}}"#
    )
}

fn arg(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// An agent folder with seven records accepted into its outbox.
fn agent_with_records(dir: &Path) -> PathBuf {
    let config = write_config(dir);
    let file = dir.join("records.jsonl");
    let lines: Vec<String> = (0..7).map(|i| line(&format!("r-{i}"))).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = kith_agent(&config, &[arg("ingest"), file.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    config
}

fn backup(config: &Path, out: &Path) -> Output {
    kith_agent(config, &[arg("backup"), arg("--out"), out.as_os_str()])
}

fn restore(config: &Path, from: &Path, extra: &[&str]) -> Output {
    let mut args = vec![arg("restore"), arg("--from"), from.as_os_str()];
    args.extend(extra.iter().map(|s| arg(s)));
    kith_agent(config, &args)
}

#[test]
fn a_lost_outbox_comes_back_from_its_backup() {
    let dir = tempfile::tempdir().unwrap();
    let config = agent_with_records(dir.path());
    let file = dir.path().join("agent-backup.db");
    let out = backup(&config, &file);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("records: 7 pending"), "{said}");
    assert!(
        said.contains("agent TLS private key"),
        "the manifest names the key: {said}"
    );
    // Backing up over an existing file is refused.
    assert!(!backup(&config, &file).status.success());

    let database = dir.path().join("data/outbox.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    let out = restore(&config, &file, &[]);
    assert!(out.status.success(), "{}", text(&out));
    // The restored outbox is the agent's: the same file again is a duplicate.
    let again = dir.path().join("records.jsonl");
    let out = kith_agent(&config, &[arg("ingest"), again.as_os_str()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(0 new, 7 already queued)"),
        "{}",
        text(&out)
    );

    // An existing database: refused without --replace, kept aside with it.
    let out = restore(&config, &file, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--replace"), "{}", text(&out));
    let out = restore(&config, &file, &["--replace"]);
    assert!(out.status.success(), "{}", text(&out));
    let kept = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("outbox.db.before-restore-")
        });
    assert!(kept, "the replaced database was kept");
}

#[test]
fn a_changed_or_foreign_backup_is_refused_and_nothing_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let config = agent_with_records(dir.path());
    let file = dir.path().join("agent-backup.db");
    assert!(backup(&config, &file).status.success());
    let database = dir.path().join("data/outbox.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }

    // One byte changed: no longer what the manifest says.
    let mut data = std::fs::read(&file).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0x01;
    let changed = dir.path().join("changed.db");
    std::fs::write(&changed, &data).unwrap();
    std::fs::copy(
        format!("{}.manifest.json", file.display()),
        format!("{}.manifest.json", changed.display()),
    )
    .unwrap();
    let out = restore(&config, &changed, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not match its manifest"),
        "{}",
        text(&out)
    );

    // Checking only (--dry-run) changes nothing either way.
    let out = restore(&config, &file, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("checks out"), "{}", text(&out));

    // A hub's backup manifest is not an agent's.
    let manifest = std::fs::read_to_string(format!("{}.manifest.json", file.display()))
        .unwrap()
        .replace("\"kith-agent\"", "\"kith-hub\"");
    let foreign = dir.path().join("foreign.db");
    std::fs::copy(&file, &foreign).unwrap();
    std::fs::write(format!("{}.manifest.json", foreign.display()), manifest).unwrap();
    let out = restore(&config, &foreign, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not of kith-agent"), "{}", text(&out));

    assert!(!database.exists(), "a refused restore put nothing in place");
}
