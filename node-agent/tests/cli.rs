//! The `kith-agent` binary itself: exit codes and environment variables.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AUTHORITY: &str = "E08000003";

fn kith_agent(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kith-agent"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("KITH_LOG_FORMAT")
        .env_remove("KITH_AGENT_CONFIG")
        .env_remove("RUST_LOG");
    command
}

/// A config whose TLS files need not exist (ingest never dials the hub).
fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("kith-agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"
authority = "{AUTHORITY}"
data_dir = "data"
drop_dir = "drop"
[hub]
addresses = ["https://127.0.0.1:1"]
[tls]
ca = "ca.pem"
cert = "agent.pem"
key = "agent.key"
"#
        ),
    )
    .unwrap();
    path
}

fn line(id: &str, key_worker: &str) -> String {
    format!(
        r#"{{"record_id":"{id}","version":1,"subject":{{"nhs_number":"9434765919"}},"relationship_type":"adult_social_care","sensitivity":"normal","period":{{"start":"2025-01-01"}},"key_worker":{{"name":"{key_worker}","phone":"0161 000 0000"}},"lawful_basis":{{"article6":"public_task","article9":"health_or_social_care"}},"permitted_purposes":["direct_care"],"residency":"england"}}"#
    )
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn ingest_exits_2_when_a_taken_version_comes_back_with_other_content() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, line("r-1", "J. Smith")).unwrap();
    let out = kith_agent(&config, &["ingest"])
        .arg(&first)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The identical file again: harmless.
    let out = kith_agent(&config, &["ingest"])
        .arg(&first)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(0 new, 1 already queued), 0 rejected"),
        "{}",
        text(&out)
    );

    // A corrected record under the same version: refused, exit 2.
    let second = dir.path().join("second.jsonl");
    std::fs::write(&second, line("r-1", "K. Jones")).unwrap();
    let out = kith_agent(&config, &["ingest", "--json"])
        .arg(&second)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rejected = &reports[0]["rejected"][0];
    assert_eq!(rejected["line"], 1);
    assert_eq!(rejected["errors"][0]["field"], "version");
    assert_eq!(
        rejected["errors"][0]["reason"],
        "version 1 of this record was already taken with different content; publish version 2"
    );
    assert_eq!(reports[0]["duplicates"], 0);
}

#[test]
fn kith_log_format_is_read_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = kith_agent(&config, &["example-config"])
        .env("KITH_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'xml'") && stderr.contains("--log-format"),
        "{stderr}"
    );

    let out = kith_agent(&config, &["example-config"])
        .env("KITH_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = kith_agent(&config, &["--help"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[env: KITH_LOG_FORMAT="),
        "{}",
        text(&out)
    );
}

#[test]
fn status_exits_3_when_the_certificate_cannot_be_used() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    // No certificate file at all: named, not a transport error.
    let out = kith_agent(&config, &["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("certificate    UNUSABLE: certificate ") && stdout.contains("agent.pem"),
        "{}",
        text(&out)
    );
}

/// Runs the binary with a command line given as words separated by spaces.
fn run_line(config: &Path, line: &str) -> Output {
    let words: Vec<&str> = line.split_whitespace().collect();
    kith_agent(config, &words).output().unwrap()
}

#[test]
fn bad_lifecycle_and_query_input_is_named_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let run = |line: &str| run_line(&config, line);
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).to_string();

    let out = run("record end asc-1 --on 28/02/2026");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("--on") && stderr(&out).contains("not a date in the form YYYY-MM-DD"),
        "{}",
        text(&out)
    );
    let out = run("record withdraw asc-1 --reason mistake");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("entered_in_error, no_longer_shared"),
        "{}",
        text(&out)
    );
    // A bad record id is refused by the agent, not the hub (which this
    // config cannot reach).
    let out = run("record end asc/1! --on 2026-02-28");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).starts_with("error: record_id:"),
        "{}",
        text(&out)
    );
    let help = String::from_utf8_lossy(&run("record withdraw --help").stdout).to_string();
    assert!(
        help.contains("entered_in_error") && help.contains("revoked"),
        "{help}"
    );

    // --break-glass needs --justification; the reason is checked locally.
    let query = "query --nhs-number 9434765919 --purpose emergency --as p1 --role paramedic";
    let out = run(&format!("{query} --break-glass life_threatening"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("--justification"), "{}", text(&out));
    let out = run(&format!(
        "{query} --break-glass boredom --justification long_enough_text"
    ));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("--break-glass: unknown reason code \"boredom\""),
        "{}",
        text(&out)
    );
    let out = run(
        "query --given-name Amara --family-name Davies --purpose direct_care --as u --role nurse",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("--date-of-birth"), "{}", text(&out));
}

#[test]
fn notifications_lists_an_empty_store_and_refuses_an_unknown_kind() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = run_line(&config, "notifications");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "(no notifications)\n");
    let out = run_line(&config, "notifications --json --kind revocation");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = run_line(&config, "notifications --kind peek");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("access, break_glass, revocation"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_webhook_off_this_machine_stops_the_config_loading() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("[notifications]\nwebhook = \"http://203.0.113.9:8080/kith\"\n");
    std::fs::write(&config, toml).unwrap();
    let out = run_line(&config, "notifications");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config key `notifications.webhook`")
            && stderr.contains("not a loopback address"),
        "{stderr}"
    );
}

