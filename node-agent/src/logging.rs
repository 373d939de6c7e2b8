//! Log output: human-readable lines by default, JSON for log shippers.
//!
//! Logs go to standard error, so a command's own output on standard output
//! (a table, a report, JSON) stays clean for pipes. The level is set with
//! `RUST_LOG` (default `info`).

use kith_ops::telemetry::LogOutput;
pub use kith_ops::telemetry::{LogFormat, Telemetry};

/// The service name traces carry (unless `OTEL_SERVICE_NAME` says otherwise).
pub const SERVICE: &str = "kith-agent";

/// Installs the global subscriber, with OTLP trace export when the
/// OpenTelemetry environment asks for it (`kith_ops::telemetry`). Call
/// once, at start-up, and keep the returned value until the process ends.
pub fn init(format: LogFormat) -> Telemetry {
    kith_ops::telemetry::init(
        SERVICE,
        LogOutput {
            format,
            writer: std::io::stderr,
            ansi: true,
            flatten_json: true,
        },
    )
}
