//! What an operator installs: the shipped systemd unit for the agent passes
//! `systemd-analyze verify` and keeps its hardening, and `kith-agent
//! example-config` is a config the agent loads.
//!
//! Without `systemd-analyze` the unit check says so and checks the rest;
//! under CI (`CI` set) a missing `systemd-analyze` fails it.

use std::process::Command;

use kith_tests::packaging::{assert_unit_has, assert_unit_verifies, systemd_unit};

const AGENT: &str = env!("CARGO_BIN_EXE_kith-agent");

#[test]
fn the_agent_unit_is_hardened() {
    assert_unit_has(
        &systemd_unit("kith-agent.service"),
        &[
            "User=kith-agent",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "ReadWritePaths=/var/lib/kith-agent",
            "CapabilityBoundingSet=\n",
            "ExecStart=/usr/local/bin/kith-agent --config /etc/kith/agent.toml run",
        ],
    );
}

#[test]
fn the_agent_unit_passes_systemd_analyze_verify() {
    assert_unit_verifies(
        &systemd_unit("kith-agent.service"),
        "/usr/local/bin/kith-agent",
        AGENT,
    );
}

#[test]
fn the_example_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(AGENT)
        .arg("example-config")
        .env_remove("KITH_AGENT_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = dir.path().join("kith-agent.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    kith_agent::config::AgentConfig::load(&path).expect("the example config loads");
}
