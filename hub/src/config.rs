//! The hub's configuration file (TOML).
//!
//! ```toml
//! listen = "127.0.0.1:7443"
//! database_url = "sqlite://kith-hub.db"   # relative paths: beside this file;
//!                                         # or "postgres://user@host:5432/kith"
//! jurisdiction = "england"                # where this hub runs
//! policy_dir = "policies"                 # Cedar schema, policies, agreements
//!
//! [audit]
//! signing_key = "pki/audit-log.skey"      # Ed25519, Go note format
//! checkpoint_interval_ms = 1000
//!
//! [limits]                               # every key optional; see docs/operators.md
//! tls_handshake_timeout_ms = 10000
//! request_timeout_ms = 60000
//!
//! [tls]
//! ca = "pki/ca.crt.pem"
//! cert = "pki/hub.crt.pem"
//! key = "pki/hub.key.pem"
//!
//! [[authorities]]                         # the federation's members
//! code = "E08000003"
//! name = "Manchester City Council"
//! kind = "council"
//! jurisdiction = "england"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kith_core::tls::TlsFiles;
use serde::{Deserialize, Serialize};

use crate::directory::Member;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `sqlite://path` or `postgres://user@host:port/db` (also
    /// `postgresql://`). An in-memory SQLite database is refused.
    pub database_url: String,
    /// The jurisdiction the hub runs in; data-location policy reads it.
    pub jurisdiction: String,
    /// Folder holding the policy set.
    pub policy_dir: PathBuf,
    /// How long a query waits for a custodian's agent to send the detail of
    /// a record held at source before answering without it.
    #[serde(default = "default_detail_timeout_ms")]
    pub detail_timeout_ms: u64,
    /// How often the policy folder is checked for changes (SIGHUP reloads at once).
    #[serde(default = "default_policy_reload_interval_ms")]
    pub policy_reload_interval_ms: u64,
    /// How often the `[tls]` files are checked for changes (SIGHUP reloads
    /// at once): a rotated certificate is served to new handshakes.
    #[serde(default = "default_tls_reload_interval_ms")]
    pub tls_reload_interval_ms: u64,
    /// Break glass, access notifications, matching and retention.
    #[serde(default)]
    pub sharing: SharingConfig,
    /// Transport limits: timeouts, streams, keepalive, message sizes.
    #[serde(default)]
    pub limits: LimitsConfig,
    pub tls: TlsFiles,
    pub audit: AuditConfig,
    /// The Prometheus scrape endpoint (`GET /metrics`), on by default at
    /// [`DEFAULT_METRICS_LISTEN`].
    #[serde(default)]
    pub metrics: kith_ops::MetricsConfig,
    /// The authorities that belong to the federation.
    #[serde(default)]
    pub authorities: Vec<Member>,
}

/// `[metrics]` on a free loopback port (the demo, tests).
pub fn metrics_on_any_loopback_port() -> kith_ops::MetricsConfig {
    kith_ops::MetricsConfig::any_loopback_port()
}

/// Where the hub serves `/metrics` unless `[metrics] listen` says otherwise:
/// loopback only, so nothing outside the machine scrapes it by default.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

/// The `[sharing]` section: how the hub handles break glass, access
/// notifications, demographic matching and retention. Every key has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingConfig {
    /// How long a break-glass access lasts for its user and subject.
    #[serde(default = "default_break_glass_window_minutes")]
    pub break_glass_window_minutes: u64,
    /// Relationship types whose custodian is told of every access (as
    /// NHS England's CP-IS does for child protection plans).
    #[serde(default = "default_access_notification_types")]
    pub access_notification_types: Vec<String>,
    /// A JSON file of demographic matching rules (see docs/directives.md);
    /// the built-in `kith-match-1` rules when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_rules: Option<PathBuf>,
    /// How often records past their `retain_until` date are purged.
    #[serde(default = "default_retention_purge_interval_ms")]
    pub retention_purge_interval_ms: u64,
    /// How long a subscription lasts when it names no end date, in days.
    #[serde(default = "default_subscription_default_days")]
    pub subscription_default_days: u32,
    /// The longest a subscription may last, in days.
    #[serde(default = "default_subscription_max_days")]
    pub subscription_max_days: u32,
}

