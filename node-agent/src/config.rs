//! The agent's configuration file.
//!
//! One TOML file says who the agent is (its authority), where the hub is, which
//! certificate proves it, and where the outbox and the drop folder live. It is
//! read once at start-up and checked whole, so a typo stops the agent with a
//! message naming the key, not an hour later in the middle of a publish.
//! Relative paths are taken from the config file's own folder, so a config
//! works the same whichever directory the operator starts the agent from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kith_core::identity::{AuthorityCode, IdentityError};
use kith_core::tls::TlsFiles;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// The most records one `PublishRecords` call may carry (see the proto).
pub const MAX_BATCH_SIZE: usize = kith_core::validate::MAX_BATCH;

/// Everything the agent needs to run. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The authority's code (ODS or GSS). Must be the one in the certificate.
    pub authority: String,
    /// Folder for the agent's own state: `outbox.db`.
    pub data_dir: PathBuf,
    /// Folder source systems drop `*.jsonl` and `*.csv` files into.
    pub drop_dir: PathBuf,
    pub hub: HubConfig,
    pub tls: TlsConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub publish: PublishConfig,
    #[serde(default)]
    pub link: LinkConfig,
    #[serde(default)]
    pub audit: AuditSection,
    /// This authority's own copy of the federation's policy set, checked
    /// before the agent gives the hub the detail of a record held at source.
    #[serde(default)]
    pub policy: Option<PolicySection>,
    /// Where notifications from the hub are delivered, besides the agent's
    /// own database.
    #[serde(default, skip_serializing_if = "NotificationsSection::is_empty")]
    pub notifications: NotificationsSection,
    /// The Prometheus scrape endpoint (`GET /metrics`), on by default at
    /// [`DEFAULT_METRICS_LISTEN`].
    #[serde(default)]
    pub metrics: kith_ops::MetricsConfig,
    /// The staff console (web pages for case workers, auditors and
    /// operators); not served when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<crate::console::ConsoleSection>,
}

/// The annotated example config (`kith-agent example-config`).
const EXAMPLE_TOML: &str = include_str!("../example-config.toml");

/// Where the agent serves `/metrics` unless `[metrics] listen` says
/// otherwise: loopback only (the hub's default is port 9464).
pub const DEFAULT_METRICS_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9465);

/// `[notifications]`: the sinks notifications from the hub (accesses to
/// this authority's records, break glass, revocations) are delivered to.
/// Every notification is stored in the agent's database first, whatever is
/// configured here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsSection {
    /// A file to append one JSON line per notification to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// An `http://` URL on this machine (127.0.0.1, ::1 or localhost) to
    /// POST each notification to as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

impl NotificationsSection {
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.webhook.is_none()
    }
}

/// `[policy]`: the agent's own copy of the policy set, and what this
/// authority is (policy decides on both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Folder holding the policy set (the same files as the hub's).
    pub dir: PathBuf,
    /// council, nhs_trust, police, fire or ambulance.
    pub kind: String,
    /// england, wales, scotland or northern_ireland.
    pub jurisdiction: String,
}

/// Where the hub is. Several addresses are tried in order, failing over to the
/// next when one does not answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// `https://host:port` URLs, in order of preference.
    pub addresses: Vec<String>,
    /// The name the hub's certificate must carry.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// How long to wait for a TCP and TLS connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

/// The federation CA bundle, this agent's certificate and its private key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// How often `kith-agent run` checks the three files for changes
    /// (SIGHUP reloads at once); new connections use the new files.
    #[serde(default = "default_tls_reload_interval_ms")]
    pub reload_interval_ms: u64,
}

fn default_tls_reload_interval_ms() -> u64 {
    DEFAULT_TLS_RELOAD_INTERVAL_MS
}

/// The default for `[tls] reload_interval_ms`: 5 s (three `stat` calls).
pub const DEFAULT_TLS_RELOAD_INTERVAL_MS: u64 = 5000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// How often the drop folder is scanned.
    pub poll_interval_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Records per `PublishRecords` call, 1 to 1,000.
    pub batch_size: usize,
    /// First retry delay after a failed publish.
    pub backoff_initial_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
    /// Deadline of one publish call.
    pub request_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkConfig {
    /// How often the agent sends a heartbeat on its link to the hub.
    pub heartbeat_interval_seconds: u64,
}

