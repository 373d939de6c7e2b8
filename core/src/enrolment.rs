//! Enrolment the way a PKI expects: an authority's private key is made on
//! its own machine and never leaves it; only a certificate signing request
//! (PKCS#10) travels to the federation CA, which signs it after checking it.
//!
//! - [`request`] (behind `kith-agent pki request`) makes a new key and a CSR
//!   naming the authority (one URI SAN `urn:kith:authority:<CODE>`, common
//!   name `kith-agent <CODE>`); [`write_request`] writes them, the key with
//!   mode 0600 from its creation, refusing to replace an existing key.
//! - [`issue`] (behind `kith-hub pki issue CSR`) checks the request (a
//!   readable CSR, its signature made with the key it carries, exactly one
//!   authority named, no other name, a common name that agrees, no CA
//!   rights asked, the authority a member of the federation and, if the
//!   operator said which to expect, that one) and signs a client certificate
//!   whose every field is the CA's choice: only the public key and the
//!   authority come from the request.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, CertificateSigningRequestParams, KeyPair, SanType};
use x509_parser::prelude::FromDer;

use crate::identity::{AUTHORITY_URI_PREFIX, AuthorityCode};
use crate::pki::{CertificateAuthority, Validity};

/// A CSR larger than this is refused unread (a real one is about 500 bytes).
pub const MAX_CSR_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("the request is {0} bytes; a certificate signing request is at most {MAX_CSR_BYTES}")]
    TooLarge(usize),
    #[error("the request is not a readable PEM certificate signing request (PKCS#10)")]
    Unreadable,
    #[error(
        "the request's signature does not verify: it was not made with the key it carries, or it was altered"
    )]
    BadSignature,
    #[error("the request asks for an extension the federation CA does not grant: {0}")]
    Unsupported(String),
    #[error("the request names no authority (expected one URI SAN {AUTHORITY_URI_PREFIX}<CODE>)")]
    NoAuthority,
    #[error("the request names more than one authority")]
    SeveralAuthorities,
    #[error("the request's authority code: {0}")]
    BadCode(String),
    #[error(
        "the request carries a name besides its authority ({0}); an agent certificate names only its authority"
    )]
    OtherName(String),
    #[error("the request's common name {common_name:?} does not name its authority {authority}")]
    NameMismatch {
        common_name: String,
        authority: AuthorityCode,
    },
    #[error("the request names authority {found}, but {expected} was asked for (--authority)")]
    NotExpected {
        found: AuthorityCode,
        expected: AuthorityCode,
    },
    #[error("the request asks for a CA certificate; an agent certificate is never a CA")]
    AsksForCa,
    #[error(
        "authority {0} is not a member of the federation (not in the hub's [[authorities]]); add it there first"
    )]
    UnknownAuthority(AuthorityCode),
    #[error("signing failed: {0}")]
    Sign(#[from] rcgen::Error),
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// A new key and the request for its certificate, both PEM.
#[derive(Debug)]
pub struct Request {
    pub key_pem: String,
    pub csr_pem: String,
}

/// Makes a new key pair (ECDSA P-256) and a CSR naming `authority`.
pub fn request(authority: &AuthorityCode) -> Result<Request, EnrolError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    crate::pki::name_authority(&mut params, authority)?;
    let csr = params.serialize_request(&key)?;
    Ok(Request {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}

/// Where [`write_request`] put the files.
#[derive(Debug)]
pub struct RequestFiles {
    pub key: PathBuf,
    pub csr: PathBuf,
}

/// Makes a request for `authority` and writes `DIR/<CODE>.key.pem` (mode
/// 0600 from creation) and `DIR/<CODE>.csr.pem`. An existing key is never
/// replaced: it may be the one in use until the new certificate is installed.
pub fn write_request(dir: &Path, authority: &AuthorityCode) -> Result<RequestFiles, EnrolError> {
    let io = |path: &Path, e: std::io::Error| EnrolError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let files = RequestFiles {
        key: dir.join(format!("{authority}.key.pem")),
        csr: dir.join(format!("{authority}.csr.pem")),
    };
    let made = request(authority)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut key = options.open(&files.key).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            EnrolError::Io {
                path: files.key.clone(),
                reason: "already exists; it may be the key in use: choose another --out folder"
                    .into(),
            }
        } else {
            io(&files.key, e)
        }
    })?;
    key.write_all(made.key_pem.as_bytes())
        .and_then(|()| key.sync_all())
        .map_err(|e| io(&files.key, e))?;
    fs::write(&files.csr, made.csr_pem).map_err(|e| io(&files.csr, e))?;
    Ok(files)
}

