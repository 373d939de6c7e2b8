//! The config file: good, missing keys, bad values, relative paths.

use std::path::Path;

use kith_agent::config::{AgentConfig, ConfigError};

const GOOD: &str = r#"
authority = "E08000003"
data_dir = "state"
drop_dir = "/srv/kith/drop"

[hub]
addresses = ["https://hub-a.example:7443", "https://hub-b.example:7443"]
server_name = "hub.kith.example"

[tls]
ca = "pki/ca.pem"
cert = "pki/agent.pem"
key = "pki/agent.key"

[ingest]
poll_interval_ms = 250

[publish]
batch_size = 100
backoff_initial_ms = 50
backoff_max_ms = 5000
request_timeout_ms = 3000

[link]
heartbeat_interval_seconds = 5
"#;

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_good_file_loads_and_relative_paths_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = AgentConfig::load(&write(dir.path(), GOOD)).unwrap();
    assert_eq!(c.authority, "E08000003");
    assert_eq!(c.hub.addresses[1], "https://hub-b.example:7443");
    assert_eq!(c.hub.server_name, "hub.kith.example");
    assert_eq!(c.publish.batch_size, 100);
    assert_eq!(c.ingest.poll_interval_ms, 250);
    assert_eq!(c.link.heartbeat_interval_seconds, 5);
    // Relative paths are resolved against the config file's folder ...
    assert_eq!(c.data_dir, dir.path().join("state"));
    assert_eq!(c.tls.cert, dir.path().join("pki/agent.pem"));
    assert_eq!(c.outbox_path(), dir.path().join("state/outbox.db"));
    // ... absolute ones are left alone.
    assert_eq!(c.drop_dir, Path::new("/srv/kith/drop"));
}

#[test]
fn a_missing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD.replace("authority = \"E08000003\"\n", "");
    let err = AgentConfig::load(&write(dir.path(), &text)).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("authority"), "{msg}");
    assert!(
        msg.contains("agent.toml"),
        "the message names the file: {msg}"
    );

    let text = GOOD.replace("cert = \"pki/agent.pem\"\n", "");
    let msg = AgentConfig::load(&write(dir.path(), &text))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cert"), "{msg}");
}

#[test]
fn a_misspelt_key_is_refused_not_ignored() {
    let text = GOOD.replace("batch_size", "bach_size");
    let msg = AgentConfig::parse(&text).unwrap_err().to_string();
    assert!(msg.contains("bach_size"), "{msg}");
}

#[test]
fn bad_values_are_named_by_key() {
    let cases = [
        (
            GOOD.replace("batch_size = 100", "batch_size = 5000"),
            "publish.batch_size",
        ),
        (
            GOOD.replace("batch_size = 100", "batch_size = 0"),
            "publish.batch_size",
        ),
        (GOOD.replace("\"E08000003\"", "\"E08 000003\""), "authority"),
        (
            GOOD.replace("https://hub-a.example:7443", "http://hub-a.example:7443"),
            "hub.addresses",
        ),
        (
            GOOD.replace("backoff_max_ms = 5000", "backoff_max_ms = 10"),
            "publish.backoff_max_ms",
        ),
        (
            GOOD.replace(
                "heartbeat_interval_seconds = 5",
                "heartbeat_interval_seconds = 0",
            ),
            "link.heartbeat_interval_seconds",
        ),
    ];
    for (text, key) in cases {
        match AgentConfig::parse(&text) {
            Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key),
            other => panic!("expected {key} to be refused, got {other:?}"),
        }
    }
    // A value of the wrong type is a parse error naming the key.
    let msg = AgentConfig::parse(&GOOD.replace("batch_size = 100", "batch_size = \"lots\""))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("batch_size"), "{msg}");
}

#[test]
fn an_empty_address_list_is_refused() {
    let text = GOOD.replace(
        "addresses = [\"https://hub-a.example:7443\", \"https://hub-b.example:7443\"]",
        "addresses = []",
    );
    let err = AgentConfig::parse(&text).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                key: "hub.addresses",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_missing_file_says_which() {
    let err = AgentConfig::load(Path::new("/nonexistent/kith.toml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/kith.toml"), "{err}");
}

#[test]
fn a_config_built_in_code_writes_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = AgentConfig::example();
    c.publish.batch_size = 7;
    c.resolve_paths(dir.path());
    let path = dir.path().join("written.toml");
    c.write(&path).unwrap();
    assert_eq!(AgentConfig::load(&path).unwrap(), c);
    AgentConfig::write_example(&dir.path().join("example.toml")).unwrap();
    let example = AgentConfig::load(&dir.path().join("example.toml")).unwrap();
    assert_eq!(example.publish.batch_size, 500);
}
