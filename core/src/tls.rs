//! Mutual TLS settings shared by hub and agent.
//!
//! One crypto provider only: ring. [`install_crypto_provider`] must run before
//! the first TLS configuration is built (both binaries and the tests call it).

use std::fs;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The three files a TLS end needs: the federation CA bundle, its own
/// certificate and its private key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Installs ring as the process-wide rustls provider. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(what: &'static str, path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

impl TlsFiles {
    /// Server side: present our certificate, and require a client
    /// certificate chaining to the CA (no certificate, an unknown CA or an
    /// expired certificate fail the handshake or the first call).
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        Ok(ServerTlsConfig::new()
            .identity(Identity::from_pem(
                read("certificate", &self.cert)?,
                read("private key", &self.key)?,
            ))
            .client_ca_root(Certificate::from_pem(read("CA bundle", &self.ca)?))
            .client_auth_optional(false))
    }

    /// Client side: trust only the federation CA, present our certificate,
    /// and expect the hub to be `server_name`.
    pub fn client_config(&self, server_name: &str) -> Result<ClientTlsConfig, TlsError> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("CA bundle", &self.ca)?))
            .identity(Identity::from_pem(
                read("certificate", &self.cert)?,
                read("private key", &self.key)?,
            ))
            .domain_name(server_name))
    }
}
