//! The baseline: a bare tonic unary echo over the hub's mutual-TLS setup.
//!
//! A ratio against a baseline measured in the same run holds on a noisy
//! machine where absolute figures do not. The echo server runs as its own
//! process (`kith-bench echo-server`, spawned by the harness), with the
//! hub's certificate and the same client-certificate verification
//! (`kith_core::tls::TlsFiles::server_config`), accepting connections the
//! way `kith_hub::server::start` does; the harness drives it with the same
//! clients, connections and load loop as the hub's queries.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kith_core::tls::TlsFiles;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

/// The generated messages and stubs of `proto/echo.proto`.
pub mod pb {
    tonic::include_proto!("kith.bench.v1");
}

pub use pb::EchoMessage;
use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoMessage>) -> Result<Response<EchoMessage>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// Serves the echo service on `listen` over mutual TLS until SIGTERM or
/// Ctrl-C. This is the body of `kith-bench echo-server`.
pub async fn serve(tls: &TlsFiles, listen: SocketAddr) -> Result<()> {
    kith_core::tls::install_crypto_provider();
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    Server::builder()
        .tls_config(tls.server_config()?)?
        .add_service(EchoServer::new(EchoService))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop_signal(),
        )
        .await?;
    Ok(())
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// A client on `channel`.
pub fn client(channel: Channel) -> EchoClient<Channel> {
    EchoClient::new(channel)
}

/// The payload each echo call carries: about the size of a query request.
pub fn payload() -> EchoMessage {
    EchoMessage {
        payload: vec![0x6b; 96],
    }
}

/// Calls the server until it answers, for up to `timeout`.
pub async fn wait_ready(
    addr: SocketAddr,
    tls: &TlsFiles,
    timeout: Duration,
    mut still_running: impl FnMut() -> Result<()>,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        still_running()?;
        match kith_tests::channel(addr, tls).await {
            Ok(channel) => match client(channel).echo(payload()).await {
                Ok(_) => return Ok(()),
                Err(status) => last = status.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the echo server did not answer within {timeout:?}: {last}")
}
