//! `kith-bench`: the command line over the library. See `lib.rs` for the
//! modules and `docs/benchmarks.md` for the figures and commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use kith_bench::args::{parse_count, parse_duration};
use kith_bench::run::Options;
use kith_core::tls::TlsFiles;
use kith_tests::TestStore;

/// The hub's allocator, so the echo baseline this process serves is built
/// as the hub is and the ratio between them stays fair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// End-to-end benchmark of a real kith-hub over mutual-TLS gRPC: a bare
/// tonic echo baseline, batched ingest, authorised queries and the hub's
/// peak RSS, measured in one run. Progress goes to stderr; stdout gets a
/// table and, last, one JSON line.
#[derive(Parser)]
#[command(name = "kith-bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the echo baseline over mutual TLS until SIGTERM (the harness
    /// starts this itself).
    EchoServer {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Store {
    Sqlite,
    Postgres,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Records in the store: 100000, 100k, 1M, 10M [default: 100k; 10k with --quick].
    #[arg(long, value_parser = parse_count)]
    records: Option<u64>,
    /// Records about each person (at most 900,000 people: the NHS test range).
    #[arg(long, default_value_t = 2)]
    records_per_person: u32,
    /// Concurrent clients in the echo and query phases.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Mutual-TLS connections the clients share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured time of the echo and query phases [default: 10s; 3s with --quick].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Unmeasured warm-up before each [default: 2s; 1s with --quick].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Concurrent publishers during ingest.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Records per PublishRecords call (the hub takes at most 1,000).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// The hub's store: a SQLite file in a temporary folder, or a fresh
    /// database on PostgreSQL at 127.0.0.1:5432 (trust auth), dropped after.
    #[arg(long, value_enum, default_value_t = Store::Sqlite)]
    store: Store,
    /// A small store and short phases: the whole run in under a minute.
    #[arg(long)]
    quick: bool,
    /// Print only the final JSON line on stdout, and no progress.
    #[arg(long)]
    json_only: bool,
    /// The kith-hub binary [default: next to this executable].
    #[arg(long)]
    hub_bin: Option<PathBuf>,
    /// Seed of the synthetic data and the queries' choice of people.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// After the queries, ingest the same records again into a fresh store
    /// holding this many current subscriptions (one a person, the NHS
    /// trust's), and compare with the first ingest (issue #17.3). Alone,
    /// `--subscriptions` means 100k.
    #[arg(long, value_parser = parse_count, num_args = 0..=1, default_missing_value = "100k")]
    subscriptions: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    kith_core::tls::install_crypto_provider();
    if let Some(Command::EchoServer {
        ca,
        cert,
        key,
        listen,
    }) = cli.command
    {
        return kith_bench::echo::serve(&TlsFiles { ca, cert, key }, listen).await;
    }
    let a = cli.run;
    let hub_bin = match a.hub_bin {
        Some(path) => path,
        None => kith_bench::process::sibling_binary("kith-hub")?,
    };
    let options = Options {
        store: match a.store {
            Store::Sqlite => TestStore::Sqlite,
            Store::Postgres => TestStore::Postgres,
        },
        records: a.records.unwrap_or(if a.quick { 10_000 } else { 100_000 }),
        records_per_person: a.records_per_person,
        clients: a.clients.max(1),
        connections: a.connections.max(1),
        duration: a
            .duration
            .unwrap_or(Duration::from_secs(if a.quick { 3 } else { 10 })),
        warmup: a
            .warmup
            .unwrap_or(Duration::from_secs(if a.quick { 1 } else { 2 })),
        publishers: a.publishers,
        batch_size: a.batch_size.clamp(1, kith_hub::publish::MAX_BATCH),
        quick: a.quick,
        quiet: a.json_only,
        seed: a.seed,
        subscriptions: a.subscriptions.unwrap_or(0),
        hub_bin,
        self_bin: std::env::current_exe()?,
    };
    let report = kith_bench::run::run(&options).await?;
    if !a.json_only {
        println!("{}", report.table());
    }
    println!("{}", report.json_line());
    Ok(())
}
