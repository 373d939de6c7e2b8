//! Log lines and, when an operator asks for it, traces: one set-up for the
//! hub and the agent.
//!
//! Why this exists: a slow query crosses three processes (the case worker's
//! agent, the hub, a custodian's agent for a record held at source), and
//! only a trace that follows it through all three shows where the time
//! went. Trace export is off unless the standard OpenTelemetry variable
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set, and `OTEL_TRACES_EXPORTER=none` turns it off again; the rest of
//! the OpenTelemetry environment (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_SCHEDULE_DELAY`, …) is read by
//! the SDK as its specification says. Export is OTLP over gRPC, on the
//! workspace's tonic, with no TLS of its own (send it to a collector on the
//! same machine or network; no aws-lc-rs).
//!
//! W3C trace context travels as a `traceparent` (and `tracestate`) header
//! on gRPC calls ([`inject`], [`extract`]), and as the `traceparent` field
//! of a detail request on the agent link ([`current_traceparent`],
//! [`parent_from_traceparent`]). Spans carry no personal data: the spans
//! Kith opens name only the operation, and log events (which OpenTelemetry
//! keeps as span events) are already free of it.
//!
//! The SDK's batch processor exports from a thread of its own, where
//! tonic finds no Tokio reactor; [`OwnRuntime`] gives the exporter a small
//! runtime of its own to run on there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per event.
    Json,
}

/// How a binary writes its log lines.
pub struct LogOutput<W> {
    pub format: LogFormat,
    pub writer: W,
    /// Terminal colour codes (for stderr; never in a file).
    pub ansi: bool,
    /// JSON only: the event's fields at the top level of each object.
    pub flatten_json: bool,
}

/// Kept for the life of the process: flushes and stops trace export when
/// dropped, so the last spans of a short command are not lost.
#[must_use = "dropping it at once stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Where and how often spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceExport {
    /// The OTLP gRPC endpoint (`http://collector:4317`); `None` leaves it to
    /// the OpenTelemetry environment variables.
    pub endpoint: Option<String>,
    /// How long spans wait in the batch; `None` leaves it to
    /// `OTEL_BSP_SCHEDULE_DELAY` (default 5 s).
    pub schedule_delay: Option<Duration>,
}

impl TraceExport {
    /// What the OpenTelemetry environment asks for: export only when an
    /// OTLP endpoint is set and `OTEL_TRACES_EXPORTER` is not `none`.
    pub fn from_env() -> Option<Self> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        let endpoint =
            set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let off = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim() == "none");
        (endpoint && !off).then_some(Self {
            endpoint: None,
            schedule_delay: None,
        })
    }
}

/// Installs the global subscriber: `RUST_LOG` filtering (default `info`),
/// log lines to `output`, and trace export when the environment asks for
/// it ([`TraceExport::from_env`]), as `service` unless `OTEL_SERVICE_NAME`
/// says otherwise. Safe to call twice (the second subscriber is ignored).
pub fn init<W>(service: &'static str, output: LogOutput<W>) -> Telemetry
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    init_with(service, output, TraceExport::from_env())
}

/// As [`init`], with the export settings given rather than read from the
/// environment (`None`: no export). A trace exporter that cannot be built
/// is reported on stderr and left off: traces never stop the service.
pub fn init_with<W>(
    service: &'static str,
    output: LogOutput<W>,
    export: Option<TraceExport>,
) -> Telemetry
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(output.writer)
        .with_ansi(output.ansi);
    let fmt = match (output.format, output.flatten_json) {
        (LogFormat::Human, _) => fmt.boxed(),
        (LogFormat::Json, true) => fmt.json().flatten_event(true).boxed(),
        (LogFormat::Json, false) => fmt.json().boxed(),
    };
    let provider = if let Some(export) = export {
        match provider(service, &export) {
            Ok(provider) => Some(provider),
            Err(e) => {
                eprintln!("trace export is off: {e}");
                None
            }
        }
    } else {
        None
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("kith")));
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    Telemetry {
        provider: if installed { provider } else { None },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot start the exporter's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

fn provider(
    service: &'static str,
    export: &TraceExport,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = OwnRuntime::build(export.endpoint.as_deref())?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    // The builder's defaults are the OTEL_BSP_* environment variables.
    let mut batch = opentelemetry_sdk::trace::BatchConfigBuilder::default();
    if let Some(delay) = export.schedule_delay {
        batch = batch.with_scheduled_delay(delay);
    }
    let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch.build())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build())
}

/// The OTLP gRPC exporter on a one-thread Tokio runtime of its own: the
/// batch processor calls it from a plain thread, and tonic needs a reactor.
#[derive(Debug)]
pub struct OwnRuntime {
    inner: opentelemetry_otlp::SpanExporter,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl OwnRuntime {
    fn build(endpoint: Option<&str>) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kith-trace-export")
            .enable_all()
            .build()
            .map_err(TelemetryError::Runtime)?;
        let inner = {
            let _context = runtime.enter();
            let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if let Some(endpoint) = endpoint {
                use opentelemetry_otlp::WithExportConfig;
                builder = builder.with_endpoint(endpoint);
            }
            builder
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?
        };
        Ok(Self {
            inner,
            runtime: Arc::new(runtime),
        })
    }
}

impl SpanExporter for OwnRuntime {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        // Called on the batch processor's own thread, never on a runtime's.
        let result = self.runtime.block_on(self.inner.export(batch));
        std::future::ready(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct ReadMetadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for ReadMetadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Puts the current span's trace context on an outgoing call
/// (`traceparent`, `tracestate`). Nothing when no trace is being recorded.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut Metadata(metadata));
}

/// Makes `span` a child of the trace an incoming call carries, if any.
pub fn extract(metadata: &tonic::metadata::MetadataMap, span: &tracing::Span) {
    let parent = TraceContextPropagator::new().extract(&ReadMetadata(metadata));
    let _ = span.set_parent(parent);
}

/// The current span's W3C `traceparent`, for a message that is not a call
/// of its own (a detail request on the agent link); empty when no trace is
/// being recorded.
pub fn current_traceparent() -> String {
    let context = tracing::Span::current().context();
    let mut fields: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut fields);
    fields.remove("traceparent").unwrap_or_default()
}

/// Makes `span` a child of the trace a `traceparent` names (ignored when
/// empty or malformed: a bad header never fails the work it came with).
pub fn parent_from_traceparent(traceparent: &str, span: &tracing::Span) {
    if traceparent.is_empty() || traceparent.len() > 128 {
        return;
    }
    let fields = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let parent = TraceContextPropagator::new().extract(&fields);
    let _ = span.set_parent(parent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    fn remote(trace: u128, span: u64) -> opentelemetry::Context {
        opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }

    #[test]
    fn a_traceparent_round_trips_through_grpc_metadata() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        TraceContextPropagator::new().inject_context(
            &remote(0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331),
            &mut Metadata(&mut metadata),
        );
        assert_eq!(
            metadata.get("traceparent").unwrap(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        let back = TraceContextPropagator::new().extract(&ReadMetadata(&metadata));
        assert_eq!(
            back.span().span_context().trace_id(),
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128)
        );
    }

    #[test]
    fn no_trace_means_no_header_and_a_bad_header_is_ignored() {
        // No subscriber records spans here: nothing to propagate.
        assert_eq!(current_traceparent(), "");
        let mut metadata = tonic::metadata::MetadataMap::new();
        inject(&mut metadata);
        assert!(metadata.get("traceparent").is_none());
        parent_from_traceparent("not-a-traceparent", &tracing::Span::none());
        parent_from_traceparent(&"0".repeat(500), &tracing::Span::none());
    }
}
