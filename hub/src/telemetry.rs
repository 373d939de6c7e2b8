//! Logging set-up for the hub's binary (and the demo): `tracing` to stderr,
//! human-readable by default or JSON lines for log shippers; `RUST_LOG`
//! filters; OTLP trace export when the OpenTelemetry environment asks for
//! it. The set-up itself is `kith_ops::telemetry`, shared with the agent.

use kith_ops::telemetry::LogOutput;
pub use kith_ops::telemetry::{LogFormat, Telemetry};

/// The service name traces carry (unless `OTEL_SERVICE_NAME` says otherwise).
pub const SERVICE: &str = "kith-hub";

/// Installs the global subscriber, writing to stderr. Safe to call twice
/// (the second is ignored). Keep the returned value until the process ends.
pub fn init(format: LogFormat) -> Telemetry {
    install(format, std::io::stderr, true)
}

/// As [`init`], writing wherever `writer` says (the demo's log file), with
/// no terminal colour codes.
pub fn init_with_writer<W>(format: LogFormat, writer: W) -> Telemetry
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    install(format, writer, false)
}

fn install<W>(format: LogFormat, writer: W, ansi: bool) -> Telemetry
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    kith_ops::telemetry::init(
        SERVICE,
        LogOutput {
            format,
            writer,
            ansi,
            flatten_json: false,
        },
    )
}