/// What [`issue`] signed.
#[derive(Debug)]
pub struct Issued {
    pub authority: AuthorityCode,
    pub cert_pem: String,
}

/// Checks `csr_pem` and signs a client certificate for its authority with
/// `ca`. `is_member` is the federation's directory; `expected`, when given,
/// the authority the operator means to enrol.
pub fn issue(
    ca: &CertificateAuthority,
    csr_pem: &str,
    is_member: &dyn Fn(&AuthorityCode) -> bool,
    expected: Option<&AuthorityCode>,
    validity: Validity,
) -> Result<Issued, EnrolError> {
    if csr_pem.len() > MAX_CSR_BYTES {
        return Err(EnrolError::TooLarge(csr_pem.len()));
    }
    let request = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => EnrolError::BadSignature,
        rcgen::Error::UnsupportedExtension => EnrolError::Unsupported(
            "an extension other than names, key usage and basic constraints".into(),
        ),
        rcgen::Error::UnsupportedSignatureAlgorithm => {
            EnrolError::Unsupported("its signature algorithm".into())
        }
        _ => EnrolError::Unreadable,
    })?;
    if matches!(request.params.is_ca, rcgen::IsCa::Ca(_)) {
        return Err(EnrolError::AsksForCa);
    }

    // Exactly one name, the authority's.
    let mut authority = None;
    for name in &request.params.subject_alt_names {
        match name {
            SanType::URI(uri) => match uri.as_str().strip_prefix(AUTHORITY_URI_PREFIX) {
                Some(code) => {
                    if authority.is_some() {
                        return Err(EnrolError::SeveralAuthorities);
                    }
                    authority = Some(
                        AuthorityCode::new(code).map_err(|e| EnrolError::BadCode(e.to_string()))?,
                    );
                }
                None => return Err(EnrolError::OtherName(quote(uri.as_str()))),
            },
            other => return Err(EnrolError::OtherName(describe_san(other))),
        }
    }
    let authority = authority.ok_or(EnrolError::NoAuthority)?;
    if let Some(cn) = request_common_name(csr_pem)?
        && cn != crate::pki::authority_common_name(&authority)
        && cn != authority.as_str()
    {
        return Err(EnrolError::NameMismatch {
            common_name: quote(&cn),
            authority,
        });
    }
    if let Some(expected) = expected
        && *expected != authority
    {
        return Err(EnrolError::NotExpected {
            found: authority,
            expected: expected.clone(),
        });
    }
    if !is_member(&authority) {
        return Err(EnrolError::UnknownAuthority(authority));
    }

    // Every field the CA's; the request gives only its key.
    let signed = CertificateSigningRequestParams {
        params: crate::pki::authority_params(&authority, validity, crate::pki::random_serial()?)?,
        public_key: request.public_key,
    }
    .signed_by(ca.issuer())?;
    Ok(Issued {
        authority,
        cert_pem: signed.pem(),
    })
}

/// The subject's common name, if the request has one.
fn request_common_name(csr_pem: &str) -> Result<Option<String>, EnrolError> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|_| EnrolError::Unreadable)?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|_| EnrolError::Unreadable)?;
    let subject = &csr.certification_request_info.subject;
    match subject.iter_common_name().next() {
        None => Ok(None),
        Some(cn) => cn
            .as_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| EnrolError::Unreadable),
    }
}

/// A value from the request, shortened and escaped for an error line.
fn quote(value: &str) -> String {
    let short: String = value.chars().take(80).collect();
    let escaped = format!("{short:?}");
    if value.chars().count() > 80 {
        format!("{escaped}…")
    } else {
        escaped
    }
}

