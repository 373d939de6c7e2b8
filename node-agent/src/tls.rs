//! The agent's client TLS: the files checked, the rustls configuration new
//! connections to the hub use, and the connector that dials with it.
//!
//! tonic's own client TLS fixes its configuration when an endpoint is
//! built, and a channel's reconnects reuse it, so a rotated certificate
//! would reach the hub only after a restart. Here every new connection
//! (a channel's first, and each reconnect) takes the configuration current
//! at that moment from a [`ClientTls`]; `kith_ops::tls_reload` replaces it
//! when the files change or on SIGHUP, and only with files that passed the
//! checks (parsable, key matching, within dates, signed by the bundle,
//! naming this agent's authority). Connections already open keep theirs.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use chrono::Utc;
use hyper_util::rt::TokioIo;
use kith_core::AuthorityCode;
use kith_ops::tls_files::{TlsFileError, TlsPaths, TlsRole};
use kith_ops::tls_reload::{Loaded, Reloadable};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::AgentConfig;

/// The configuration new connections to the hub use.
pub type ClientTls = Reloadable<rustls::ClientConfig>;

/// The agent's TLS paths as kith-ops names them.
pub fn paths(config: &AgentConfig) -> TlsPaths {
    TlsPaths {
        ca: config.tls.ca.clone(),
        cert: config.tls.cert.clone(),
        key: config.tls.key.clone(),
    }
}

/// Reads and checks the agent's files and builds its client configuration.
pub fn load(config: &AgentConfig) -> Result<Loaded<rustls::ClientConfig>, TlsFileError> {
    let paths = paths(config);
    let authority = config.authority.clone();
    let names_this_authority = move |cert: &rustls::pki_types::CertificateDer<'_>| {
        let named = AuthorityCode::from_certificate(cert).map_err(|e| e.to_string())?;
        if named.as_str() == authority {
            Ok(())
        } else {
            Err(format!(
                "names authority {named} but config key `authority` is {authority}"
            ))
        }
    };
    let checked =
        kith_ops::tls_files::check(&paths, TlsRole::Client, Utc::now(), &names_this_authority)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::Unparsable {
            what: "certificate",
            path: paths.cert.clone(),
            reason: e.to_string(),
        })?
        .with_root_certificates(checked.roots.clone())
        .with_client_auth_cert(checked.chain, checked.key)
        .map_err(|e| TlsFileError::Unparsable {
            what: "certificate",
            path: paths.cert.clone(),
            reason: e.to_string(),
        })?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        value: client,
        own_not_after: checked.own_not_after,
        ca_not_after: checked.ca_not_after,
        serial: checked.serial,
    })
}

/// How the agent reaches the hub over TLS: the current configuration, the
/// name the hub's certificate must carry, and the serial of the hub
/// certificate seen at the last handshake.
#[derive(Debug, Clone)]
pub struct HubTls {
    tls: ClientTls,
    server_name: ServerName<'static>,
    last_hub_serial: Arc<Mutex<Option<String>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HubTlsError {
    #[error(transparent)]
    Files(#[from] TlsFileError),
    #[error("config key `hub.server_name` {0:?} is not a DNS name or IP address")]
    ServerName(String),
}

impl HubTls {
    /// Loads and checks the files once (one-shot commands).
    pub fn from_config(config: &AgentConfig) -> Result<Self, HubTlsError> {
        kith_core::tls::install_crypto_provider();
        let loaded = load(config)?;
        Self::new(Reloadable::new(loaded.value), &config.hub.server_name)
    }

    /// Over a configuration someone else reloads (`kith-agent run`).
    pub fn new(tls: ClientTls, server_name: &str) -> Result<Self, HubTlsError> {
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| HubTlsError::ServerName(server_name.to_string()))?;
        Ok(Self {
            tls,
            server_name,
            last_hub_serial: Arc::default(),
        })
    }

    /// The configuration that is reloaded.
    pub fn reloadable(&self) -> &ClientTls {
        &self.tls
    }

    /// The serial (hex) of the hub certificate at the last handshake made
    /// through this value or its clones.
    pub fn last_hub_serial(&self) -> Option<String> {
        self.last_hub_serial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A connector for `Endpoint::connect_with_connector`.
    pub fn connector(&self) -> HubConnect {
        HubConnect { tls: self.clone() }
    }

    /// TCP to `host:port`, then TLS with the configuration current now.
    pub async fn connect(&self, host: &str, port: u16) -> io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((host, port)).await?;
        // Without it a response written in pieces waits for a delayed ACK.
        tcp.set_nodelay(true)?;
        let stream = TlsConnector::from(self.tls.current())
            .connect(self.server_name.clone(), tcp)
            .await?;
        let (_, session) = stream.get_ref();
        if session.alpn_protocol() != Some(b"h2") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the hub did not agree to HTTP/2 (ALPN h2)",
            ));
        }
        if let Some(serial) = session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| kith_ops::tls_files::dates_and_serial(c).ok())
            .map(|(_, _, serial)| serial)
        {
            tracing::debug!(hub_certificate_serial = %serial, "TLS connection to the hub");
            *self
                .last_hub_serial
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(serial);
        }
        Ok(stream)
    }
}

/// The tower service tonic dials through: one TLS connection per call.
#[derive(Debug, Clone)]
pub struct HubConnect {
    tls: HubTls,
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower_service::Service<tonic::codegen::http::Uri> for HubConnect {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: tonic::codegen::http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            tls.connect(&host, port).await.map(TokioIo::new)
        })
    }
}

/// The endpoint address tonic is given for `address` (`https://host:port`):
/// the same with `http://`, because TLS is done by [`HubConnect`] and
/// tonic refuses an `https` address without its own TLS settings.
pub fn endpoint_uri(address: &str) -> String {
    match address.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => address.to_string(),
    }
}

/// The configuration built from the files with only the parsing checks,
/// for `kith-agent run` to start with files [`load`] refuses (an expired
/// certificate): ingest and the outbox work without the hub, the hub
/// refuses the agent until good files are installed, and the reloader
/// replaces this configuration once they are.
pub fn load_unchecked(config: &AgentConfig) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = |path: &std::path::Path| {
        CertificateDer::pem_file_iter(path)
            .and_then(|c| c.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(&config.tls.ca)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", config.tls.ca.display()))?;
    }
    let key = PrivateKeyDer::from_pem_file(&config.tls.key)
        .map_err(|e| format!("{}: {e}", config.tls.key.display()))?;
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_client_auth_cert(certs(&config.tls.cert)?, key)
    .map_err(|e| format!("{}: {e}", config.tls.cert.display()))?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(client)
}