/// Stores one access and one revocation notification whose fields carry
/// terminal escape sequences, a bidi override and line breaks, as a hostile
/// or careless authority could send them.
fn store_hostile_notifications(config: &Path) {
    use kith_agent::notifications::{Notification, NotificationStore, Pending};
    use kith_proto::v1 as pb;
    let config = kith_agent::AgentConfig::load(config).unwrap();
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let outbox = kith_agent::outbox::Outbox::open(&config.outbox_path())
            .await
            .unwrap();
        let store = NotificationStore::new(&outbox);
        let access = pb::Notification {
            notification_id: "n-1".into(),
            kind: pb::NotificationKind::Access as i32,
            occurred_at: "2026-03-01T10:00:00Z".into(),
            record: Some(pb::RecordRef {
                custodian: AUTHORITY.into(),
                record_id: "cpp-1".into(),
            }),
            accessor_authority: "R0A".into(),
            accessor_authority_name: "Trust\x1b]0;owned\x07".into(),
            accessor: Some(pb::ActingUser {
                user_id: "u-1".into(),
                display_name: "\x1b[31mEvil\x1b[0m".into(),
                role: "ed_clinician".into(),
                team: "A&E\u{202e}txet desrever".into(),
            }),
            purpose: pb::Purpose::Emergency as i32,
            level: pb::DisclosureLevel::Summary as i32,
            query_id: "q-1".into(),
            ..Default::default()
        };
        let revocation = pb::Notification {
            notification_id: "n-2".into(),
            kind: pb::NotificationKind::Revocation as i32,
            record: Some(pb::RecordRef {
                custodian: "R0A".into(),
                record_id: "mh-1\r\nFAKE LINE".into(),
            }),
            reason: "\x1b[2Jcleared".into(),
            ..Default::default()
        };
        for n in [access, revocation] {
            let n = Notification::from_wire(n).unwrap();
            store
                .insert(
                    &n,
                    Pending {
                        file: false,
                        webhook: false,
                    },
                )
                .await
                .unwrap();
        }
        outbox.close().await;
    });
}

/// True for what must never reach a terminal raw.
fn dangerous(c: char) -> bool {
    (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c)
}

#[test]
fn notifications_print_escape_sequences_visibly_instead_of_obeying_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    store_hostile_notifications(&config);

    let out = kith_agent(&config, &["notifications"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(!stdout.chars().any(dangerous), "{stdout:?}");
    assert!(stdout.contains("\\u{1b}[31mEvil\\u{1b}[0m"), "{stdout}");
    assert!(stdout.contains("Trust\\u{1b}]0;owned\\u{7}"), "{stdout}");
    assert!(stdout.contains("\\u{1b}[2Jcleared"), "{stdout}");
    // The record id's line break cannot forge a line of its own.
    assert!(stdout.contains("mh-1\\u{d}\\u{a}FAKE LINE"), "{stdout}");
    assert!(
        !stdout.lines().any(|l| l.starts_with("FAKE LINE")),
        "{stdout}"
    );

    let out = kith_agent(&config, &["notifications", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(!stdout.chars().any(dangerous), "{stdout:?}");
    assert!(stdout.contains("A&E\\u202etxet"), "{stdout}");
    // Still the same data to a JSON reader.
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let access = list
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["notification_id"] == "n-1")
        .unwrap();
    assert_eq!(access["accessor"]["display_name"], "\x1b[31mEvil\x1b[0m");
    assert_eq!(access["accessor"]["team"], "A&E\u{202e}txet desrever");
}

#[test]
fn an_error_quoting_hostile_text_is_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let bad = dir.path().join("evil\x1b[31m.jsonl");
    let out = kith_agent(&config, &["ingest"]).arg(&bad).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(stderr.contains("evil\\u{1b}[31m.jsonl"), "{stderr}");
    assert!(!stderr.chars().any(dangerous), "{stderr:?}");
}

#[test]
fn pki_request_writes_an_owner_only_key_and_a_csr_and_never_replaces_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("next");
    // No config file is needed to enrol.
    let run = || {
        kith_agent(
            &dir.path().join("absent.toml"),
            &[
                "pki",
                "request",
                "--authority",
                AUTHORITY,
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap()
    };
    let first: Output = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("mode 0600"), "{stdout}");
    let key = out.join(format!("{AUTHORITY}.key.pem"));
    let csr = out.join(format!("{AUTHORITY}.csr.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let csr_text = std::fs::read_to_string(&csr).unwrap();
    assert!(
        csr_text.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{csr_text}"
    );
    assert!(!csr_text.contains("PRIVATE KEY"));
    let key_text = std::fs::read_to_string(&key).unwrap();

    let second = run();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_text);

    let bad = kith_agent(
        &dir.path().join("absent.toml"),
        &["pki", "request", "--authority", "has space", "--out", "x"],
    )
    .output()
    .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--authority"));
}
