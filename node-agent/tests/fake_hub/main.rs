//! The agent against an in-process fake hub over real mutual TLS: publish
//! outcomes, a retried outage, failover past a dead address, directives
//! after their records, the link, notifications stored, delivered and
//! acknowledged, and a hub that refuses the agent.
//!
//! One test binary: the shared set-up here, the fake services in
//! [`fakes`], each behaviour's test in a file of its own.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_agent::notifications::NotificationStore;
use kith_agent::{Agent, AgentConfig};
use kith_core::identity::AuthorityCode;
use kith_core::pki::PkiLayout;
use kith_core::tls::TlsFiles;
use kith_proto::v1 as pb;
use pb::agent_link_service_server::{AgentLinkService, AgentLinkServiceServer};
use pb::audit_service_server::{AuditService, AuditServiceServer};
use pb::record_service_server::{RecordService, RecordServiceServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::server::Router;
use tonic::{Request, Response, Status, Streaming};

mod fakes;
mod notifications;
mod outage;
mod records;
mod refused;

pub(crate) const AUTHORITY: &str = "E08000003";

/// A development PKI for the hub and this one authority.
pub(crate) fn pki(dir: &Path) -> (PkiLayout, AuthorityCode) {
    kith_core::tls::install_crypto_provider();
    let code = AuthorityCode::new(AUTHORITY).unwrap();
    let pki = kith_core::pki::init(
        &dir.join("pki"),
        &["localhost".to_string()],
        std::slice::from_ref(&code),
    )
    .unwrap();
    (pki, code)
}

/// A fake hub serving `services` over mutual TLS on `listener`; send on the
/// returned sender to stop it.
pub(crate) fn serve(
    pki: &PkiLayout,
    listener: tokio::net::TcpListener,
    services: impl FnOnce(&mut tonic::transport::Server) -> Router,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let tls = TlsFiles {
        ca: pki.ca_cert(),
        cert: pki.hub_cert(),
        key: pki.hub_key(),
    }
    .server_config()
    .unwrap();
    let mut server = tonic::transport::Server::builder().tls_config(tls).unwrap();
    let (_health, health_service) = tonic_health::server::health_reporter();
    let router = services(&mut server).add_service(health_service);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = router
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    (stop, task)
}

/// An agent config for this authority against `addresses`, with short
/// delays.
pub(crate) fn agent_config(
    dir: &Path,
    pki: &PkiLayout,
    code: &AuthorityCode,
    addresses: &[SocketAddr],
) -> AgentConfig {
    let mut config = AgentConfig::new(
        AUTHORITY,
        addresses.iter().map(|a| format!("https://{a}")).collect(),
        TlsFiles {
            ca: pki.ca_cert(),
            cert: pki.authority_cert(code),
            key: pki.authority_key(code),
        },
        dir.join("data"),
        dir.join("drop"),
    );
    config.ingest.poll_interval_ms = 50;
    config.publish.backoff_initial_ms = 20;
    config.publish.backoff_max_ms = 200;
    config.hub.connect_timeout_ms = 1000;
    config
}

/// Waits until `done` holds, failing with `what` after 20 seconds.
pub(crate) async fn eventually<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
