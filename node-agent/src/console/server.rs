//! The console's listener: HTTPS with the console certificate (rustls on
//! ring, HTTP/1.1), or plain HTTP where the config allows it (loopback
//! only, checked in [`super::settings`]). Runs on the agent's tokio runtime
//! and stops with it.
//!
//! TLS handshakes run in their own tasks, each with a deadline, so a
//! client that never finishes one holds up nobody else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::settings::ConsoleSection;
use crate::config::ConfigError;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPT_QUEUE: usize = 64;

/// The client's address, for the sign-in throttle.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Accepted, handshaken TLS connections.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    _acceptor: JoinHandle<()>,
}

impl TlsListener {
    fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "console accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "console TLS handshake failed"),
                        Err(_) => tracing::debug!("console TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Self {
            local,
            ready,
            _acceptor: task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self._acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The acceptor task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the console cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

fn tls_config(section: &ConsoleSection) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let tls = section.tls.as_ref().ok_or(ConfigError::Invalid {
        key: "console.tls",
        reason: "missing".into(),
    })?;
    let bad =
        |what: &'static str, path: &std::path::Path, reason: String| ConfigError::Certificate {
            what,
            path: path.to_path_buf(),
            reason,
        };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| bad("console certificate", &tls.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(
            "console certificate",
            &tls.cert,
            "holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| bad("console key", &tls.key, e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("console certificate", &tls.cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad("console certificate", &tls.cert, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Binds the console's address and serves `app` until `shutdown` is set.
/// Returns the bound address (the config may say port 0) and the task.
pub async fn serve(
    section: &ConsoleSection,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), ServeError> {
    section.check()?;
    let tls = if section.is_tls() {
        Some(tls_config(section)?)
    } else {
        None
    };
    let tcp = TcpListener::bind(section.listen)
        .await
        .map_err(|source| ServeError::Bind {
            address: section.listen,
            source,
        })?;
    let local = tcp.local_addr().map_err(|source| ServeError::Bind {
        address: section.listen,
        source,
    })?;
    let stop = async move {
        crate::agent::stopped(&mut shutdown).await;
    };
    let task = match tls {
        Some(config) => {
            let listener = TlsListener::new(tcp, TlsAcceptor::from(config)).map_err(|source| {
                ServeError::Bind {
                    address: section.listen,
                    source,
                }
            })?;
            let service = app.into_make_service_with_connect_info::<Peer>();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, service)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "the console stopped");
                }
            })
        }
        None => {
            let service = app.into_make_service_with_connect_info::<Peer>();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(tcp, service).with_graceful_shutdown(stop).await {
                    tracing::error!(error = %e, "the console stopped");
                }
            })
        }
    };
    tracing::info!(address = %local, https = section.is_tls(), "console listening");
    Ok((local, task))
}