/// What the auditor's commands (`kith-agent audit ...`) trust.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// The audit log's verifier key, a C2SP vkey file (`pki init` writes
    /// `PKI/audit-log.vkey`). Checkpoints are checked against this key; without
    /// it they are checked only against the key the hub itself sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vkey: Option<PathBuf>,
}

fn default_server_name() -> String {
    "localhost".to_string()
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 500,
        }
    }
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            request_timeout_ms: 10_000,
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_seconds: 10,
        }
    }
}

/// Why a configuration could not be used. Each names the file or the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("cannot write config file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serialise the config: {0}")]
    Serialise(#[from] toml::ser::Error),
    #[error("{what} {path}: {reason}")]
    Certificate {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl AgentConfig {
    /// A config with the defaults for everything but identity, hub and paths.
    pub fn new(
        authority: impl Into<String>,
        hub_addresses: Vec<String>,
        tls: TlsFiles,
        data_dir: impl Into<PathBuf>,
        drop_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            authority: authority.into(),
            data_dir: data_dir.into(),
            drop_dir: drop_dir.into(),
            hub: HubConfig {
                addresses: hub_addresses,
                server_name: default_server_name(),
                connect_timeout_ms: default_connect_timeout_ms(),
            },
            tls: TlsConfig {
                ca: tls.ca,
                cert: tls.cert,
                key: tls.key,
                reload_interval_ms: DEFAULT_TLS_RELOAD_INTERVAL_MS,
            },
            ingest: IngestConfig::default(),
            publish: PublishConfig::default(),
            link: LinkConfig::default(),
            audit: AuditSection::default(),
            policy: None,
            notifications: NotificationsSection::default(),
            metrics: kith_ops::MetricsConfig::default(),
            console: None,
        }
    }

    /// The example an operator starts from (also `kith-agent example-config`).
    pub fn example() -> Self {
        let mut config = Self::new(
            "E08000003",
            vec!["https://127.0.0.1:7443".to_string()],
            TlsFiles {
                // The layout `kith_core::pki` writes.
                ca: "pki/ca.crt.pem".into(),
                cert: "pki/authorities/E08000003.crt.pem".into(),
                key: "pki/authorities/E08000003.key.pem".into(),
            },
            "data",
            "drop",
        );
        config.audit.vkey = Some("pki/audit-log.vkey".into());
        // No [console]: it needs a certificate browsers trust, which the dev
        // PKI does not make; docs/console.md shows the section to add.
        config
    }

    /// The example config as annotated TOML text (`node-agent/example-config.toml`:
    /// [`Self::example`] with a comment on every key; a test holds the two equal).
    pub fn example_toml() -> String {
        EXAMPLE_TOML.to_string()
    }

    /// Writes the example config to `path`.
    pub fn write_example(path: &Path) -> Result<(), ConfigError> {
        Self::example().write(path)
    }

    /// Writes this config as TOML to `path`.
    pub fn write(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self)?;
        std::fs::write(path, text).map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads, parses and checks a config file; relative paths in it are
    /// resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses and checks TOML text; paths are left as written.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Makes every relative path absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.data_dir,
            &mut self.drop_dir,
            &mut self.tls.ca,
            &mut self.tls.cert,
            &mut self.tls.key,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(policy) = &mut self.policy
            && policy.dir.is_relative()
        {
            policy.dir = base.join(&policy.dir);
        }
        if let Some(console) = &mut self.console {
            console.resolve_paths(base);
        }
        for p in [&mut self.audit.vkey, &mut self.notifications.file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks values that parse but make no sense.
    pub fn check(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                reason: reason.into(),
            }
        }
        self.authority_code()
            .map_err(|e| invalid("authority", e.to_string()))?;
        if self.hub.addresses.is_empty() {
            return Err(invalid("hub.addresses", "needs at least one address"));
        }
        for address in &self.hub.addresses {
            if !address.starts_with("https://") {
                return Err(invalid(
                    "hub.addresses",
                    format!(
                        "{address:?} must be an https:// URL (the hub is reached over mutual TLS)"
                    ),
                ));
            }
            if address.parse::<tonic::transport::Uri>().is_err() {
                return Err(invalid(
                    "hub.addresses",
                    format!("{address:?} is not a URL"),
                ));
            }
        }
        if self.hub.server_name.trim().is_empty() {
            return Err(invalid("hub.server_name", "must not be empty"));
        }
        if self.hub.connect_timeout_ms == 0 {
            return Err(invalid("hub.connect_timeout_ms", "must be more than 0"));
        }
        if self.ingest.poll_interval_ms == 0 {
            return Err(invalid("ingest.poll_interval_ms", "must be more than 0"));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.publish.batch_size) {
            return Err(invalid(
                "publish.batch_size",
                format!(
                    "must be 1 to {MAX_BATCH_SIZE}, found {}",
                    self.publish.batch_size
                ),
            ));
        }
        if self.publish.backoff_initial_ms == 0 {
            return Err(invalid("publish.backoff_initial_ms", "must be more than 0"));
        }
        if self.publish.backoff_max_ms < self.publish.backoff_initial_ms {
            return Err(invalid(
                "publish.backoff_max_ms",
                "must not be less than publish.backoff_initial_ms",
            ));
        }
        if self.publish.request_timeout_ms == 0 {
            return Err(invalid("publish.request_timeout_ms", "must be more than 0"));
        }
        if self.link.heartbeat_interval_seconds == 0 {
            return Err(invalid(
                "link.heartbeat_interval_seconds",
                "must be more than 0",
            ));
        }
        if let Some(url) = &self.notifications.webhook {
            crate::webhook::Webhook::parse(url)
                .map_err(|reason| invalid("notifications.webhook", reason))?;
        }
        if self
            .notifications
            .file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            return Err(invalid("notifications.file", "must not be empty"));
        }
        if let Some(console) = &self.console {
            console.check()?;
        }
        Ok(())
    }

    /// The authority as a checked code.
    pub fn authority_code(&self) -> Result<AuthorityCode, IdentityError> {
        AuthorityCode::new(self.authority.clone())
    }

    /// The TLS files in the shape `kith_core::tls` wants.
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls.ca.clone(),
            cert: self.tls.cert.clone(),
            key: self.tls.key.clone(),
        }
    }

    /// Where the outbox database lives.
    pub fn outbox_path(&self) -> PathBuf {
        self.data_dir.join("outbox.db")
    }

    /// Checks that the certificate names this config's authority, so an agent
    /// with a mismatched pair stops at start-up instead of having every
    /// publish refused by the hub.
    pub fn check_certificate(&self) -> Result<(), ConfigError> {
        let cert = self.read_certificate()?;
        self.check_certificate_names_authority(&cert)
    }

    /// [`AgentConfig::check_certificate`], and that the certificate is valid
    /// at `now`: an expired or not yet valid certificate is named as such,
    /// with its dates, rather than left to fail the TLS handshake with a
    /// bare transport error.
    pub fn check_certificate_at(&self, now: DateTime<Utc>) -> Result<(), ConfigError> {
        let cert = self.read_certificate()?;
        self.check_certificate_names_authority(&cert)?;
        let validity =
            certificate_validity(&cert).map_err(|reason| self.bad_certificate(reason))?;
        let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        if now > validity.not_after {
            return Err(self.bad_certificate(format!(
                "expired on {} (notAfter); ask the federation CA for a new certificate",
                stamp(validity.not_after)
            )));
        }
        if now < validity.not_before {
            return Err(self.bad_certificate(format!(
                "not valid until {} (notBefore); check this machine's clock, or wait",
                stamp(validity.not_before)
            )));
        }
        Ok(())
    }

    /// The dates between which the certificate is valid.
    pub fn certificate_validity(&self) -> Result<CertificateValidity, ConfigError> {
        let cert = self.read_certificate()?;
        certificate_validity(&cert).map_err(|reason| self.bad_certificate(reason))
    }

    fn bad_certificate(&self, reason: String) -> ConfigError {
        ConfigError::Certificate {
            what: "certificate",
            path: self.tls.cert.clone(),
            reason,
        }
    }

    fn read_certificate(&self) -> Result<CertificateDer<'static>, ConfigError> {
        CertificateDer::from_pem_file(&self.tls.cert)
            .map_err(|e| self.bad_certificate(e.to_string()))
    }

    fn check_certificate_names_authority(
        &self,
        cert: &CertificateDer<'_>,
    ) -> Result<(), ConfigError> {
        let named = AuthorityCode::from_certificate(cert)
            .map_err(|e| self.bad_certificate(e.to_string()))?;
        if named.as_str() != self.authority {
            return Err(self.bad_certificate(format!(
                "names authority {named} but config key `authority` is {}",
                self.authority
            )));
        }
        Ok(())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.ingest.poll_interval_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.hub.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.publish.request_timeout_ms)
    }

    pub fn tls_reload_interval(&self) -> Duration {
        Duration::from_millis(self.tls.reload_interval_ms.max(10))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.link.heartbeat_interval_seconds)
    }
}

