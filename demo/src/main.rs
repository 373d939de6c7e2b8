//! `kith-demo`: wires the command line to [`kith_demo::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kith_hub::telemetry::{self, LogFormat};

/// Bring up a Kith hub and three agents on loopback over mutual TLS,
/// publish a synthetic data set, run case-worker queries and print what
/// each saw: detail, summary, a refusal, a break glass, an objection taking
/// effect, and what a custodian was told.
#[derive(Parser)]
#[command(name = "kith-demo", version)]
struct Cli {
    /// Keep the PKI, configs and databases here (default: a temporary
    /// folder, removed afterwards). A folder made by an earlier demo is
    /// cleared first; any other non-empty folder is refused.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Leave the federation running after the queries, until Ctrl-C, and
    /// print the `kith-agent` commands to carry on with; each agent also
    /// serves its staff console on loopback, and the URLs and sign-ins to
    /// try are printed.
    #[arg(long)]
    keep_running: bool,
    /// Log format (filter with RUST_LOG, e.g. RUST_LOG=debug). Logs go to
    /// kith-demo.log in the demo's folder, so the terminal shows only the
    /// story; the demo says where the file is.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "KITH_LOG_FORMAT")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = kith_demo::log_file::DemoLog::new();
    let _telemetry = telemetry::init_with_writer(cli.log_format, log.clone());
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match kith_demo::run(cli.dir, cli.keep_running, stop, Some(&log)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, each cause after a colon.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
