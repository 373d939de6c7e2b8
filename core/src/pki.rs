//! A development public-key infrastructure, made with rcgen.
//!
//! `kith-hub pki init` lays out a federation CA, a hub certificate and one
//! certificate per authority, so a newcomer gets mutual TLS with no setup.
//! Operators with a real PKI bring their own files instead: all Kith needs is
//! a CA bundle, and leaf certificates whose URI SAN names the authority (see
//! [`crate::identity`]).
//!
//! Layout of a PKI folder:
//!
//! ```text
//! ca.crt.pem  ca.key.pem                 federation CA (keep the key offline in production)
//! hub.crt.pem hub.key.pem                the hub's server certificate
//! authorities/<CODE>.crt.pem / .key.pem   one client certificate per authority
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::identity::AuthorityCode;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// How long a certificate is valid, relative to now.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Days before now the certificate becomes valid.
    pub from_days_ago: i64,
    /// Days after now it expires; negative for an already expired one.
    pub until_days_from_now: i64,
}

impl Default for Validity {
    fn default() -> Self {
        Self {
            from_days_ago: 1,
            until_days_from_now: 365,
        }
    }
}

/// A certificate authority able to issue hub and authority certificates.
pub struct CertificateAuthority {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn apply(params: &mut CertificateParams, validity: Validity) {
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
    params.not_before = shift(now, -validity.from_days_ago);
    params.not_after = shift(now, validity.until_days_from_now);
}

/// `at` moved by a signed number of days (rcgen's dates are `time`'s; this
/// keeps that crate out of our dependencies).
fn shift<T>(at: T, days: i64) -> T
where
    T: std::ops::Add<std::time::Duration, Output = T>
        + std::ops::Sub<std::time::Duration, Output = T>,
{
    let span = std::time::Duration::from_secs(days.unsigned_abs() * 86_400);
    if days >= 0 { at + span } else { at - span }
}

impl CertificateAuthority {
    /// Makes a new self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Kith federation");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        apply(
            &mut params,
            Validity {
                from_days_ago: 1,
                until_days_from_now: 3650,
            },
        );
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let der = rustls_pem_to_der(cert_pem)?;
        let issuer = Issuer::from_ca_cert_der(&der.into(), key)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            issuer,
        })
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    fn issue(
        &self,
        mut params: CertificateParams,
        validity: Validity,
    ) -> Result<CertifiedKey, PkiError> {
        apply(&mut params, validity);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues the hub's server certificate for the given DNS names and IPs.
    pub fn issue_hub(&self, names: &[String]) -> Result<CertifiedKey, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for name in names {
            params
                .subject_alt_names
                .push(match name.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(name.clone().try_into()?),
                });
        }
        params
            .distinguished_name
            .push(DnType::CommonName, "kith-hub");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, Validity::default())
    }

    /// Issues an agent's client certificate naming `authority`.
    pub fn issue_authority(
        &self,
        authority: &AuthorityCode,
        validity: Validity,
    ) -> Result<CertifiedKey, PkiError> {
        let params = authority_params(authority, validity, random_serial()?)?;
        self.issue(params, validity)
    }

    /// The CA as rcgen signs with it (enrolment signs requests with it).
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

/// An agent certificate's (or request's) names: the one URI SAN the hub
/// reads the authority from, and the common name people read.
pub(crate) fn name_authority(
    params: &mut CertificateParams,
    authority: &AuthorityCode,
) -> Result<(), rcgen::Error> {
    params
        .subject_alt_names
        .push(SanType::URI(authority.uri().try_into()?));
    params
        .distinguished_name
        .push(DnType::CommonName, authority_common_name(authority));
    Ok(())
}

/// `kith-agent <CODE>`.
pub(crate) fn authority_common_name(authority: &AuthorityCode) -> String {
    format!("kith-agent {authority}")
}

/// 16 random bytes, the top bit clear (a positive serial, RFC 5280), so no
/// two certificates of one CA share a serial, even for the same key.
pub(crate) fn random_serial() -> Result<rcgen::SerialNumber, rcgen::Error> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// The fields of an agent's client certificate for `authority`, as the CA
/// sets them: one URI SAN, its common name, client authentication only,
/// `validity` from now, serial `serial`.
pub(crate) fn authority_params(
    authority: &AuthorityCode,
    validity: Validity,
    serial: rcgen::SerialNumber,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    name_authority(&mut params, authority)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(serial);
    apply(&mut params, validity);
    Ok(params)
}

