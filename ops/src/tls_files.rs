//! What makes a trust bundle, a certificate and its key fit to serve.
//!
//! Both binaries load their TLS files at start and again on every rotation
//! ([`crate::tls_reload`]). A rotation must never replace files that work
//! with files that do not: [`check`] reads all three and refuses, with the
//! reason, a file it cannot read or parse, a key that is not the
//! certificate's, a certificate outside its validity dates, or one the trust
//! bundle (the one being loaded with it) does not sign. Only then does the
//! caller build its rustls configuration from the checked parts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;

/// A PEM file larger than this is refused unread (a bundle of a few dozen
/// certificates is tens of kilobytes).
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Which end of the mutual TLS the certificate is for: the hub presents a
/// server certificate (extended key usage `serverAuth`), an agent a client
/// one (`clientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRole {
    Server,
    Client,
}

/// The three files, by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsPaths {
    pub fn all(&self) -> [&Path; 3] {
        [&self.ca, &self.cert, &self.key]
    }
}

/// Why a set of files was refused. Each names its file; [`Self::outcome`]
/// is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFileError {
    #[error("{what} {path}: cannot read: {reason}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what} {path}: {reason}")]
    Unparsable {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("private key {key} is not the key of certificate {cert}")]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("certificate {path} expired on {not_after}")]
    Expired {
        path: PathBuf,
        not_after: DateTime<Utc>,
    },
    #[error("certificate {path} is not valid before {not_before}")]
    NotYetValid {
        path: PathBuf,
        not_before: DateTime<Utc>,
    },
    #[error("certificate {path} is not signed by the trust bundle {ca}: {reason}")]
    Untrusted {
        path: PathBuf,
        ca: PathBuf,
        reason: String,
    },
    #[error("certificate {path}: {reason}")]
    WrongIdentity { path: PathBuf, reason: String },
}

impl TlsFileError {
    /// The `outcome` label of `kith_tls_reloads_total` for this refusal.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Unreadable { .. } => "unreadable",
            Self::Unparsable { .. } => "unparsable",
            Self::KeyMismatch { .. } => "key_mismatch",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Untrusted { .. } => "untrusted",
            Self::WrongIdentity { .. } => "wrong_identity",
        }
    }
}

/// Files that passed [`check`]: the parts a rustls configuration is built
/// from, and what the metrics and logs say about them.
#[derive(Debug)]
pub struct CheckedTls {
    pub roots: Arc<RootCertStore>,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The own certificate's `notAfter`.
    pub own_not_after: DateTime<Utc>,
    /// The soonest `notAfter` in the trust bundle.
    pub ca_not_after: DateTime<Utc>,
    /// The own certificate's serial number, lower-case hex.
    pub serial: String,
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let unreadable = |reason: String| TlsFileError::Unreadable {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| unreadable(e.to_string()))?
        .len();
    if len > MAX_PEM_BYTES {
        return Err(unreadable(format!(
            "{len} bytes, more than the {MAX_PEM_BYTES} a PEM file may have"
        )));
    }
    std::fs::read(path).map_err(|e| unreadable(e.to_string()))
}

fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read_pem(what, path)?;
    let unparsable = |reason: String| TlsFileError::Unparsable {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unparsable(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(unparsable("no certificate in the file".into()));
    }
    Ok(certs)
}

/// `notBefore`, `notAfter` and serial (hex) of one DER certificate.
pub fn dates_and_serial(der: &[u8]) -> Result<(DateTime<Utc>, DateTime<Utc>, String), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not a readable X.509 certificate: {e}"))?;
    let validity = cert.validity();
    let date = |t: x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(t.timestamp(), 0)
            .ok_or_else(|| format!("validity date {t} is out of range"))
    };
    let serial: String = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((
        date(validity.not_before)?,
        date(validity.not_after)?,
        serial,
    ))
}

/// The serial number (lower-case hex) of the first certificate in `pem`.
pub fn serial_of_pem(pem: &[u8]) -> Result<String, String> {
    let der = CertificateDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
    dates_and_serial(&der).map(|(_, _, serial)| serial)
}

