//! What an operator installs and starts from: `kith-hub example-config` is a
//! config the hub serves with (beside a dev PKI and the default policy set,
//! as docs/operators.md's first steps make them), and the shipped systemd
//! unit passes `systemd-analyze verify` and keeps its hardening.
//!
//! Without `systemd-analyze` the unit check says so and checks the rest;
//! under CI (`CI` set) a missing `systemd-analyze` fails it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kith_tests::packaging::{assert_unit_has, assert_unit_verifies, systemd_unit};
use kith_tests::process::{free_port, serve_hub, wait_listening};

const HUB: &str = env!("CARGO_BIN_EXE_kith-hub");

fn hub(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(HUB)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("kith-hub runs");
    assert!(
        out.status.success(),
        "kith-hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[tokio::test]
async fn a_hub_serves_from_the_example_config() {
    let dir = tempfile::tempdir().unwrap();
    hub(
        dir.path(),
        &[
            "pki",
            "init",
            "--dir",
            "pki",
            "--authority",
            "E08000003",
            "--authority",
            "R0A",
        ],
    );
    hub(dir.path(), &["policy", "init", "policies"]);
    let example = hub(dir.path(), &["example-config"]);
    let port = free_port();
    let config = example
        .replace(
            "listen = \"0.0.0.0:7443\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace("listen = \"127.0.0.1:9464\"", "listen = \"127.0.0.1:0\"");
    assert_ne!(config, example, "the example's listen lines moved");
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, config).unwrap();

    let log = dir.path().join("hub.log");
    let mut process = serve_hub(Path::new(HUB), &path, &log);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = wait_listening(addr, Duration::from_secs(30)).await;
    assert!(
        up && process.running(),
        "the hub did not serve from the example config:\n{}",
        process.log_text()
    );
    assert!(
        dir.path().join("kith-hub.db").exists(),
        "the example's SQLite database is beside the config"
    );
}

#[test]
fn the_hub_unit_is_hardened() {
    assert_unit_has(
        &systemd_unit("kith-hub.service"),
        &[
            "User=kith-hub",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "ReadWritePaths=/var/lib/kith-hub",
            "CapabilityBoundingSet=\n",
            "ExecStart=/usr/local/bin/kith-hub serve --config /etc/kith/hub.toml",
            "ExecReload=/bin/kill -HUP $MAINPID",
        ],
    );
}

#[test]
fn the_hub_unit_passes_systemd_analyze_verify() {
    assert_unit_verifies(
        &systemd_unit("kith-hub.service"),
        "/usr/local/bin/kith-hub",
        HUB,
    );
}