fn rustls_pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| PkiError::Invalid(format!("CA certificate is not PEM: {e}")))
}

/// Where the files of a PKI folder are.
#[derive(Debug, Clone)]
pub struct PkiLayout {
    pub dir: PathBuf,
}

impl PkiLayout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key.pem")
    }
    pub fn hub_cert(&self) -> PathBuf {
        self.dir.join("hub.crt.pem")
    }
    pub fn hub_key(&self) -> PathBuf {
        self.dir.join("hub.key.pem")
    }
    pub fn authority_cert(&self, code: &AuthorityCode) -> PathBuf {
        self.dir.join("authorities").join(format!("{code}.crt.pem"))
    }
    pub fn authority_key(&self, code: &AuthorityCode) -> PathBuf {
        self.dir.join("authorities").join(format!("{code}.key.pem"))
    }
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    fs::write(path, contents).map_err(io)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    let _ = secret;
    Ok(())
}

/// Makes a development PKI in `dir`: a new CA, a hub certificate for
/// `hub_names`, and one certificate per authority. Refuses to overwrite an
/// existing CA.
pub fn init(
    dir: &Path,
    hub_names: &[String],
    authorities: &[AuthorityCode],
) -> Result<PkiLayout, PkiError> {
    let layout = PkiLayout::new(dir);
    if layout.ca_key().exists() {
        return Err(PkiError::Invalid(format!(
            "{} already exists; refusing to replace a CA (use `pki issue` to add authorities)",
            layout.ca_key().display()
        )));
    }
    let ca = CertificateAuthority::generate("Kith development federation CA")?;
    write(&layout.ca_cert(), &ca.cert_pem, false)?;
    write(&layout.ca_key(), &ca.key_pem(), true)?;
    let hub = ca.issue_hub(hub_names)?;
    write(&layout.hub_cert(), &hub.cert_pem, false)?;
    write(&layout.hub_key(), &hub.key_pem, true)?;
    for code in authorities {
        issue_into(&layout, &ca, code)?;
    }
    Ok(layout)
}

/// Issues a certificate for `code` with the CA kept in `layout`.
pub fn issue(layout: &PkiLayout, code: &AuthorityCode) -> Result<(), PkiError> {
    let read =
        |p: PathBuf| fs::read_to_string(&p).map_err(|source| PkiError::Io { path: p, source });
    let ca = CertificateAuthority::from_pem(&read(layout.ca_cert())?, &read(layout.ca_key())?)?;
    issue_into(layout, &ca, code)
}

fn issue_into(
    layout: &PkiLayout,
    ca: &CertificateAuthority,
    code: &AuthorityCode,
) -> Result<(), PkiError> {
    let leaf = ca.issue_authority(code, Validity::default())?;
    write(&layout.authority_cert(code), &leaf.cert_pem, false)?;
    write(&layout.authority_key(code), &leaf.key_pem, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    #[test]
    fn issued_certificates_name_their_authority() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let code = AuthorityCode::new("E08000003").unwrap();
        let leaf = ca.issue_authority(&code, Validity::default()).unwrap();
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        assert_eq!(AuthorityCode::from_certificate(&der).unwrap(), code);
    }

    #[test]
    fn a_hub_certificate_names_no_authority() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let hub = ca
            .issue_hub(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let der = CertificateDer::from_pem_slice(hub.cert_pem.as_bytes()).unwrap();
        assert_eq!(
            AuthorityCode::from_certificate(&der),
            Err(crate::identity::IdentityError::NoAuthority)
        );
    }

    #[test]
    fn init_refuses_to_replace_a_ca_and_issue_reuses_it() {
        let dir = std::env::temp_dir().join(format!("kith-pki-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = AuthorityCode::new("A1").unwrap();
        let layout = init(&dir, &["localhost".into()], std::slice::from_ref(&a)).unwrap();
        assert!(layout.authority_cert(&a).exists());
        assert!(init(&dir, &["localhost".into()], &[]).is_err());
        let b = AuthorityCode::new("B2").unwrap();
        issue(&layout, &b).unwrap();
        let der =
            CertificateDer::from_pem_slice(&fs::read(layout.authority_cert(&b)).unwrap()).unwrap();
        assert_eq!(AuthorityCode::from_certificate(&der).unwrap(), b);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_authority_codes_are_refused() {
        assert!(AuthorityCode::new("").is_err());
        assert!(AuthorityCode::new("has space").is_err());
        assert!(AuthorityCode::new("x".repeat(65)).is_err());
    }
}