fn default_subscription_default_days() -> u32 {
    kith_core::subscription::SubscriptionLimits::default().default_days
}

fn default_subscription_max_days() -> u32 {
    kith_core::subscription::SubscriptionLimits::default().max_days
}

impl Default for SharingConfig {
    fn default() -> Self {
        Self {
            break_glass_window_minutes: DEFAULT_BREAK_GLASS_WINDOW_MINUTES,
            access_notification_types: default_access_notification_types(),
            match_rules: None,
            retention_purge_interval_ms: DEFAULT_RETENTION_PURGE_INTERVAL_MS,
            subscription_default_days: default_subscription_default_days(),
            subscription_max_days: default_subscription_max_days(),
        }
    }
}

/// The `[limits]` section: what one connection, call or message may cost
/// the hub. Every key has a default; see docs/operators.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// A TLS handshake not finished in this time is dropped.
    pub tls_handshake_timeout_ms: u64,
    /// A call that has not answered in this time ends with
    /// `CANCELLED`/`DEADLINE_EXCEEDED`. Covers reading the request and
    /// running the handler; an agent link's stream, once open, is not cut
    /// (it has its own heartbeat timeout).
    pub request_timeout_ms: u64,
    /// Concurrent HTTP/2 streams (calls) one connection may have open.
    pub max_concurrent_streams: u32,
    /// How often the hub pings an idle HTTP/2 connection; one that does
    /// not answer within `http2_keepalive_timeout_ms` is closed.
    pub http2_keepalive_interval_ms: u64,
    pub http2_keepalive_timeout_ms: u64,
    /// TCP keepalive on accepted connections.
    pub tcp_keepalive_ms: u64,
    /// The largest request message, in bytes, per service.
    pub max_record_message_bytes: usize,
    pub max_query_message_bytes: usize,
    pub max_audit_message_bytes: usize,
    pub max_link_message_bytes: usize,
    /// The most elements one repeated field may hold in one request
    /// message, checked before the message is decoded.
    pub max_repeated_elements: usize,
    /// The most submessages and repeated elements one request message may
    /// hold in all, checked before it is decoded.
    pub max_message_elements: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            tls_handshake_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            max_concurrent_streams: 256,
            http2_keepalive_interval_ms: 30_000,
            http2_keepalive_timeout_ms: 20_000,
            tcp_keepalive_ms: 60_000,
            max_record_message_bytes: 4 << 20,
            max_query_message_bytes: 256 << 10,
            max_audit_message_bytes: 256 << 10,
            max_link_message_bytes: 1 << 20,
            max_repeated_elements: 1000,
            max_message_elements: 100_000,
        }
    }
}

impl LimitsConfig {
    /// Checks each limit is within its range; errors name the key.
    pub fn check(&self) -> Result<(), String> {
        let ranges: [(&str, u64, u64, u64); 12] = [
            (
                "tls_handshake_timeout_ms",
                self.tls_handshake_timeout_ms,
                100,
                300_000,
            ),
            (
                "request_timeout_ms",
                self.request_timeout_ms,
                100,
                3_600_000,
            ),
            (
                "max_concurrent_streams",
                self.max_concurrent_streams.into(),
                1,
                65_536,
            ),
            (
                "http2_keepalive_interval_ms",
                self.http2_keepalive_interval_ms,
                1000,
                3_600_000,
            ),
            (
                "http2_keepalive_timeout_ms",
                self.http2_keepalive_timeout_ms,
                1000,
                600_000,
            ),
            ("tcp_keepalive_ms", self.tcp_keepalive_ms, 1000, 3_600_000),
            (
                "max_record_message_bytes",
                self.max_record_message_bytes as u64,
                1024,
                64 << 20,
            ),
            (
                "max_query_message_bytes",
                self.max_query_message_bytes as u64,
                1024,
                64 << 20,
            ),
            (
                "max_audit_message_bytes",
                self.max_audit_message_bytes as u64,
                1024,
                64 << 20,
            ),
            (
                "max_link_message_bytes",
                self.max_link_message_bytes as u64,
                1024,
                64 << 20,
            ),
            (
                "max_repeated_elements",
                self.max_repeated_elements as u64,
                kith_core::validate::MAX_BATCH as u64,
                1_000_000,
            ),
            (
                "max_message_elements",
                self.max_message_elements as u64,
                1000,
                10_000_000,
            ),
        ];
        for (key, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(format!("limits.{key}: {value} is outside {low} to {high}"));
            }
        }
        Ok(())
    }

    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls_handshake_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The wire limits of a service whose messages are at most `max_bytes`.
    pub fn wire(&self, max_bytes: usize) -> WireLimits {
        WireLimits {
            max_message_bytes: max_bytes,
            max_repeated: self.max_repeated_elements,
            max_elements: self.max_message_elements,
        }
    }
}

