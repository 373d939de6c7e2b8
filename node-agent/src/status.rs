//! `kith-agent status`: is this agent healthy?
//!
//! The node operator's first question when something is wrong. It reports the
//! outbox (pending, delivered, rejected, the last delivery and the last
//! error) and whether the hub answers a gRPC health check over mutual TLS,
//! trying each configured address in order with a short timeout. It reads the
//! outbox file directly, so it works whether or not `kith-agent run` is up.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::AgentConfig;
use crate::hub_client::{HubConnector, HubError, describe};
use crate::outbox::{Outbox, OutboxError, OutboxStats};

/// How long the health check may take, per address.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// The agent's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub authority: String,
    pub outbox: OutboxStats,
    pub hub_reachable: bool,
    /// The address that answered, when one did.
    pub hub_address: Option<String>,
    /// Why no address answered (each address's failure), when none did.
    pub hub_error: Option<String>,
}

/// Gathers the status: outbox counts and hub reachability.
pub async fn status(config: &AgentConfig) -> Result<Status, StatusError> {
    let outbox = Outbox::open(&config.outbox_path()).await?;
    let stats = outbox.stats().await?;
    outbox.close().await;
    let (hub_address, hub_error) = match check_hub(config).await? {
        Ok(address) => (Some(address), None),
        Err(e) => (None, Some(e)),
    };
    Ok(Status {
        authority: config.authority.clone(),
        outbox: stats,
        hub_reachable: hub_address.is_some(),
        hub_address,
        hub_error,
    })
}

/// The first address whose health check says SERVING, or every failure.
pub async fn check_hub(config: &AgentConfig) -> Result<Result<String, String>, HubError> {
    let mut config = config.clone();
    config.hub.connect_timeout_ms = config
        .hub
        .connect_timeout_ms
        .min(HEALTH_TIMEOUT.as_millis() as u64);
    let hub = HubConnector::new(&config, Some(HEALTH_TIMEOUT))?;
    let addresses: Vec<String> = hub.addresses().map(str::to_string).collect();
    let mut failures = Vec::new();
    for (index, address) in addresses.iter().enumerate() {
        let attempt = async {
            let channel = hub.connect_to(index).await.map_err(|e| describe(&e))?;
            let response = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
            match ServingStatus::try_from(response.into_inner().status) {
                Ok(ServingStatus::Serving) => Ok(()),
                Ok(other) => Err(format!("health check says {}", other.as_str_name())),
                Err(_) => Err("health check gave an unknown status".to_string()),
            }
        };
        match tokio::time::timeout(HEALTH_TIMEOUT, attempt).await {
            Ok(Ok(())) => return Ok(Ok(address.clone())),
            Ok(Err(e)) => failures.push(format!("{address}: {e}")),
            Err(_) => failures.push(format!("{address}: no answer within {HEALTH_TIMEOUT:?}")),
        }
    }
    Ok(Err(failures.join("; ")))
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "authority      {}", self.authority)?;
        match (&self.hub_address, &self.hub_error) {
            (Some(a), _) => writeln!(f, "hub            reachable at {a}")?,
            (None, Some(e)) => writeln!(f, "hub            UNREACHABLE: {e}")?,
            (None, None) => writeln!(f, "hub            UNREACHABLE")?,
        }
        let o = &self.outbox;
        writeln!(
            f,
            "outbox         {} pending, {} delivered, {} rejected",
            o.pending, o.delivered, o.rejected
        )?;
        writeln!(f, "last delivery  {}", when(o.last_delivery_at))?;
        match &o.last_error {
            Some(e) => writeln!(f, "last error     {} ({})", e, when(o.last_error_at)),
            None => writeln!(f, "last error     none"),
        }
    }
}