/// Reads and checks the files for `role` at `now`; `identity` is the
/// caller's own check of its certificate (the agent's: it names this
/// agent's authority), its refusal reported as [`TlsFileError::WrongIdentity`].
pub fn check(
    paths: &TlsPaths,
    role: TlsRole,
    now: DateTime<Utc>,
    identity: &dyn Fn(&CertificateDer<'_>) -> Result<(), String>,
) -> Result<CheckedTls, TlsFileError> {
    let provider = rustls::crypto::ring::default_provider();

    // The trust bundle.
    let bundle = certificates("trust bundle", &paths.ca)?;
    let mut roots = RootCertStore::empty();
    let mut ca_not_after: Option<DateTime<Utc>> = None;
    for cert in bundle {
        let bad = |reason: String| TlsFileError::Unparsable {
            what: "trust bundle",
            path: paths.ca.clone(),
            reason,
        };
        let (_, not_after, _) = dates_and_serial(&cert).map_err(bad)?;
        ca_not_after = Some(ca_not_after.map_or(not_after, |d| d.min(not_after)));
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    let ca_not_after = ca_not_after.expect("the bundle has at least one certificate");

    // The certificate chain, own certificate first.
    let chain = certificates("certificate", &paths.cert)?;
    let (not_before, own_not_after, serial) =
        dates_and_serial(&chain[0]).map_err(|reason| TlsFileError::Unparsable {
            what: "certificate",
            path: paths.cert.clone(),
            reason,
        })?;

    // The key, and that it is the certificate's.
    let key_bytes = read_pem("private key", &paths.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsFileError::Unparsable {
        what: "private key",
        path: paths.key.clone(),
        reason: format!("not a PEM private key: {e}"),
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsFileError::Unparsable {
            what: "private key",
            path: paths.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsFileError::KeyMismatch {
                key: paths.key.clone(),
                cert: paths.cert.clone(),
            });
        }
        // A key type rustls cannot compare: the handshake will tell.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(TlsFileError::Unparsable {
                what: "certificate",
                path: paths.cert.clone(),
                reason: e.to_string(),
            });
        }
    }

    // Validity dates, named plainly before webpki says the same less so.
    if now >= own_not_after {
        return Err(TlsFileError::Expired {
            path: paths.cert.clone(),
            not_after: own_not_after,
        });
    }
    if now < not_before {
        return Err(TlsFileError::NotYetValid {
            path: paths.cert.clone(),
            not_before,
        });
    }

    // Signed by the trust bundle loaded with it, for its role.
    let roots = Arc::new(roots);
    let untrusted = |reason: String| TlsFileError::Untrusted {
        path: paths.cert.clone(),
        ca: paths.ca.clone(),
        reason,
    };
    let unix_now =
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.timestamp().max(0) as u64));
    verify_chain(&chain, &roots, role, unix_now, &provider).map_err(untrusted)?;

    identity(&chain[0]).map_err(|reason| TlsFileError::WrongIdentity {
        path: paths.cert.clone(),
        reason,
    })?;

    Ok(CheckedTls {
        roots,
        chain,
        key,
        own_not_after,
        ca_not_after,
        serial,
    })
}