/// The verifiable audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The log's Ed25519 signing key, in the Go `note` text format
    /// (`PRIVATE+KEY+<origin>+<key id>+<key>`); its name is the log's origin.
    pub signing_key: PathBuf,
    /// How often new entries are sequenced and a checkpoint signed.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
}

fn default_detail_timeout_ms() -> u64 {
    DEFAULT_DETAIL_TIMEOUT_MS
}

/// The default for `detail_timeout_ms`: 2 s.
pub const DEFAULT_DETAIL_TIMEOUT_MS: u64 = 2000;

fn default_policy_reload_interval_ms() -> u64 {
    2000
}

/// The default for `policy_reload_interval_ms`.
pub const DEFAULT_POLICY_RELOAD_INTERVAL_MS: u64 = 2000;

fn default_tls_reload_interval_ms() -> u64 {
    DEFAULT_TLS_RELOAD_INTERVAL_MS
}

/// The default for `tls_reload_interval_ms`: 5 s (three `stat` calls).
pub const DEFAULT_TLS_RELOAD_INTERVAL_MS: u64 = 5000;

fn default_break_glass_window_minutes() -> u64 {
    DEFAULT_BREAK_GLASS_WINDOW_MINUTES
}

/// The default for `break_glass_window_minutes`: 4 hours.
pub const DEFAULT_BREAK_GLASS_WINDOW_MINUTES: u64 = 240;

/// The default for `access_notification_types`.
pub const DEFAULT_ACCESS_NOTIFICATION_TYPES: &[&str] =
    &["child_protection_plan", "looked_after_child"];

fn default_access_notification_types() -> Vec<String> {
    DEFAULT_ACCESS_NOTIFICATION_TYPES
        .iter()
        .map(|t| t.to_string())
        .collect()
}

fn default_retention_purge_interval_ms() -> u64 {
    DEFAULT_RETENTION_PURGE_INTERVAL_MS
}

/// The default for `retention_purge_interval_ms`: hourly.
pub const DEFAULT_RETENTION_PURGE_INTERVAL_MS: u64 = 3_600_000;

fn default_checkpoint_interval_ms() -> u64 {
    1000
}

