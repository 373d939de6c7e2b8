//! The hub's TLS configuration, loaded from its files and loaded again on
//! rotation.
//!
//! [`load`] checks the files (`kith_ops::tls_files::check`, as a server
//! certificate) and builds the rustls configuration every handshake uses: the
//! hub's certificate, a client certificate chaining to the trust bundle
//! required, HTTP/2 only. `accept.rs` takes [`ServerTls::current`] for each
//! new connection, so after a reload new handshakes present the new
//! certificate and check clients against the new bundle, while connections
//! already open keep theirs. The client certificate still reaches tonic's
//! `peer_certs()` unchanged, so the caller's authority is read as before.

use std::sync::Arc;

use chrono::Utc;
use kith_core::tls::TlsFiles;
use kith_ops::tls_files::{TlsFileError, TlsPaths, TlsRole};
use kith_ops::tls_reload::{Loaded, Reloadable};

/// The configuration new handshakes use.
pub type ServerTls = Reloadable<rustls::ServerConfig>;

/// The paths as kith-ops names them.
pub fn paths(files: &TlsFiles) -> TlsPaths {
    TlsPaths {
        ca: files.ca.clone(),
        cert: files.cert.clone(),
        key: files.key.clone(),
    }
}

/// Reads and checks the hub's files and builds its server configuration.
pub fn load(files: &TlsFiles) -> Result<Loaded<rustls::ServerConfig>, TlsFileError> {
    let paths = paths(files);
    let checked = kith_ops::tls_files::check(&paths, TlsRole::Server, Utc::now(), &|_| Ok(()))?;
    let trust = |reason: String| TlsFileError::Unparsable {
        what: "trust bundle",
        path: paths.ca.clone(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        checked.roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| trust(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| trust(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(checked.chain, checked.key)
        .map_err(|e| TlsFileError::Unparsable {
            what: "certificate",
            path: paths.cert.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        value: config,
        own_not_after: checked.own_not_after,
        ca_not_after: checked.ca_not_after,
        serial: checked.serial,
    })
}
