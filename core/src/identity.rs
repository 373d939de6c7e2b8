//! Who is calling: the authority named in a client certificate.
//!
//! Every agent certificate carries one URI subject alternative name of the
//! form `urn:kith:authority:<CODE>`, where `<CODE>` is the authority's ODS or
//! GSS code (for example `urn:kith:authority:E08000003`). The hub reads the
//! caller's authority from there and nowhere else; a certificate with no such
//! name, or with two, identifies nobody and is refused.

use std::fmt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The URI prefix naming an authority in a certificate.
pub const AUTHORITY_URI_PREFIX: &str = "urn:kith:authority:";

/// An authority's code, as read from its certificate.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct AuthorityCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the client certificate could not be parsed")]
    Unparseable,
    #[error(
        "the client certificate names no authority (expected one URI SAN {AUTHORITY_URI_PREFIX}<CODE>)"
    )]
    NoAuthority,
    #[error("the client certificate names more than one authority")]
    SeveralAuthorities,
    #[error("authority code {0:?} is not 1 to 64 characters of letters, digits, . _ -")]
    BadCode(String),
}

impl AuthorityCode {
    /// Checks the code's shape: 1 to 64 of `[A-Za-z0-9._-]`.
    pub fn new(code: impl Into<String>) -> Result<Self, IdentityError> {
        let code = code.into();
        let ok = !code.is_empty()
            && code.len() <= 64
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(code))
        } else {
            Err(IdentityError::BadCode(code))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI to put in the authority's certificate.
    pub fn uri(&self) -> String {
        format!("{AUTHORITY_URI_PREFIX}{}", self.0)
    }

    /// Reads the authority from a DER certificate.
    pub fn from_certificate(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Unparseable)?;
        let mut found = None;
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::URI(uri) = name
                    && let Some(code) = uri.strip_prefix(AUTHORITY_URI_PREFIX)
                {
                    if found.is_some() {
                        return Err(IdentityError::SeveralAuthorities);
                    }
                    found = Some(Self::new(code)?);
                }
            }
        }
        found.ok_or(IdentityError::NoAuthority)
    }
}

impl fmt::Display for AuthorityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
