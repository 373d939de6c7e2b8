//! The Prometheus scrape endpoint: `GET /metrics` on a listener of its own,
//! apart from the mutual-TLS gRPC port, loopback by default.
//!
//! One recorder per process (the `metrics` facade is global): the first
//! endpoint started installs it, later ones (several hubs or agents in one
//! test process) serve the same registry. Before each scrape the endpoint
//! runs its `refresh`, which sets the gauges read from state (outbox depth,
//! checkpoint age, certificate expiry), so a scrape never shows a stale
//! sample. Connections are few and bounded: at most
//! [`MAX_CONNECTIONS`] at once, each with a header deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Scrapes served at once; more wait for a slot.
pub const MAX_CONNECTIONS: usize = 16;
/// A scraper must send its request headers within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The media type of Prometheus' text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `[metrics]` in the hub's and the agent's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all (default true).
    pub enabled: bool,
    /// Where to listen; each binary has its own loopback default. Port 0
    /// picks a free port (tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
        }
    }
}

impl MetricsConfig {
    /// Metrics on a free loopback port: what tests running many services
    /// in one process use.
    pub fn any_loopback_port() -> Self {
        Self {
            enabled: true,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        }
    }

    /// The address to bind, or `None` when metrics are switched off.
    pub fn address(&self, default: SocketAddr) -> Option<SocketAddr> {
        self.enabled.then(|| self.listen.unwrap_or(default))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
    #[error("cannot listen for metrics scrapes on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Sets the gauges read from state, just before a scrape is rendered.
pub type Refresh = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// A refresh that does nothing.
pub fn no_refresh() -> Refresh {
    Arc::new(|| Box::pin(async {}))
}

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Buckets of every `*_seconds` histogram: 0.5 ms to 30 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of every `*_entries` histogram (group sizes): 1 to 1,024.
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// The process's recorder, installed on first use. Metrics recorded before
/// it is installed are dropped, so each binary installs it at start.
pub fn recorder() -> Result<PrometheusHandle, MetricsError> {
    HANDLE
        .get_or_init(|| {
            // Histograms, not the exporter's default summaries: buckets
            // aggregate across instances (and `histogram_quantile`).
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_entries".into()), COUNT_BUCKETS)
                })
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(MetricsError::Recorder)
}

/// The endpoint serving scrapes in the background; stops when dropped.
pub struct MetricsEndpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Binds `addr` and serves `GET /metrics` there.
    pub async fn start(addr: SocketAddr, refresh: Refresh) -> Result<Self, MetricsError> {
        let handle = recorder()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let task = tokio::spawn(serve(listener, handle, refresh));
        Ok(Self { addr: bound, task })
    }

    /// [`MetricsEndpoint::start`] for a service that must run on without
    /// its metrics: a failure (a port already taken, say) is logged and
    /// gives `None`. Once serving, `describe` names the process's metrics.
    pub async fn start_or_log(addr: SocketAddr, refresh: Refresh, describe: fn()) -> Option<Self> {
        match Self::start(addr, refresh).await {
            Ok(endpoint) => {
                describe();
                tracing::info!(addr = %endpoint.addr(), "serving Prometheus metrics at /metrics");
                Some(endpoint)
            }
            Err(e) => {
                tracing::error!(error = %e, "metrics are not served");
                None
            }
        }
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, handle: PrometheusHandle, refresh: Refresh) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Histogram buckets are drained by upkeep; a scrape also runs it.
    let upkeep = handle.clone();
    let _upkeep = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    }));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a metrics scrape");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (handle, refresh) = (handle.clone(), refresh.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                scrape(request, handle.clone(), refresh.clone())
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "metrics scrape connection ended");
            }
            drop(slot);
        });
    }
}

async fn scrape(
    request: Request<Incoming>,
    handle: PrometheusHandle,
    refresh: Refresh,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "only /metrics is served\n".into(),
        ));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET /metrics\n".into(),
        ));
    }
    refresh().await;
    handle.run_upkeep();
    let mut response = reply(StatusCode::OK, handle.render());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    Ok(response)
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_on_at_the_default_unless_switched_off() {
        let default = SocketAddr::from(([127, 0, 0, 1], 9464));
        assert_eq!(MetricsConfig::default().address(default), Some(default));
        let off = MetricsConfig {
            enabled: false,
            listen: None,
        };
        assert_eq!(off.address(default), None);
        let elsewhere: MetricsConfig = toml::from_str("listen = \"127.0.0.1:9999\"").unwrap();
        assert_eq!(
            elsewhere.address(default),
            Some(SocketAddr::from(([127, 0, 0, 1], 9999)))
        );
        let typo = toml::from_str::<MetricsConfig>("listne = \"127.0.0.1:1\"").unwrap_err();
        assert!(typo.to_string().contains("listne"), "{typo}");
    }
}
