//! The federation under test: a development PKI, the default policies and
//! a fresh store in a temporary folder, and the real `kith-hub serve`
//! binary running on them as a separate process.
//!
//! The folder is built exactly as the cross-process tests build theirs
//! (`kith_tests::TestDir`: PKI from `kith_core::pki`, default policy set,
//! audit log key, the test federation's members, and on PostgreSQL a fresh
//! `kith_test_*` database on 127.0.0.1:5432 dropped afterwards), so the
//! benchmark and the tests agree on what a hub is. Only the intervals are
//! set back to the production defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kith_core::tls::TlsFiles;
use kith_tests::{TestDir, TestStore};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::process::{ChildProcess, free_loopback_addr};

/// The authority whose case workers run the queries (Salford City
/// Council), and the one the echo baseline's client presents.
pub const QUERIER: &str = kith_tests::COUNCIL_B;

/// The PKI, policies and store, and the hub when it runs.
pub struct Federation {
    pub dir: TestDir,
    hub: Option<ChildProcess>,
}

impl Federation {
    /// Lays the folder out; `store` picks SQLite or a fresh PostgreSQL database.
    pub fn create(store: TestStore) -> Self {
        Self {
            dir: TestDir::with_store(store),
            hub: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Client TLS files of the authority `code`.
    pub fn tls(&self, code: &str) -> TlsFiles {
        self.dir.agent_tls(code)
    }

    /// The hub's own TLS files (the echo server serves with them too).
    pub fn hub_tls(&self) -> TlsFiles {
        let config = self.dir.hub_config(0);
        config.tls
    }

    /// Writes `hub.toml` and starts `hub_bin serve` on a free port; returns
    /// once its health service says the query service is serving.
    pub async fn start_hub(&mut self, hub_bin: &Path) -> Result<SocketAddr> {
        let addr = free_loopback_addr()?;
        let mut config = self.dir.hub_config(addr.port());
        config.policy_reload_interval_ms = kith_hub::config::DEFAULT_POLICY_RELOAD_INTERVAL_MS;
        config.audit = kith_hub::config::AuditConfig::new(config.audit.signing_key);
        let config_path = self.path().join("hub.toml");
        std::fs::write(&config_path, config.to_toml())?;
        let mut hub = ChildProcess::spawn(
            "kith-hub",
            hub_bin,
            [
                "serve".as_ref(),
                "--config".as_ref(),
                config_path.as_os_str(),
            ],
            &self.path().join("hub.log"),
        )?;
        let tls = self.tls(QUERIER);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        loop {
            hub.check_running()?;
            if tokio::time::Instant::now() > deadline {
                bail!("the hub was not serving within 30 s: {last}");
            }
            match health(addr, &tls).await {
                Ok(true) => break,
                Ok(false) => last = "not serving yet".into(),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.hub = Some(hub);
        Ok(addr)
    }

    /// The hub process's id, while it runs.
    pub fn hub_pid(&self) -> Option<u32> {
        self.hub.as_ref().map(ChildProcess::pid)
    }

    /// An error if the hub has died.
    pub fn check_hub(&mut self) -> Result<()> {
        match self.hub.as_mut() {
            Some(hub) => hub.check_running(),
            None => bail!("the hub is not running"),
        }
    }

    /// Stops the hub (SIGTERM: in-flight calls finish, a last checkpoint).
    pub fn stop_hub(&mut self) -> Result<()> {
        if let Some(hub) = self.hub.take() {
            hub.terminate(Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// The SQLite database's files (database and WAL), in bytes; 0 on PostgreSQL.
    pub fn sqlite_bytes(&self) -> u64 {
        ["hub.db", "hub.db-wal"]
            .iter()
            .map(|f| PathBuf::from(self.path()).join(f))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

async fn health(addr: SocketAddr, tls: &TlsFiles) -> Result<bool> {
    let channel = kith_tests::channel(addr, tls).await.context("connect")?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "kith.v1.QueryService".into(),
        })
        .await
        .context("health check")?
        .into_inner();
    Ok(answer.status() == ServingStatus::Serving)
}
