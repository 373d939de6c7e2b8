//! How long each certificate a service presents or trusts has left.
//!
//! X-Road's operators say an expired certificate is what stops their
//! services, so both binaries publish the seconds left on their own
//! certificate and on the soonest-expiring CA of their trust bundle as
//! `kith_certificate_expiry_seconds{certificate="own"|"ca"}`, computed at
//! each scrape from the `notAfter` of what is loaded now (a rotation
//! updates it), and warn [`WARN_BEFORE`] ahead.

use std::path::Path;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The gauge's name (the same in hub and agent).
pub const EXPIRY_GAUGE: &str = "kith_certificate_expiry_seconds";
/// Warn this long before a certificate expires.
pub const WARN_BEFORE: chrono::Duration = chrono::Duration::days(30);

/// Which certificate: the label value of [`EXPIRY_GAUGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateRole {
    /// The service's own certificate (the first of its chain).
    Own,
    /// The soonest-expiring certificate of the trust bundle.
    Ca,
}

impl CertificateRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::Ca => "ca",
        }
    }
}

/// The `notAfter` of the first certificate in a PEM file, or of the one
/// expiring soonest with `soonest`.
pub fn not_after(path: &Path, soonest: bool) -> Result<DateTime<Utc>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut dates = Vec::with_capacity(certs.len());
    for cert in &certs {
        dates.push(not_after_der(cert).map_err(|e| format!("{}: {e}", path.display()))?);
        if !soonest {
            break;
        }
    }
    dates
        .into_iter()
        .min()
        .ok_or_else(|| format!("{}: no certificate in the file", path.display()))
}

/// The `notAfter` of one DER certificate.
pub fn not_after_der(der: &[u8]) -> Result<DateTime<Utc>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not a readable X.509 certificate: {e}"))?;
    let t = cert.validity().not_after;
    DateTime::from_timestamp(t.timestamp(), 0)
        .ok_or_else(|| format!("validity date {t} is out of range"))
}

/// One certificate's role and `notAfter`.
type Dated = (CertificateRole, DateTime<Utc>);

/// The `notAfter` of each certificate in use, shared between whoever loads
/// certificates (start, rotation) and the scrape.
#[derive(Debug, Clone, Default)]
pub struct CertificateExpiry {
    dates: Arc<RwLock<Vec<Dated>>>,
}

impl CertificateExpiry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the own certificate and the trust bundle's dates.
    pub fn load(&self, cert: &Path, ca: &Path) -> Result<(), String> {
        let own = not_after(cert, false)?;
        let ca = not_after(ca, true)?;
        self.set(CertificateRole::Own, own);
        self.set(CertificateRole::Ca, ca);
        Ok(())
    }

    pub fn set(&self, role: CertificateRole, not_after: DateTime<Utc>) {
        let mut dates = self.dates.write().unwrap_or_else(|p| p.into_inner());
        dates.retain(|(r, _)| *r != role);
        dates.push((role, not_after));
    }

    pub fn get(&self, role: CertificateRole) -> Option<DateTime<Utc>> {
        let dates = self.dates.read().unwrap_or_else(|p| p.into_inner());
        dates.iter().find(|(r, _)| *r == role).map(|(_, d)| *d)
    }

    /// Seconds left on each, at `now` (negative once expired).
    pub fn seconds_left(&self, now: DateTime<Utc>) -> Vec<(CertificateRole, f64)> {
        let dates = self.dates.read().unwrap_or_else(|p| p.into_inner());
        dates
            .iter()
            .map(|(role, d)| (*role, (*d - now).num_seconds() as f64))
            .collect()
    }

    /// Those expiring within [`WARN_BEFORE`] of `now` (or expired).
    pub fn expiring(&self, now: DateTime<Utc>) -> Vec<(CertificateRole, DateTime<Utc>)> {
        let dates = self.dates.read().unwrap_or_else(|p| p.into_inner());
        dates
            .iter()
            .filter(|(_, d)| *d - now < WARN_BEFORE)
            .copied()
            .collect()
    }

    /// Sets [`EXPIRY_GAUGE`] for each; called by the scrape's refresh.
    pub fn record(&self, now: DateTime<Utc>) {
        for (role, seconds) in self.seconds_left(now) {
            metrics::gauge!(EXPIRY_GAUGE, "certificate" => role.as_str()).set(seconds);
        }
    }

    /// Describes [`EXPIRY_GAUGE`] (HELP and TYPE lines).
    pub fn describe() {
        metrics::describe_gauge!(
            EXPIRY_GAUGE,
            metrics::Unit::Seconds,
            "Seconds until the certificate expires (negative once expired): own = this service's, ca = the soonest in its trust bundle."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_expiring(year: i32) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 6, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    fn date(year: i32) -> DateTime<Utc> {
        chrono::NaiveDate::from_ymd_opt(year, 6, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    }

    #[test]
    fn the_own_certificate_is_the_first_and_the_ca_the_soonest() {
        let dir = std::env::temp_dir().join(format!("kith-ops-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let own = dir.join("own.pem");
        let ca = dir.join("ca.pem");
        std::fs::write(&own, pem_expiring(2031) + &pem_expiring(2029)).unwrap();
        std::fs::write(&ca, pem_expiring(2033) + &pem_expiring(2032)).unwrap();
        let expiry = CertificateExpiry::new();
        expiry.load(&own, &ca).unwrap();
        assert_eq!(expiry.get(CertificateRole::Own), Some(date(2031)));
        assert_eq!(expiry.get(CertificateRole::Ca), Some(date(2032)));
        let now = date(2031) - chrono::Duration::days(10);
        let left = expiry.seconds_left(now);
        assert!(
            left.contains(&(CertificateRole::Own, 10.0 * 86_400.0)),
            "{left:?}"
        );
        assert_eq!(
            expiry.expiring(now),
            vec![(CertificateRole::Own, date(2031))]
        );
        assert!(
            expiry
                .expiring(date(2031) - chrono::Duration::days(31))
                .is_empty()
        );

        std::fs::write(&ca, "not a certificate").unwrap();
        let err = expiry.load(&own, &ca).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        // A failed load changes nothing.
        assert_eq!(expiry.get(CertificateRole::Ca), Some(date(2032)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
