//! `kith-hub`: wires the command line to the library. Decisions live in the
//! library; this file parses arguments, sets up logging and exits with a
//! message and a non-zero status on failure: `error: <message>: <cause>: ...`
//! on standard error and exit status 1, as `kith-agent` does (no `Error:`
//! debug dump, no backtrace even with RUST_BACKTRACE set).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use kith_core::AuthorityCode;
use kith_hub::telemetry::{self, LogFormat};

/// The hub allocates and frees many small buffers per call (TLS records,
/// HTTP/2 frames, protobuf, policy entities, audit JSON); glibc's malloc
/// took ~15% of its CPU under query load (perf record). See
/// docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Kith hub: the central exchange where authorities publish
/// relationship records and case workers find who else is involved with a
/// person, under sharing agreements written as Cedar policies.
#[derive(Parser)]
#[command(name = "kith-hub", version, propagate_version = true)]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "KITH_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the audit log's verifier key (C2SP vkey format), for auditors
    /// and witnesses to check signed checkpoints with.
    Vkey {
        /// The hub's TOML configuration; its [audit] signing_key is read.
        #[arg(long, short, env = "KITH_HUB_CONFIG")]
        config: PathBuf,
    },
    /// Serve the hub over mutual TLS until Ctrl-C or SIGTERM. SIGHUP
    /// reloads the policy set and the TLS certificate, key and trust bundle.
    Serve {
        /// The hub's TOML configuration (see docs/operators.md).
        #[arg(long, short, env = "KITH_HUB_CONFIG")]
        config: PathBuf,
    },
    /// Copy a SQLite hub's database while it serves: a consistent snapshot,
    /// checked as a restore would check it (every audit entry against the
    /// latest signed checkpoint), with a manifest beside it (FILE.manifest.json)
    /// that lists the keys and certificates it does not copy. PostgreSQL
    /// hubs use pg_dump (docs/operators.md, "Backups").
    Backup {
        /// The hub's TOML configuration (its database_url and [audit] signing_key).
        #[arg(long, short, env = "KITH_HUB_CONFIG")]
        config: PathBuf,
        /// The backup file to write; it must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a backup in place of the hub's SQLite database, after checking its
    /// manifest, SQLite's integrity and its audit log against its latest signed
    /// checkpoint under this hub's key. A backup that fails any check is
    /// refused and nothing is changed. Stop the hub first.
    Restore {
        /// The hub's TOML configuration (where the database goes, the log's key).
        #[arg(long, short, env = "KITH_HUB_CONFIG")]
        config: PathBuf,
        /// The backup file (its manifest must be beside it).
        #[arg(long)]
        from: PathBuf,
        /// Restore over an existing database, moving it aside to
        /// NAME.before-restore-TIMESTAMP (never deleted).
        #[arg(long)]
        replace: bool,
        /// Check the backup only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print an annotated example config (every key, its default and what
    /// it does) to standard output: `kith-hub example-config > hub.toml`.
    ExampleConfig,
    /// Make or extend a development PKI (federation CA, hub and authority certificates).
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Check and manage policy sets.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The demo is its own program now (`cargo run -p kith-demo`): the hub
    /// does not depend on the agent it serves.
    #[command(hide = true)]
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create a new CA, a hub certificate and certificates for the named authorities.
    Init {
        /// Folder to create the PKI in.
        #[arg(long)]
        dir: PathBuf,
        /// DNS names or IP addresses the hub certificate is valid for.
        #[arg(long = "hub-name", default_values = ["localhost", "127.0.0.1"])]
        hub_names: Vec<String>,
        /// Authority codes to issue agent certificates for (repeatable).
        #[arg(long = "authority")]
        authorities: Vec<String>,
        /// Origin (and key name) of the hub's verifiable audit log.
        #[arg(long, default_value = kith_hub::transparency::DEV_ORIGIN)]
        log_origin: String,
    },
    /// Sign an authority's certificate signing request with the federation
    /// CA: `kith-hub pki issue CSR --ca DIR --config hub.toml --out CERT`.
    /// The request is checked (its signature, exactly one authority named
    /// and nothing else, no CA rights asked) and its authority must be a
    /// member in the config's [[authorities]] (and --authority, if given).
    /// The key stays with the authority (`kith-agent pki request`).
    ///
    /// Without CSR, the development shortcut: `--dir DIR --authority CODE`
    /// makes a key and certificate for CODE at the CA.
    Issue {
        /// The certificate signing request (PEM) to sign.
        csr: Option<PathBuf>,
        /// The CA folder holding ca.crt.pem and ca.key.pem.
        #[arg(long, alias = "dir")]
        ca: PathBuf,
        /// The hub's config, whose [[authorities]] are the federation's members.
        #[arg(long, short, env = "KITH_HUB_CONFIG")]
        config: Option<PathBuf>,
        /// Where to write the signed certificate (never an existing file).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The authority the request must name (required without CSR).
        #[arg(long)]
        authority: Option<String>,
        /// Days the certificate is valid for, from now (1 to 825).
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u16).range(1..=825))]
        days: u16,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy set against its schema and run its test cases
    /// (DIR/tests/*.json). Exits non-zero on any failure.
    Check {
        /// The policy folder.
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
    /// Write the default policy set into DIR, to start your own from.
    Init { dir: PathBuf },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = telemetry::init(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Long checks report every few hundred thousand entries on stderr.
fn progress(entries: u64) {
    eprintln!("  checked {entries} audit entries...");
}

fn print_state(state: &kith_hub::backup::LogState) {
    println!("  records: {}", state.records);
    println!("  audit entries: {}", state.entries);
    match &state.checkpoint {
        Some(cp) => println!(
            "  latest checkpoint: size {} root {} (signed {}), verified against the log's key",
            cp.tree_size, cp.root_hash, cp.signed_at
        ),
        None => println!("  latest checkpoint: none yet"),
    }
    if state.unsigned_entries > 0 {
        println!(
            "  {} entries after it are hash-checked but not yet signed; the hub signs them when it next sequences",
            state.unsigned_entries
        );
    }
}

/// `error: ` and the error with its causes joined by `: `, each cause once
/// (some errors already quote their source).
fn error_line(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    format!("error: {message}")
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = kith_hub::config::HubConfig::load(&config)?;
            let running = kith_hub::server::start(&config).await?;
            #[cfg(unix)]
            {
                // SIGHUP: reload the policy set and the TLS files now.
                let reload = running.reload_handle();
                let tls_reload = running.tls_reload_handle();
                let mut hup =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the policy set and the TLS files");
                        tls_reload.poke();
                        let _ = reload.send(()).await;
                    }
                });
            }
            running.serve_until(shutdown_signal()).await?;
        }
        Command::ExampleConfig => print!("{}", kith_hub::config::HubConfig::EXAMPLE),
        Command::Backup { config, out } => {
            let config = kith_hub::config::HubConfig::load(&config)?;
            let written =
                kith_hub::backup::backup(&config, &out, &mut progress).context("backup failed")?;
            print!("{}", written.describe());
            print_state(&written.state);
        }
        Command::Restore {
            config,
            from,
            replace,
            dry_run,
        } => {
            let config = kith_hub::config::HubConfig::load(&config)?;
            let restored =
                kith_hub::backup::restore(&config, &from, replace, dry_run, &mut progress)
                    .with_context(|| format!("{} was not restored", from.display()))?;
            print!("{}", restored.describe());
            print_state(&restored.state);
        }
        Command::Pki(PkiCommand::Init {
            dir,
            hub_names,
            authorities,
            log_origin,
        }) => {
            let codes = authorities
                .into_iter()
                .map(AuthorityCode::new)
                .collect::<Result<Vec<_>, _>>()?;
            let layout = kith_core::pki::init(&dir, &hub_names, &codes)?;
            let (skey, _) =
                kith_hub::transparency::write_key(&dir, &log_origin).map_err(anyhow::Error::msg)?;
            println!("development PKI written to {}", layout.dir.display());
            println!("  audit log key: {} (origin {log_origin})", skey.display());
            println!("  CA:  {}", layout.ca_cert().display());
            println!("  hub: {}", layout.hub_cert().display());
            for code in &codes {
                println!("  {code}: {}", layout.authority_cert(code).display());
            }
        }
        Command::Pki(PkiCommand::Issue {
            csr: None,
            ca,
            authority,
            ..
        }) => {
            let Some(authority) = authority else {
                bail!("give a CSR to sign, or --authority CODE for a development certificate");
            };
            let code = AuthorityCode::new(authority)?;
            let layout = kith_core::pki::PkiLayout::new(ca);
            kith_core::pki::issue(&layout, &code)?;
            println!("{code}: {}", layout.authority_cert(&code).display());
        }
        Command::Pki(PkiCommand::Issue {
            csr: Some(csr),
            ca,
            config,
            out,
            authority,
            days,
        }) => {
            let (Some(config), Some(out)) = (config, out) else {
                bail!("signing a CSR needs --config (the federation's members) and --out CERT");
            };
            let config = kith_hub::config::HubConfig::load(&config)?;
            let expected = authority.map(AuthorityCode::new).transpose()?;
            let issued = issue_csr(&csr, &ca, &config, expected.as_ref(), days)?;
            write_new(&out, &issued.cert_pem)?;
            println!("{}: {}", issued.authority, out.display());
        }
        Command::Policy(PolicyCommand::Check { dir }) => {
            if !dir.is_dir() {
                bail!("{} is not a folder", dir.display());
            }
            let report = kith_policy::check(&dir);
            let text = report.to_string();
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            if !report.passed() {
                std::process::exit(1);
            }
        }
        Command::Policy(PolicyCommand::Init { dir }) => {
            kith_hub::default_policies::write_to(&dir, false)
                .with_context(|| format!("writing the default policy set to {}", dir.display()))?;
            println!("default policy set written to {}", dir.display());
        }
        Command::Vkey { config } => {
            let config = kith_hub::config::HubConfig::load(&config)?;
            let skey = std::fs::read_to_string(&config.audit.signing_key)
                .with_context(|| format!("reading {}", config.audit.signing_key.display()))?;
            let signer = kith_tlog::NoteSigner::from_skey(skey.trim())
                .map_err(|e| anyhow::anyhow!("{}: {e}", config.audit.signing_key.display()))?;
            println!("{}", signer.vkey());
        }
        Command::Demo { .. } => {
            bail!(
                "the demo is its own program now: run `cargo run -p kith-demo` \
                 (or `kith-demo --dir DIR --keep-running`)"
            );
        }
    }
    Ok(())
}