fn describe_san(san: &SanType) -> String {
    match san {
        SanType::DnsName(name) => format!("DNS name {}", quote(name.as_str())),
        SanType::IpAddress(ip) => format!("IP address {ip}"),
        SanType::Rfc822Name(mail) => format!("e-mail address {}", quote(mail.as_str())),
        SanType::URI(uri) => format!("URI {}", quote(uri.as_str())),
        _ => "another kind of name".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    fn code(c: &str) -> AuthorityCode {
        AuthorityCode::new(c).unwrap()
    }

    fn members(code: &AuthorityCode) -> bool {
        matches!(code.as_str(), "E08000003" | "RX1")
    }

    fn csr_with(key: &KeyPair, build: impl FnOnce(&mut CertificateParams)) -> String {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        build(&mut params);
        params.serialize_request(key).unwrap().pem().unwrap()
    }

    fn san(code: &str) -> SanType {
        SanType::URI(format!("{AUTHORITY_URI_PREFIX}{code}").try_into().unwrap())
    }

    #[test]
    fn a_good_request_is_signed_with_the_cas_fields_and_the_requests_key() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let a = code("E08000003");
        let made = request(&a).unwrap();
        let issued = issue(&ca, &made.csr_pem, &members, Some(&a), Validity::default()).unwrap();
        assert_eq!(issued.authority, a);
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        assert_eq!(AuthorityCode::from_certificate(&der).unwrap(), a);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        // The certificate carries the request's public key.
        let key = KeyPair::from_pem(&made.key_pem).unwrap();
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        // Two issues of one request get different serial numbers.
        let again = issue(&ca, &made.csr_pem, &members, None, Validity::default()).unwrap();
        let der2 = CertificateDer::from_pem_slice(again.cert_pem.as_bytes()).unwrap();
        let (_, cert2) = x509_parser::parse_x509_certificate(&der2).unwrap();
        assert_ne!(cert.raw_serial(), cert2.raw_serial());
    }

    #[test]
    fn bad_requests_are_refused_each_with_its_reason() {
        let ca = CertificateAuthority::generate("test CA").unwrap();
        let key = KeyPair::generate().unwrap();
        let a = code("E08000003");
        let good = request(&a).unwrap().csr_pem;

        let check = |pem: &str, expected: Option<&AuthorityCode>| {
            issue(&ca, pem, &members, expected, Validity::default()).unwrap_err()
        };

        assert!(matches!(check("junk", None), EnrolError::Unreadable));
        assert!(matches!(
            check(&good[..good.len() / 2], None),
            EnrolError::Unreadable
        ));
        assert!(matches!(
            check(&"A".repeat(MAX_CSR_BYTES + 1), None),
            EnrolError::TooLarge(_)
        ));

        // A signature that does not verify: one byte of the request body
        // changed (the authority code's last letter), PEM re-encoded.
        let der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(good.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        let mut tampered = der.clone();
        let at = tampered.windows(9).position(|w| w == b"E08000003").unwrap();
        tampered[at + 8] = b'4';
        let pem = pem_encode(&tampered);
        assert!(
            matches!(check(&pem, None), EnrolError::BadSignature),
            "{}",
            check(&pem, None)
        );

        let none = csr_with(&key, |p| {
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "kith-agent E08000003");
        });
        assert!(matches!(check(&none, None), EnrolError::NoAuthority));

        let two = csr_with(&key, |p| {
            p.subject_alt_names = vec![san("E08000003"), san("RX1")];
        });
        assert!(matches!(check(&two, None), EnrolError::SeveralAuthorities));

        let dns = csr_with(&key, |p| {
            p.subject_alt_names = vec![
                san("E08000003"),
                SanType::DnsName("hub.example".try_into().unwrap()),
            ];
        });
        let err = check(&dns, None);
        assert!(matches!(err, EnrolError::OtherName(_)), "{err}");
        assert!(err.to_string().contains("hub.example"), "{err}");

        let mismatched = csr_with(&key, |p| {
            p.subject_alt_names = vec![san("E08000003")];
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "kith-agent RX1");
        });
        let err = check(&mismatched, None);
        assert!(matches!(err, EnrolError::NameMismatch { .. }), "{err}");

        let err = check(&good, Some(&code("RX1")));
        assert!(matches!(err, EnrolError::NotExpected { .. }), "{err}");

        let stranger = request(&code("Z99")).unwrap().csr_pem;
        let err = check(&stranger, None);
        assert!(matches!(err, EnrolError::UnknownAuthority(_)), "{err}");
        assert!(err.to_string().contains("Z99"), "{err}");

        let ca_request = csr_with(&key, |p| {
            p.subject_alt_names = vec![san("E08000003")];
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        });
        assert!(matches!(check(&ca_request, None), EnrolError::AsksForCa));

        let bad_code = csr_with(&key, |p| {
            p.subject_alt_names = vec![san("has space")];
        });
        let err = check(&bad_code, None);
        assert!(
            matches!(err, EnrolError::BadCode(_) | EnrolError::Unreadable),
            "{err}"
        );
    }

    fn pem_encode(der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE REQUEST-----\n");
        out
    }

    #[test]
    fn the_key_is_written_owner_only_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = code("E08000003");
        let files = write_request(dir.path(), &a).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let key_before = fs::read_to_string(&files.key).unwrap();
        let csr = fs::read_to_string(&files.csr).unwrap();
        let ca = CertificateAuthority::generate("test CA").unwrap();
        issue(&ca, &csr, &members, Some(&a), Validity::default()).unwrap();
        let err = write_request(dir.path(), &a).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(fs::read_to_string(&files.key).unwrap(), key_before);
    }
}
