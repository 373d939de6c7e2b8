//! `kith-agent run` reloads its TLS files on SIGHUP (the binary's signal
//! wiring): with the change check set to an hour, the signal alone loads a
//! new certificate (its serial in the log line), and a certificate naming
//! another authority is refused with its reason.

use std::time::Duration;

use kith_core::AuthorityCode;
use kith_core::pki::{CertificateAuthority, Validity};
use kith_ops::tls_files::serial_of_pem;
use kith_tests::process::{run_agent, write_agent_config};
use kith_tests::*;

const AGENT: &str = env!("CARGO_BIN_EXE_kith-agent");
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn sighup_loads_new_agent_files_and_refuses_another_authoritys() {
    let t = TestDir::new();
    // No hub: the agent runs (ingest, outbox) without one.
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], kith_tests::process::free_port()));
    let mut config = t.agent_config(COUNCIL_A, dead);
    config.tls.reload_interval_ms = 3_600_000;
    config.metrics = kith_ops::MetricsConfig::any_loopback_port();
    let path = write_agent_config(&config);
    let agent = run_agent(AGENT.as_ref(), &path, &t.path().join("agent.log"));
    assert!(
        eventually(WAIT, || async {
            agent.log_text().contains("agent started")
        })
        .await,
        "{}",
        agent.log_text()
    );

    let ca = CertificateAuthority::from_pem(
        &std::fs::read_to_string(&config.tls.ca).unwrap(),
        &std::fs::read_to_string(t.path().join("pki").join("ca.key.pem")).unwrap(),
    )
    .unwrap();
    let new = ca
        .issue_authority(&AuthorityCode::new(COUNCIL_A).unwrap(), Validity::default())
        .unwrap();
    std::fs::write(&config.tls.key, &new.key_pem).unwrap();
    std::fs::write(&config.tls.cert, &new.cert_pem).unwrap();
    let serial = serial_of_pem(new.cert_pem.as_bytes()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!agent.log_text().contains(&serial), "loaded unasked");

    agent.signal("HUP");
    assert!(
        eventually(WAIT, || async {
            let log = agent.log_text();
            log.contains("TLS files loaded") && log.contains(&serial)
        })
        .await,
        "{}",
        agent.log_text()
    );

    let b = t.agent_tls(COUNCIL_B);
    std::fs::copy(&b.cert, &config.tls.cert).unwrap();
    std::fs::copy(&b.key, &config.tls.key).unwrap();
    agent.signal("HUP");
    assert!(
        eventually(WAIT, || async {
            agent.log_text().contains("TLS files refused")
        })
        .await,
        "{}",
        agent.log_text()
    );
    let log = agent.log_text();
    assert!(
        log.contains("wrong_identity") && log.contains("names authority E08000006"),
        "{log}"
    );
}
