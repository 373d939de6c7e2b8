//! What running Kith as a service needs in both binaries, the hub and the
//! agent: the Prometheus scrape endpoint on a listener of its own
//! ([`metrics_endpoint`]) and the seconds left on each certificate
//! ([`certificates`]), and online backups of a SQLite database with their
//! manifest ([`sqlite_backup`]). Each binary names its own metrics in its own
//! `metrics.rs`; this crate knows none of them but the certificate gauge.

pub mod certificates;
pub mod metrics_endpoint;
pub mod sqlite_backup;

pub use certificates::{CertificateExpiry, CertificateRole};
pub use metrics_endpoint::{MetricsConfig, MetricsEndpoint, MetricsError, Refresh};