/// Checks and signs the request at `csr` with the CA in `ca_dir`, the
/// members being `config`'s [[authorities]].
fn issue_csr(
    csr: &std::path::Path,
    ca_dir: &std::path::Path,
    config: &kith_hub::config::HubConfig,
    expected: Option<&AuthorityCode>,
    days: u16,
) -> Result<kith_core::enrolment::Issued> {
    let layout = kith_core::pki::PkiLayout::new(ca_dir);
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let ca = kith_core::pki::CertificateAuthority::from_pem(
        &read(layout.ca_cert())?,
        &read(layout.ca_key())?,
    )?;
    let meta = std::fs::metadata(csr).with_context(|| format!("cannot read {}", csr.display()))?;
    if meta.len() > kith_core::enrolment::MAX_CSR_BYTES as u64 {
        bail!(
            "{}: {} bytes; a certificate signing request is at most {}",
            csr.display(),
            meta.len(),
            kith_core::enrolment::MAX_CSR_BYTES
        );
    }
    let request = read(csr.to_path_buf())?;
    let is_member =
        |code: &AuthorityCode| config.authorities.iter().any(|m| m.code == code.as_str());
    let validity = kith_core::pki::Validity {
        from_days_ago: 1,
        until_days_from_now: i64::from(days),
    };
    kith_core::enrolment::issue(&ca, &request, &is_member, expected, validity)
        .with_context(|| format!("refused to sign {}", csr.display()))
}

/// Writes `contents` to `path`, which must not exist yet.
fn write_new(path: &std::path::Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_with_their_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(io)
            .context("cannot read /etc/kith/hub.toml")
            .context("cannot load the hub config");
        assert_eq!(
            error_line(&error),
            "error: cannot load the hub config: cannot read /etc/kith/hub.toml: no such file"
        );
        // A cause its parent already quotes is not repeated.
        let quoted = anyhow::anyhow!("bad port").context("config key `listen`: bad port");
        assert_eq!(error_line(&quoted), "error: config key `listen`: bad port");
    }

    #[tokio::test]
    async fn a_failing_command_returns_its_error_for_main_to_print() {
        let cli =
            Cli::try_parse_from(["kith-hub", "policy", "check", "/nonexistent/kith-policies"])
                .unwrap();
        let error = run(cli).await.unwrap_err();
        let line = error_line(&error);
        assert_eq!(line, "error: /nonexistent/kith-policies is not a folder");
        assert!(
            !line.contains("Error:") && !line.contains("backtrace"),
            "{line}"
        );
    }
}
