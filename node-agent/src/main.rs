//! The `kith-agent` command: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kith_agent::logging::{self, LogFormat};
use kith_agent::outbox::Outbox;
use kith_agent::{Agent, AgentConfig, QueryArgs, ingest};
use kith_core::Purpose;

/// The Kith node agent: publishes this authority's relationship records to the
/// Kith hub and answers its case workers' queries.
#[derive(Debug, Parser)]
#[command(name = "kith-agent", version, long_about = None)]
struct Cli {
    /// The agent's TOML config file (see `kith-agent example-config`).
    #[arg(
        long,
        short,
        global = true,
        env = "KITH_AGENT_CONFIG",
        default_value = "kith-agent.toml"
    )]
    config: PathBuf,

    /// How to write log lines (to standard error).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: watch the drop folder, publish the outbox, keep the
    /// hub link open. Stops gracefully on Ctrl-C or SIGTERM.
    Run,
    /// Enqueue the records in source files now (*.jsonl or *.csv) and print a
    /// report per file. The files are left where they are. Exits 2 if any line
    /// or file was refused.
    Ingest {
        /// The files to read.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the outbox and whether the hub answers.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the hub who else is involved with a person, on behalf of a member
    /// of staff and for a stated purpose.
    Query {
        /// The person's NHS number (10 digits, spaces allowed).
        #[arg(long)]
        nhs_number: String,
        /// Why you are asking: direct_care, safeguarding, emergency,
        /// care_planning or public_protection.
        #[arg(long, value_parser = parse_purpose)]
        purpose: Purpose,
        /// Your user id in this authority's systems.
        #[arg(long = "as", value_name = "USER")]
        user: String,
        /// Your role code, e.g. social_worker or ed_clinician.
        #[arg(long)]
        role: String,
        /// Your name as colleagues know it.
        #[arg(long, default_value = "")]
        name: String,
        /// Your team.
        #[arg(long, default_value = "")]
        team: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an example config file to standard output.
    ExampleConfig,
}

fn parse_purpose(s: &str) -> Result<Purpose, String> {
    s.parse::<Purpose>().map_err(|e| e.to_string())
}

fn load(path: &std::path::Path) -> Result<AgentConfig> {
    AgentConfig::load(path).context(
        "cannot load the agent config (give it with --config or KITH_AGENT_CONFIG; \
         `kith-agent example-config` prints one)",
    )
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::ExampleConfig => {
            print!("{}", AgentConfig::example_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            let config = load(&cli.config)?;
            let agent = Agent::start(config)
                .await
                .context("cannot start the agent")?;
            shutdown_signal().await;
            agent.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { files, json } => {
            let config = load(&cli.config)?;
            let authority = config.authority_code().context("config key `authority`")?;
            let outbox = Outbox::open(&config.outbox_path()).await?;
            let mut clean = true;
            let mut reports = Vec::new();
            for file in &files {
                let report = ingest::ingest_file(file, &authority, &outbox)
                    .await
                    .with_context(|| format!("cannot ingest {}", file.display()))?;
                clean &= report.is_clean();
                if !json {
                    print!("{}", report.render());
                }
                reports.push(report);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            outbox.close().await;
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Status { json } => {
            let config = load(&cli.config)?;
            let status = kith_agent::status(&config).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
            Ok(if status.hub_reachable {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Query {
            nhs_number,
            purpose,
            user,
            role,
            name,
            team,
            json,
        } => {
            let config = load(&cli.config)?;
            let args = QueryArgs {
                nhs_number,
                purpose,
                user_id: user,
                role,
                display_name: name,
                team,
            };
            let response = kith_agent::query(&config, args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else {
                print!("{}", response.render_table());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // Each cause once: some errors already quote their source.
            let mut message = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !message.contains(&text) {
                    if !message.is_empty() {
                        message.push_str(": ");
                    }
                    message.push_str(&text);
                }
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