impl AuditConfig {
    pub fn new(signing_key: PathBuf) -> Self {
        Self {
            signing_key,
            checkpoint_interval_ms: default_checkpoint_interval_ms(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl HubConfig {
    /// Reads a config file; relative paths in it are taken from its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut config: HubConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.policy_dir);
        fix(&mut self.tls.ca);
        fix(&mut self.tls.cert);
        fix(&mut self.tls.key);
        fix(&mut self.audit.signing_key);
        if let Some(rules) = &mut self.sharing.match_rules {
            fix(rules);
        }
        // `sqlite://PATH` and `sqlite:PATH` both name a file; a relative
        // one is beside this config, not wherever the hub was started.
        let path = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"));
        if let Some(rest) = path
            && !rest.starts_with('/')
            && !rest.starts_with(':')
            && !rest.is_empty()
        {
            self.database_url = format!("sqlite://{}", base.join(rest).display());
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for m in &self.authorities {
            kith_core::AuthorityCode::new(m.code.clone())
                .map_err(|e| format!("authorities: {e}"))?;
            if !seen.insert(&m.code) {
                return Err(format!("authorities: {} is listed twice", m.code));
            }
        }
        crate::store::StoreKind::of_url(&self.database_url)?;
        self.limits.check()?;
        self.settings()?;
        Ok(())
    }

    /// The hub's behaviour settings, checked.
    pub fn settings(&self) -> Result<Settings, String> {
        self.sharing.settings()
    }

    /// The annotated example an operator starts from (`kith-hub
    /// example-config`): every key with its default and what it does.
    pub const EXAMPLE: &'static str = include_str!("../example-config.toml");

    /// Parses a config from TOML text without resolving paths or touching
    /// files (what `load` does after reading the file).
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: HubConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Writes the config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serialises")
    }
}

impl SharingConfig {
    /// The hub's behaviour settings, checked; errors name the key.
    pub fn settings(&self) -> Result<Settings, String> {
        if self.break_glass_window_minutes == 0 || self.break_glass_window_minutes > 7 * 24 * 60 {
            return Err(format!(
                "sharing.break_glass_window_minutes: {} is outside 1 to 10080 (a week)",
                self.break_glass_window_minutes
            ));
        }
        let mut types = std::collections::HashSet::new();
        for (i, t) in self.access_notification_types.iter().enumerate() {
            let parsed = t
                .parse::<kith_core::RelationshipType>()
                .map_err(|e| format!("sharing.access_notification_types[{i}]: {e}"))?;
            types.insert(parsed);
        }
        let match_rules = match &self.match_rules {
            None => kith_core::matching::MatchRules::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("sharing.match_rules: cannot read {}: {e}", path.display())
                })?;
                kith_core::matching::MatchRules::from_json(&text)
                    .map_err(|e| format!("sharing.match_rules: {}: {e}", path.display()))?
            }
        };
        if self.subscription_max_days == 0 || self.subscription_max_days > 3650 {
            return Err(format!(
                "sharing.subscription_max_days: {} is outside 1 to 3650 (ten years)",
                self.subscription_max_days
            ));
        }
        if self.subscription_default_days == 0
            || self.subscription_default_days > self.subscription_max_days
        {
            return Err(format!(
                "sharing.subscription_default_days: {} is outside 1 to subscription_max_days ({})",
                self.subscription_default_days, self.subscription_max_days
            ));
        }
        Ok(Settings {
            break_glass_window: chrono::Duration::minutes(self.break_glass_window_minutes as i64),
            access_notification_types: types,
            match_rules,
            subscription_limits: kith_core::subscription::SubscriptionLimits {
                default_days: self.subscription_default_days,
                max_days: self.subscription_max_days,
            },
            ..Settings::default()
        })
    }
}

/// How long a break-glass access lasts, unless configured otherwise.
pub const DEFAULT_BREAK_GLASS_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(4 * 60 * 60);

/// The wire limits of one service, as `[limits]` sets them; enforced by
/// `grpc::guard` before a message is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// The largest encoded message accepted, in bytes.
    pub max_message_bytes: usize,
    /// The most elements any one repeated field may hold in one message.
    pub max_repeated: usize,
    /// The most submessages and repeated elements one message may hold in all.
    pub max_elements: usize,
}

/// How the hub behaves where the configuration may choose.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a break-glass access lasts for its user and subject.
    pub break_glass_window: chrono::Duration,
    /// Relationship types whose custodian is told of every access.
    pub access_notification_types: std::collections::HashSet<kith_core::RelationshipType>,
    /// Demographic matching rules (versioned).
    pub match_rules: kith_core::matching::MatchRules,
    /// How long a non-member's refusals are coalesced into one entry.
    pub refusal_window: std::time::Duration,
    /// A subscription's default and longest duration.
    pub subscription_limits: kith_core::subscription::SubscriptionLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            break_glass_window: chrono::Duration::from_std(DEFAULT_BREAK_GLASS_WINDOW)
                .expect("four hours fits"),
            access_notification_types: DEFAULT_ACCESS_NOTIFICATION_TYPES
                .iter()
                .map(|t| t.parse().expect("default types are codes"))
                .collect(),
            match_rules: kith_core::matching::MatchRules::default(),
            refusal_window: crate::refusals::DEFAULT_WINDOW,
            subscription_limits: kith_core::subscription::SubscriptionLimits::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &Path, text: &str) -> Result<HubConfig, ConfigError> {
        let path = dir.join("hub.toml");
        std::fs::write(&path, text).unwrap();
        HubConfig::load(&path)
    }

    const BASE: &str = r#"listen = "127.0.0.1:0"