fn verify_chain(
    chain: &[CertificateDer<'static>],
    roots: &Arc<RootCertStore>,
    role: TlsRole,
    now: UnixTime,
    provider: &CryptoProvider,
) -> Result<(), String> {
    let (leaf, intermediates) = chain.split_first().expect("a chain is never empty");
    match role {
        TlsRole::Server => {
            let parsed = ParsedCertificate::try_from(leaf).map_err(|e| e.to_string())?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &parsed,
                roots,
                intermediates,
                now,
                provider.signature_verification_algorithms.all,
            )
            .map_err(|e| e.to_string())
        }
        TlsRole::Client => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                Arc::new(provider.clone()),
            )
            .build()
            .map_err(|e| e.to_string())?;
            verifier
                .verify_client_cert(leaf, intermediates, now)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(ca: &Ca, eku: ExtendedKeyUsagePurpose, days: (i64, i64)) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.extended_key_usages = vec![eku];
        let base = rcgen::date_time_ymd(2026, 1, 1);
        let shift = |d: i64| {
            let span = std::time::Duration::from_secs(d.unsigned_abs() * 86_400);
            if d >= 0 { base + span } else { base - span }
        };
        params.not_before = shift(days.0);
        params.not_after = shift(days.1);
        (params.signed_by(&key, &ca.issuer).unwrap().pem(), key)
    }

    /// 2026-01-01 plus `days`.
    fn at(days: i64) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            + chrono::Duration::days(days)
    }

    struct Files {
        dir: tempfile::TempDir,
        paths: TlsPaths,
    }

    fn files(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&paths.ca, ca_pem).unwrap();
        std::fs::write(&paths.cert, cert_pem).unwrap();
        std::fs::write(&paths.key, key_pem).unwrap();
        Files { dir, paths }
    }

    fn no_identity(_: &CertificateDer<'_>) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn good_files_pass_for_their_role_only() {
        let ca = ca();
        let (cert, key) = leaf(&ca, ExtendedKeyUsagePurpose::ServerAuth, (-1, 365));
        let f = files(&ca.pem, &cert, &key.serialize_pem());
        let checked = check(&f.paths, TlsRole::Server, at(10), &no_identity).unwrap();
        assert_eq!(checked.own_not_after, at(365));
        assert_eq!(checked.serial, serial_of_pem(cert.as_bytes()).unwrap());
        assert!(!checked.serial.is_empty());
        // A server certificate is no client certificate.
        let err = check(&f.paths, TlsRole::Client, at(10), &no_identity).unwrap_err();
        assert_eq!(err.outcome(), "untrusted", "{err}");
        drop(f.dir);
    }

    #[test]
    fn each_bad_file_is_refused_with_its_reason() {
        let ca = ca();
        let other_ca = self::ca();
        let (cert, key) = leaf(&ca, ExtendedKeyUsagePurpose::ClientAuth, (-1, 30));
        let key = key.serialize_pem();
        let (_, other_key) = leaf(&ca, ExtendedKeyUsagePurpose::ClientAuth, (-1, 30));
        let (foreign, foreign_key) = leaf(&other_ca, ExtendedKeyUsagePurpose::ClientAuth, (-1, 30));
        let now = at(1);
        let cases: Vec<(&str, Files, &str, DateTime<Utc>)> = vec![
            (
                "garbage cert",
                files(&ca.pem, "junk", &key),
                "unparsable",
                now,
            ),
            (
                "truncated cert",
                files(&ca.pem, &cert[..cert.len() / 2], &key),
                "unparsable",
                now,
            ),
            (
                "garbage key",
                files(&ca.pem, &cert, "junk"),
                "unparsable",
                now,
            ),
            ("empty bundle", files("", &cert, &key), "unparsable", now),
            (
                "key of another certificate",
                files(&ca.pem, &cert, &other_key.serialize_pem()),
                "key_mismatch",
                now,
            ),
            ("expired", files(&ca.pem, &cert, &key), "expired", at(31)),
            (
                "not yet valid",
                files(&ca.pem, &cert, &key),
                "not_yet_valid",
                at(-5),
            ),
            (
                "signed by another CA",
                files(&ca.pem, &foreign, &foreign_key.serialize_pem()),
                "untrusted",
                now,
            ),
        ];
        for (name, f, outcome, when) in cases {
            let err = check(&f.paths, TlsRole::Client, when, &no_identity).unwrap_err();
            assert_eq!(err.outcome(), outcome, "{name}: {err}");
            // The reason names the file at fault.
            let text = err.to_string();
            assert!(
                text.contains(f.dir.path().to_str().unwrap()),
                "{name}: {text}"
            );
        }
        let f = files(&ca.pem, &cert, &key);
        std::fs::remove_file(&f.paths.key).unwrap();
        let err = check(&f.paths, TlsRole::Client, now, &no_identity).unwrap_err();
        assert_eq!(err.outcome(), "unreadable", "{err}");
        let err = check(
            &files(&ca.pem, &cert, &key).paths,
            TlsRole::Client,
            now,
            &|_| Err("names authority X, not Y".into()),
        )
        .unwrap_err();
        assert_eq!(err.outcome(), "wrong_identity");
        assert!(err.to_string().contains("names authority X, not Y"));
    }

    #[test]
    fn an_oversized_file_is_refused_unread() {
        let ca = ca();
        let (cert, key) = leaf(&ca, ExtendedKeyUsagePurpose::ClientAuth, (-1, 30));
        let f = files(&ca.pem, &cert, &key.serialize_pem());
        let big = vec![b'A'; MAX_PEM_BYTES as usize + 1];
        std::fs::write(&f.paths.ca, big).unwrap();
        let err = check(&f.paths, TlsRole::Client, at(1), &no_identity).unwrap_err();
        assert_eq!(err.outcome(), "unreadable");
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