/// When a certificate may be used: its `notBefore` and `notAfter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CertificateValidity {
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

fn certificate_validity(der: &[u8]) -> Result<CertificateValidity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not a readable X.509 certificate: {e}"))?;
    let validity = cert.validity();
    let at = |t: &x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(t.timestamp(), 0)
            .ok_or_else(|| format!("validity date {t} is out of range"))
    };
    Ok(CertificateValidity {
        not_before: at(&validity.not_before)?,
        not_after: at(&validity.not_after)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_round_trips_through_toml() {
        let text = AgentConfig::example_toml();
        assert_eq!(AgentConfig::parse(&text).unwrap(), AgentConfig::example());
    }

    #[test]
    fn sections_with_defaults_may_be_left_out() {
        let text = r#"
            authority = "E08000003"
            data_dir = "d"
            drop_dir = "in"
            [hub]
            addresses = ["https://a:1", "https://b:2"]
            [tls]
            ca = "ca.pem"
            cert = "c.pem"
            key = "c.key"
        "#;
        let c = AgentConfig::parse(text).unwrap();
        assert_eq!(c.publish.batch_size, 500);
        assert_eq!(c.hub.server_name, "localhost");
        assert_eq!(c.hub.addresses.len(), 2);
        assert_eq!(c.link.heartbeat_interval_seconds, 10);
        assert_eq!(c.audit.vkey, None);
    }

    #[test]
    fn a_webhook_must_be_plain_http_on_this_machine() {
        let with = |sink: &str| {
            AgentConfig::parse(&format!(
                "{}\n[notifications]\n{sink}\n",
                AgentConfig::example_toml()
            ))
        };
        for ok in [
            r#"webhook = "http://127.0.0.1:9000/kith""#,
            r#"webhook = "http://[::1]:9000/""#,
            r#"webhook = "http://localhost:8080/notify""#,
            r#"file = "notifications.jsonl""#,
        ] {
            with(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            (r#"webhook = "http://10.0.0.5:9000/""#, "loopback"),
            (r#"webhook = "http://example.org/""#, "loopback"),
            (r#"webhook = "https://127.0.0.1:9000/""#, "http://"),
            (r#"webhook = "not a url""#, "URL"),
            (r#"file = """#, "empty"),
            (r#"webhok = "http://127.0.0.1:1/""#, "webhok"),
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(
                err.contains("notifications") || err.contains("webhok"),
                "{bad}: {err}"
            );
        }
        let mut c = with(r#"file = "n.jsonl""#).unwrap();
        c.resolve_paths(Path::new("/etc/kith"));
        assert_eq!(
            c.notifications.file.as_deref(),
            Some(Path::new("/etc/kith/n.jsonl"))
        );
    }

    #[test]
    fn the_audit_vkey_is_resolved_against_the_config_folder() {
        let mut c = AgentConfig::example();
        assert!(AgentConfig::example_toml().contains("[audit]"));
        c.resolve_paths(Path::new("/etc/kith"));
        assert_eq!(
            c.audit.vkey.as_deref(),
            Some(Path::new("/etc/kith/pki/audit-log.vkey"))
        );
        let err = AgentConfig::parse(&AgentConfig::example_toml().replace("vkey =", "vkeyy ="))
            .unwrap_err();
        assert!(err.to_string().contains("vkeyy"), "{err}");
    }
}
