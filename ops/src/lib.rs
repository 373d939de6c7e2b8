//! What running Kith as a service needs in both binaries, the hub and the
//! agent: the Prometheus scrape endpoint on a listener of its own
//! ([`metrics_endpoint`]) and the seconds left on each certificate
//! ([`certificates`]), certificate rotation without a restart: which TLS
//! files are fit to serve ([`tls_files`]) and when they are loaded again
//! ([`tls_reload`]), online backups of a SQLite database with their
//! manifest ([`sqlite_backup`]), and log lines with optional OTLP trace
//! export and W3C trace context ([`telemetry`]). Each binary names its own
//! metrics in its own `metrics.rs`; this crate knows none of them but the
//! certificate gauge and the reload counter.

pub mod certificates;
pub mod metrics_endpoint;
pub mod sqlite_backup;
pub mod telemetry;
pub mod tls_files;
pub mod tls_reload;

pub use certificates::{CertificateExpiry, CertificateRole};
pub use metrics_endpoint::{MetricsConfig, MetricsEndpoint, MetricsError, Refresh};
