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

use kith_core::tls::TlsFiles;
use serde::{Deserialize, Serialize};

use crate::directory::Member;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `sqlite://path`, `sqlite::memory:`, or `postgres://user@host:port/db`
    /// (also `postgresql://`).
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
    pub tls: TlsFiles,
    pub audit: AuditConfig,
    /// The authorities that belong to the federation.
    #[serde(default)]
    pub authorities: Vec<Member>,
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
        if let Some(rest) = self.database_url.strip_prefix("sqlite://")
            && !rest.starts_with('/')
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
        Ok(())
    }

    /// Writes the config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serialises")
    }
}