jurisdiction = "england"
policy_dir = "policies"

[audit]
signing_key = "audit-log.skey"
"#;

    #[test]
    fn a_relative_sqlite_path_is_taken_from_the_config_folder_with_or_without_slashes() {
        let dir = tempfile::tempdir().unwrap();
        let tls = "[tls]\nca = \"ca.pem\"\ncert = \"hub.pem\"\nkey = \"hub.key\"\n";
        for url in ["sqlite://kith.db", "sqlite:kith.db"] {
            let text = format!("database_url = \"{url}\"\n{BASE}{tls}");
            let config = load(dir.path(), &text).unwrap();
            assert_eq!(
                config.database_url,
                format!("sqlite://{}", dir.path().join("kith.db").display()),
                "{url}"
            );
        }
    }

    #[test]
    fn an_unknown_tls_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "database_url = \"sqlite://kith.db\"\n{BASE}[tls]\nca = \"ca.pem\"\ncert = \"hub.pem\"\nkey = \"hub.key\"\ncrl = \"revoked.pem\"\n"
        );
        let Err(ConfigError::Parse { source, .. }) = load(dir.path(), &text) else {
            panic!("an unknown [tls] key was accepted");
        };
        assert!(
            source.to_string().contains("unknown field `crl`"),
            "{source}"
        );
    }

    #[test]
    fn the_example_config_parses_and_states_the_defaults() {
        let example = HubConfig::parse(HubConfig::EXAMPLE).expect("the example parses");
        assert_eq!(example.limits, LimitsConfig::default());
        let sharing = SharingConfig::default();
        assert_eq!(
            example.sharing.break_glass_window_minutes,
            sharing.break_glass_window_minutes
        );
        assert_eq!(
            example.sharing.access_notification_types,
            sharing.access_notification_types
        );
        assert_eq!(
            example.sharing.retention_purge_interval_ms,
            sharing.retention_purge_interval_ms
        );
        assert_eq!(
            example.sharing.subscription_default_days,
            sharing.subscription_default_days
        );
        assert_eq!(
            example.sharing.subscription_max_days,
            sharing.subscription_max_days
        );
        assert_eq!(example.audit.checkpoint_interval_ms, 1000);
        assert_eq!(
            example.tls_reload_interval_ms,
            DEFAULT_TLS_RELOAD_INTERVAL_MS
        );
        assert_eq!(example.authorities.len(), 2);
    }

    #[test]
    fn the_example_config_names_every_key_the_hub_reads() {
        // A key added to HubConfig but not to example-config.toml fails here.
        let mut config = HubConfig::parse(HubConfig::EXAMPLE).unwrap();
        config.sharing.match_rules = Some("match-rules.json".into());
        let value: toml::Value = toml::from_str(&config.to_toml()).unwrap();
        fn keys(value: &toml::Value, out: &mut Vec<String>) {
            match value {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        out.push(k.clone());
                        keys(v, out);
                    }
                }
                toml::Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
                _ => {}
            }
        }
        let mut names = Vec::new();
        keys(&value, &mut names);
        for name in names {
            assert!(
                HubConfig::EXAMPLE.contains(&format!("{name} ="))
                    || HubConfig::EXAMPLE.contains(&format!("[{name}]"))
                    || HubConfig::EXAMPLE.contains(&format!("[[{name}]]")),
                "example-config.toml does not mention `{name}`"
            );
        }
    }

    #[test]
    fn a_config_with_a_bad_value_is_refused_by_parse() {
        let text = HubConfig::EXAMPLE
            .replace("max_concurrent_streams = 256", "max_concurrent_streams = 0");
        let error = HubConfig::parse(&text).unwrap_err();
        assert!(error.contains("max_concurrent_streams"), "{error}");
    }
}
