//! `kith-hub serve` reloads its TLS files on SIGHUP (the binary's signal
//! wiring; the in-process tests use the reload handle): with the change
//! check set to an hour, only the signal can make the new certificate
//! reach new handshakes, and a bad file sent in by SIGHUP is refused in the
//! log with its reason while the old certificate keeps serving.

use std::time::Duration;

use kith_agent::tls::HubTls;
use kith_core::pki::CertificateAuthority;
use kith_ops::tls_files::serial_of_pem;
use kith_tests::process::{free_port, serve_hub, wait_listening};
use kith_tests::*;

const HUB: &str = env!("CARGO_BIN_EXE_kith-hub");
const WAIT: Duration = Duration::from_secs(30);

async fn serial_seen(port: u16, agent: &kith_agent::AgentConfig) -> String {
    let tls = HubTls::from_config(agent).unwrap();
    tokio::time::timeout(WAIT, tls.connect("127.0.0.1", port))
        .await
        .expect("handshake in time")
        .expect("handshake");
    tls.last_hub_serial().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_loads_new_hub_files_and_refuses_bad_ones() {
    let t = TestDir::new();
    let port = free_port();
    let mut config = t.hub_config(port);
    config.tls_reload_interval_ms = 3_600_000;
    let path = t.path().join("hub.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let log = t.path().join("hub.log");
    let hub = serve_hub(HUB.as_ref(), &path, &log);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(wait_listening(addr, WAIT).await, "{}", hub.log_text());
    let agent = t.agent_config(COUNCIL_B, addr);
    let before = serial_seen(port, &agent).await;

    let ca = CertificateAuthority::from_pem(
        &std::fs::read_to_string(&config.tls.ca).unwrap(),
        &std::fs::read_to_string(t.path().join("pki").join("ca.key.pem")).unwrap(),
    )
    .unwrap();
    let new = ca.issue_hub(&["localhost".into()]).unwrap();
    std::fs::write(&config.tls.key, &new.key_pem).unwrap();
    std::fs::write(&config.tls.cert, &new.cert_pem).unwrap();
    let serial = serial_of_pem(new.cert_pem.as_bytes()).unwrap();
    // Not picked up unasked within a few seconds (the check is hourly).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(serial_seen(port, &agent).await, before);

    hub.signal("HUP");
    assert!(
        eventually(WAIT, || async { serial_seen(port, &agent).await == serial }).await,
        "{}",
        hub.log_text()
    );
    assert!(
        hub.log_text().contains("TLS files loaded"),
        "{}",
        hub.log_text()
    );

    // A key that is not the certificate's: refused, logged, old one serves.
    let other = ca.issue_hub(&["localhost".into()]).unwrap();
    std::fs::write(&config.tls.key, &other.key_pem).unwrap();
    hub.signal("HUP");
    assert!(
        eventually(WAIT, || async {
            hub.log_text().contains("TLS files refused")
        })
        .await,
        "{}",
        hub.log_text()
    );
    let text = hub.log_text();
    assert!(
        text.contains("key_mismatch") && text.contains("is not the key of certificate"),
        "{text}"
    );
    assert_eq!(serial_seen(port, &agent).await, serial);
}
