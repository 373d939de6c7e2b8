//! The `kith-hub` binary as an operator runs it.

use std::process::Command;

fn hub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kith-hub"))
}

#[test]
fn pki_init_makes_a_log_key_and_vkey_prints_its_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = hub()
        .args(["pki", "init", "--dir"])
        .arg(&pki)
        .args([
            "--authority",
            "E08000003",
            "--log-origin",
            "example.org/kith-log",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        r#"listen = "127.0.0.1:0"
database_url = "sqlite://hub.db"
jurisdiction = "england"
policy_dir = "policies"
[tls]
ca = "pki/ca.crt.pem"
cert = "pki/hub.crt.pem"
key = "pki/hub.key.pem"
[audit]
signing_key = "pki/audit-log.skey"
"#,
    )
    .unwrap();
    let out = hub()
        .args(["vkey", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let written = std::fs::read_to_string(pki.join("audit-log.vkey")).unwrap();
    assert_eq!(printed.trim(), written.trim());
    assert!(printed.starts_with("example.org/kith-log+"), "{printed}");

    // A missing key is a one-line error, exit 1.
    std::fs::remove_file(pki.join("audit-log.skey")).unwrap();
    let out = hub()
        .args(["vkey", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: reading "), "{err}");
}
