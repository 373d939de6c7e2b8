//! The agent's connection to the hub: mutual TLS and failover.
//!
//! Every conversation with the hub goes out from the agent over mutual TLS,
//! presenting the authority's certificate and trusting only the federation
//! CA. A config may list several hub addresses; the agent uses the first that
//! answers, and on a failure moves on to the next in order (wrapping round),
//! so a hub replica going down costs one retry, not an outage.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::config::AgentConfig;
use crate::tls::HubTls;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("TLS settings: {0}")]
    Tls(#[from] crate::tls::HubTlsError),
    #[error("hub address {address:?}: {source}")]
    Address {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("no hub address answered: {0}")]
    Unreachable(String),
}

/// The hub addresses, in order, and which one is in use.
#[derive(Debug, Clone)]
pub struct HubConnector {
    endpoints: Vec<(String, Endpoint)>,
    tls: HubTls,
    current: usize,
    channel: Option<Channel>,
}

/// Renders a transport error with its causes, which tonic keeps in `source()`.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

impl HubConnector {
    /// Prepares an endpoint per configured address; nothing is dialled yet.
    /// `request_timeout` bounds every call made over the channels. The TLS
    /// files are read and checked now, once (one-shot commands).
    pub fn new(config: &AgentConfig, request_timeout: Option<Duration>) -> Result<Self, HubError> {
        Self::with_tls(config, request_timeout, HubTls::from_config(config)?)
    }

    /// As [`HubConnector::new`], dialling with `tls`, whose configuration
    /// may be reloaded meanwhile: every new connection takes the current
    /// one (`kith-agent run`).
    pub fn with_tls(
        config: &AgentConfig,
        request_timeout: Option<Duration>,
        tls: HubTls,
    ) -> Result<Self, HubError> {
        let mut endpoints = Vec::with_capacity(config.hub.addresses.len());
        for address in &config.hub.addresses {
            let bad = |source| HubError::Address {
                address: address.clone(),
                source,
            };
            // TLS is done by our connector (tls.rs), so tonic is given the
            // address as http://; requests still name https://.
            let origin = Endpoint::from_shared(address.clone())
                .map_err(bad)?
                .uri()
                .clone();
            let mut endpoint = Endpoint::from_shared(crate::tls::endpoint_uri(address))
                .map_err(bad)?
                .origin(origin)
                .connect_timeout(config.connect_timeout())
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true);
            if let Some(t) = request_timeout {
                endpoint = endpoint.timeout(t);
            }
            endpoints.push((address.clone(), endpoint));
        }
        Ok(Self {
            endpoints,
            tls,
            current: 0,
            channel: None,
        })
    }

    /// The address in use (or to be tried next).
    pub fn current_address(&self) -> &str {
        &self.endpoints[self.current].0
    }

    /// All configured addresses, in order.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|(a, _)| a.as_str())
    }

    /// A connected channel: the one in use, or the first address, starting
    /// from the current one, that accepts a connection.
    pub async fn channel(&mut self) -> Result<(String, Channel), HubError> {
        if let Some(channel) = &self.channel {
            return Ok((self.current_address().to_string(), channel.clone()));
        }
        let mut failures = Vec::new();
        for _ in 0..self.endpoints.len() {
            let (address, endpoint) = &self.endpoints[self.current];
            match endpoint.connect_with_connector(self.tls.connector()).await {
                Ok(channel) => {
                    tracing::debug!(hub = %address, "connected to the hub");
                    self.channel = Some(channel.clone());
                    return Ok((address.clone(), channel));
                }
                Err(e) => {
                    tracing::debug!(hub = %address, error = %describe(&e), "hub address did not answer");
                    failures.push(format!("{address}: {}", describe(&e)));
                    self.current = (self.current + 1) % self.endpoints.len();
                }
            }
        }
        Err(HubError::Unreachable(failures.join("; ")))
    }

    /// Forgets the channel in use and moves to the next address, after a
    /// call over it failed.
    pub fn fail_over(&mut self) {
        self.channel = None;
        self.current = (self.current + 1) % self.endpoints.len();
    }

    /// Connects to one specific configured address (for health checks).
    pub async fn connect_to(&self, index: usize) -> Result<Channel, tonic::transport::Error> {
        self.endpoints[index]
            .1
            .connect_with_connector(self.tls.connector())
            .await
    }
}

/// Why [`call_with_failover`] got no answer.
#[derive(Debug)]
pub enum CallError {
    /// No address accepted a connection.
    Hub(HubError),
    /// The hub at `address` answered with an error that is not worth
    /// retrying elsewhere, or every address failed and this was the last.
    Status {
        address: String,
        status: tonic::Status,
    },
}

/// Makes one unary call (`what`, for the log) over the first address that
/// answers, moving on to the next address after a transient failure, at
/// most once per configured address. The answer comes with the address
/// that gave it.
pub async fn call_with_failover<T, F, Fut>(
    config: &AgentConfig,
    what: &'static str,
    mut call: F,
) -> Result<(String, T), CallError>
where
    F: FnMut(Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut hub =
        HubConnector::new(config, Some(config.request_timeout())).map_err(CallError::Hub)?;
    let tries = config.hub.addresses.len();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (address, channel) = hub.channel().await.map_err(CallError::Hub)?;
        match call(channel).await {
            Ok(answer) => return Ok((address, answer)),
            Err(status) if is_transient(&status) && attempt < tries => {
                tracing::warn!(hub = %address, code = ?status.code(), what, "call failed; trying the next hub address");
                hub.fail_over();
            }
            Err(status) => return Err(CallError::Status { address, status }),
        }
    }
}

/// Whether a failed call is worth retrying (possibly at another address).
/// Everything that is not an answer about the request itself is.
pub fn is_transient(status: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(
        status.code(),
        Unavailable
            | DeadlineExceeded
            | Unknown
            | Internal
            | ResourceExhausted
            | Aborted
            | Cancelled
    )
}

/// Whether the hub refused this agent itself (its certificate, or its
/// authority's membership): retrying soon will not help.
pub fn is_refusal(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
    )
}
