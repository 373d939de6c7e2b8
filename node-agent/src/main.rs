//! The `kith-agent` command: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kith_agent::audit::break_glass::{self, ReviewOutcome};
use kith_agent::lifecycle::{self, Change};
use kith_agent::logging::{self, LogFormat};
use kith_agent::notifications::{self, NotificationKind, NotificationStore};
use kith_agent::outbox::Outbox;
use kith_agent::query::{BreakGlassArgs, DemographicArgs};
use kith_agent::terminal::{self, escape, escape_lines};
use kith_agent::{Agent, AgentConfig, QueryArgs, audit, ingest};
use kith_core::{Purpose, WithdrawReason};

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
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Human,
        env = "KITH_LOG_FORMAT"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: watch the drop folder, publish the outbox, keep the
    /// hub link open. Stops gracefully on Ctrl-C or SIGTERM.
    Run,
    /// Enqueue the records in source files now (*.jsonl or *.csv), or the
    /// sharing directives in *.directives.jsonl files, and print a report per
    /// file. The files are left where they are; record files are taken
    /// before directive files. Exits 2 if any line or file was refused.
    Ingest {
        /// The files to read.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the outbox, the certificate, and whether the hub answers and
    /// accepts this agent. Exits 3 if the certificate is unusable, the hub
    /// unreachable, or the hub refuses this agent.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the hub who else is involved with a person, on behalf of a member
    /// of staff and for a stated purpose.
    ///
    /// Name the person by NHS number or, without one, by demographics
    /// (--given-name, --family-name, --date-of-birth, and --postcode if
    /// known). A certain demographic match is answered like an NHS number;
    /// possible matches come back as candidates: if one is the person, ask
    /// the same again with --confirm CANDIDATE_ID. In an emergency, --break-glass
    /// REASON --justification TEXT claims emergency access: it is audited,
    /// flagged for your authority's review and the custodians are told.
    Query {
        /// The person's NHS number (10 digits, spaces allowed).
        #[arg(long)]
        nhs_number: Option<String>,
        /// Given name, for a search without an NHS number.
        #[arg(long)]
        given_name: Option<String>,
        /// Family name, for a search without an NHS number.
        #[arg(long)]
        family_name: Option<String>,
        /// Date of birth (YYYY-MM-DD), for a search without an NHS number.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        date_of_birth: Option<chrono::NaiveDate>,
        /// UK postcode, for a search without an NHS number.
        #[arg(long)]
        postcode: Option<String>,
        /// Confirm a candidate a previous search showed, giving the same
        /// demographics again: the answer is then for that person.
        #[arg(long, value_name = "CANDIDATE_ID")]
        confirm: Option<String>,
        /// Claim emergency access, with a reason code: life_threatening,
        /// immediate_safeguarding_risk, public_safety or other.
        #[arg(long, value_name = "REASON_CODE", requires = "justification")]
        break_glass: Option<String>,
        /// Why emergency access is needed now (10 to 1,000 characters).
        #[arg(long, value_name = "TEXT", requires = "break_glass")]
        justification: Option<String>,
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
    /// End or withdraw one of this authority's records at the hub.
    ///
    /// Takes effect for the next query, and is audited at the hub; prints the
    /// audit entry's index. To change a record's content instead, publish a
    /// new version through the drop folder.
    #[command(subcommand)]
    Record(RecordCommand),
    /// List the notifications the hub sent this authority, newest first:
    /// accesses to its records, break glass, and revocations of records its
    /// users received.
    ///
    /// Read from the agent's own database (kept by `run`), so the hub is not
    /// contacted.
    Notifications {
        /// Only this kind: access, break_glass or revocation.
        #[arg(long, value_parser = parse_notification_kind)]
        kind: Option<NotificationKind>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// Print as JSON (one array).
        #[arg(long)]
        json: bool,
    },
    /// Print an example config file to standard output.
    ExampleConfig,
    /// The auditor's commands: read the hub's audit log and prove it was
    /// never rewritten. See docs/audit.md.
    ///
    /// Every command names the acting auditor (--as USER --role ROLE). The
    /// hub's policy decides what they may read: role `auditor` reads the
    /// entries about its own authority (the rest arrive as leaf hashes only),
    /// role `federation_auditor` at the federation's oversight body reads
    /// all, anyone else is refused.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum RecordCommand {
    /// The relationship ended: set the end of its period at the hub.
    ///
    /// Example: kith-agent record end asc-1001 --on 2026-02-28
    End {
        /// The record's id, as published.
        record_id: String,
        /// The day the relationship ended (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        on: chrono::NaiveDate,
    },
    /// Take the record out of sharing altogether.
    ///
    /// entered_in_error: it should never have been published (for example
    /// the wrong person); no_longer_shared: it is correct but must no longer
    /// be shared. Authorities whose users received it are told it was
    /// revoked. Example: kith-agent record withdraw asc-1001 --reason
    /// entered_in_error
    Withdraw {
        /// The record's id, as published.
        record_id: String,
        /// entered_in_error or no_longer_shared.
        #[arg(long, value_parser = parse_withdraw_reason)]
        reason: WithdrawReason,
    },
}

/// Who is auditing, and which log key they trust.
#[derive(Debug, clap::Args)]
struct AuditorArgs {
    /// Your user id in this authority's systems.
    #[arg(long = "as", id = "acting_user", value_name = "USER")]
    user: String,
    /// Your role: `auditor` (your own authority's entries) or
    /// `federation_auditor` (every entry; oversight body only).
    #[arg(long, id = "acting_role")]
    role: String,
    /// Your name as colleagues know it.
    #[arg(long, id = "acting_name", default_value = "")]
    name: String,
    /// Your team.
    #[arg(long, id = "acting_team", default_value = "")]
    team: String,
    /// The audit log's verifier key (C2SP vkey file, e.g. PKI/audit-log.vkey).
    /// Overrides `[audit] vkey` in the config. With neither, checkpoints are
    /// checked only against the key the hub itself sends.
    #[arg(long, value_name = "FILE")]
    vkey: Option<PathBuf>,
}

impl AuditorArgs {
    fn auditor(&self) -> audit::Auditor {
        audit::Auditor {
            user_id: self.user.clone(),
            role: self.role.clone(),
            display_name: self.name.clone(),
            team: self.team.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print the log's latest signed checkpoint, its signature checked.
    ///
    /// Prints the C2SP signed note exactly as signed. Proves: the holder of
    /// the log key committed to a log of this many entries with this root.
    /// Keep it: a later `verify` proves the log still extends it.
    Checkpoint {
        #[command(flatten)]
        who: AuditorArgs,
        /// Print origin, size, root and note as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prove the log was never rewritten; names every failing entry.
    ///
    /// Checks the checkpoint's signature with your copy of the log key, every
    /// entry you may read against its logged leaf hash, the root over all
    /// leaves against the signed root (asking inclusion proofs to name the
    /// failing leaves if not), and consistency with the checkpoint saved by
    /// your last successful verify. Exits 4 naming every failing entry or
    /// range if the log fails; saves the new checkpoint only when it passes.
    Verify {
        #[command(flatten)]
        who: AuditorArgs,
        /// Where the checkpoint from the last successful verify is kept.
        /// [default: ~/.kith/audit-state.json]
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export entries as JSON Lines (exact leaf bytes) or FHIR AuditEvent.
    ///
    /// One entry per line, read against the latest checkpoint. JSON Lines
    /// carry each entry's index, leaf hash and exact bytes (base64), enough
    /// for any RFC 9162 implementation to recompute the signed root; entries
    /// withheld from you carry index and leaf hash only. FHIR R4 AuditEvent
    /// resources are written for the entries you may read.
    Export {
        #[command(flatten)]
        who: AuditorArgs,
        /// `jsonl`: {"index","leaf_hash","entry_base64","entry"}, enough for
        /// any RFC 9162 implementation to recompute the root; `fhir`: one
        /// AuditEvent per visible entry.
        #[arg(long, default_value = "jsonl", value_parser = parse_format)]
        format: audit::ExportFormat,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// First entry index to export.
        #[arg(long, value_name = "INDEX")]
        from: Option<u64>,
        /// Stop before this entry index [default: the checkpoint's tree size].
        #[arg(long, value_name = "INDEX")]
        to: Option<u64>,
        /// Also write the signed checkpoint the export was read against.
        #[arg(long, value_name = "FILE")]
        note: Option<PathBuf>,
    },
    /// Search the entries you may read.
    ///
    /// Every filter given must match. Entries outside your scope are not
    /// searched; the summary says how many there were.
    Search {
        #[command(flatten)]
        who: AuditorArgs,
        /// The NHS number asked about.
        #[arg(long, value_name = "NHS_NUMBER")]
        subject: Option<String>,
        /// The acting user.
        #[arg(long)]
        user: Option<String>,
        /// The acting authority's code.
        #[arg(long)]
        authority: Option<String>,
        /// An authority whose record the entry names.
        #[arg(long)]
        custodian: Option<String>,
        /// The stated purpose, e.g. safeguarding.
        #[arg(long)]
        purpose: Option<String>,
        /// The outcome (ok, refused) or a record's decision (detail, summary,
        /// withheld, hidden, accepted, ...).
        #[arg(long)]
        decision: Option<String>,
        /// publish, end, withdraw, query, refusal or audit_read.
        #[arg(long)]
        kind: Option<String>,
        /// At or after this time (RFC 3339, e.g. 2026-03-01T00:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// At or before this time (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Only break-glass accesses.
        #[arg(long)]
        break_glass: bool,
        /// Print the matching entries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Break-glass accesses by your authority's users awaiting review; with
    /// `review`, mark one reviewed.
    ///
    /// Lists who broke glass, when, about whom, with which reason and
    /// justification. Role `auditor`. Review each with
    /// `kith-agent audit break-glass review QUERY_ID --outcome
    /// appropriate|inappropriate --note TEXT --as USER --role auditor`;
    /// the review is itself audited.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    BreakGlass {
        #[command(subcommand)]
        action: Option<BreakGlassCommand>,
        #[command(flatten)]
        who: Option<AuditorArgs>,
        /// Also list accesses already reviewed, with their reviews.
        #[arg(long)]
        all: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Who looked a person up, when and why: for subject access requests.
    ///
    /// Every query about the person that you may read: when, which authority,
    /// user and role, the stated purpose, which records at which level, the
    /// deciding policies and the agreement they belong to.
    SubjectReport {
        #[command(flatten)]
        who: AuditorArgs,
        /// The person's NHS number (10 digits, spaces allowed).
        #[arg(long)]
        nhs_number: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BreakGlassCommand {
    /// Mark one break-glass access reviewed (the review is audited).
    Review {
        /// The query id the list shows.
        query_id: String,
        /// appropriate or inappropriate.
        #[arg(long, value_parser = parse_review_outcome)]
        outcome: ReviewOutcome,
        /// Why (required, at most 1,000 characters).
        #[arg(long)]
        note: String,
        #[command(flatten)]
        who: AuditorArgs,
    },
}

fn parse_format(s: &str) -> Result<audit::ExportFormat, String> {
    s.parse()
}

/// Progress on standard error, for logs long enough to notice.
fn progress(what: &'static str) -> impl FnMut(u64, u64) {
    let mut shown = 0;
    move |done, total| {
        if total >= 10_000 && (done - shown >= 10_000 || done == total) {
            shown = done;
            eprintln!("{what}: {done}/{total} entries");
        }
    }
}

fn warn_key(key: &audit::KeySource) {
    if let Some(w) = key.warning() {
        eprintln!("{}", escape_lines(&w.to_string()));
    }
}

async fn run_audit(config: &AgentConfig, command: AuditCommand) -> Result<ExitCode> {
    match command {
        AuditCommand::Checkpoint { who, json } => {
            let cp = audit::checkpoint(config, who.auditor(), who.vkey.as_deref()).await?;
            warn_key(&cp.key);
            if let Some(hub_key) = &cp.hub_vkey_differs {
                eprintln!(
                    "note: the hub sent another key ({}); the note verified with yours",
                    escape(hub_key)
                );
            }
            if json {
                let value = serde_json::json!({
                    "origin": cp.origin,
                    "tree_size": cp.tree_size,
                    "root_hash": hex_root(&cp.root_hash),
                    "vkey": cp.vkey,
                    "note": cp.note,
                });
                println!("{}", terminal::json_pretty(&value)?);
            } else {
                print!("{}", escape_lines(&cp.note));
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { who, state, json } => {
            let state = match state {
                Some(s) => Some(s),
                None => {
                    let default = audit::state::default_path();
                    if default.is_none() {
                        eprintln!(
                            "warning: no home folder and no --state FILE: consistency with                              earlier checkpoints is not checked and nothing is saved"
                        );
                    }
                    default
                }
            };
            let options = audit::VerifyOptions {
                vkey: who.vkey.clone(),
                state,
            };
            let report =
                audit::verify(config, who.auditor(), &options, &mut progress("read")).await?;
            if json {
                println!("{}", terminal::json_pretty(&report.to_json())?);
            } else if report.ok() {
                print!("{}", escape_lines(&report.render()));
            } else {
                eprint!("{}", escape_lines(&report.render()));
            }
            if json {
                warn_key(&report.checkpoint.key);
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(4)
            })
        }
        AuditCommand::Export {
            who,
            format,
            out,
            from,
            to,
            note,
        } => {
            let options = audit::ExportOptions {
                format,
                from,
                to,
                vkey: who.vkey.clone(),
            };
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let summary = audit::export(
                config,
                who.auditor(),
                &options,
                &mut sink,
                &mut progress("exported"),
            )
            .await?;
            drop(sink);
            warn_key(&summary.checkpoint.key);
            if let Some(path) = &note {
                std::fs::write(path, &summary.checkpoint.note)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            eprintln!(
                "exported {} lines (entries {}..{} of checkpoint size {}, root {}); {} withheld from you{}",
                summary.written,
                summary.from,
                summary.to,
                summary.checkpoint.tree_size,
                hex_root(&summary.checkpoint.root_hash),
                summary.withheld,
                match format {
                    audit::ExportFormat::Jsonl => " (exported as leaf hash only)",
                    audit::ExportFormat::Fhir => " (left out)",
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Search {
            who,
            subject,
            user,
            authority,
            custodian,
            purpose,
            decision,
            kind,
            from,
            to,
            break_glass,
            json,
        } => {
            let filter = audit::SearchFilter {
                subject,
                user,
                authority,
                custodian,
                purpose,
                decision,
                kind,
                from,
                to,
                break_glass,
            };
            let (cp, result) = audit::search(
                config,
                who.auditor(),
                &filter,
                who.vkey.as_deref(),
                &mut progress("read"),
            )
            .await?;
            warn_key(&cp.key);
            if json {
                println!("{}", terminal::json_pretty(&result)?);
            } else {
                print!("{}", escape_lines(&result.render_table()));
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::BreakGlass {
            action:
                Some(BreakGlassCommand::Review {
                    query_id,
                    outcome,
                    note,
                    who,
                }),
            ..
        } => {
            let index =
                break_glass::review(config, who.auditor(), &query_id, outcome, &note).await?;
            println!(
                "break-glass access {} reviewed; audit entry {index}",
                escape(&query_id)
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::BreakGlass {
            action: None,
            who,
            all,
            json,
        } => {
            let who = who.context("--as USER and --role auditor are required")?;
            let accesses = break_glass::list(config, who.auditor(), all).await?;
            if json {
                println!("{}", terminal::json_pretty(&accesses)?);
            } else {
                print!(
                    "{}",
                    escape_lines(&break_glass::render_table(&accesses, all))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::SubjectReport {
            who,
            nhs_number,
            json,
        } => {
            let (cp, report) = audit::subject_report(
                config,
                who.auditor(),
                &nhs_number,
                who.vkey.as_deref(),
                &mut progress("read"),
            )
            .await?;
            warn_key(&cp.key);
            if json {
                println!("{}", terminal::json_pretty(&report)?);
            } else {
                print!("{}", escape_lines(&report.render_table()));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn hex_root(root: &[u8; 32]) -> String {
    root.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_purpose(s: &str) -> Result<Purpose, String> {
    s.parse::<Purpose>().map_err(|e| e.to_string())
}

fn parse_withdraw_reason(s: &str) -> Result<WithdrawReason, String> {
    s.parse::<WithdrawReason>().map_err(|e| e.to_string())
}

fn parse_notification_kind(s: &str) -> Result<NotificationKind, String> {
    s.parse()
        .map_err(|e: kith_core::codes::UnknownCode| e.to_string())
}

fn parse_review_outcome(s: &str) -> Result<ReviewOutcome, String> {
    s.parse()
        .map_err(|e: kith_core::codes::UnknownCode| e.to_string())
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a date in the form YYYY-MM-DD: {e}"))
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
        Command::Audit(command) => {
            let config = load(&cli.config)?;
            run_audit(&config, command).await
        }
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
            // Records first: a directive for a record in the same call must
            // not reach the hub before it.
            let mut files = files;
            files.sort_by_key(|f| {
                ingest::SourceFormat::of(f) == Some(ingest::SourceFormat::DirectiveLines)
            });
            for file in &files {
                let report = ingest::ingest_file(file, &authority, &outbox)
                    .await
                    .with_context(|| format!("cannot ingest {}", file.display()))?;
                clean &= report.is_clean();
                if !json {
                    print!("{}", escape_lines(&report.render()));
                }
                reports.push(report);
            }
            if json {
                println!("{}", terminal::json_pretty(&reports)?);
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
                println!("{}", terminal::json_pretty(&status)?);
            } else {
                print!("{}", escape_lines(&status.to_string()));
            }
            Ok(if status.is_healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Query {
            nhs_number,
            given_name,
            family_name,
            date_of_birth,
            postcode,
            confirm,
            break_glass,
            justification,
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
                demographics: DemographicArgs {
                    given_name,
                    family_name,
                    date_of_birth,
                    postcode,
                },
                confirm,
                break_glass: break_glass.map(|reason_code| BreakGlassArgs {
                    reason_code,
                    justification: justification.unwrap_or_default(),
                }),
                purpose: Some(purpose),
                user_id: user,
                role,
                display_name: name,
                team,
            };
            let response = kith_agent::query(&config, args).await?;
            if json {
                println!("{}", terminal::json_pretty(&response)?);
            } else {
                print!("{}", escape_lines(&response.render_table()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Record(command) => {
            let config = load(&cli.config)?;
            let (record_id, change, done) = match command {
                RecordCommand::End { record_id, on } => {
                    (record_id, Change::End(on), format!("ended on {on}"))
                }
                RecordCommand::Withdraw { record_id, reason } => (
                    record_id,
                    Change::Withdraw(reason),
                    format!("withdrawn ({reason})"),
                ),
            };
            let index = lifecycle::change_record(&config, &record_id, change).await?;
            println!(
                "record {} of {} {done}; audit entry {index}",
                escape(&record_id),
                escape(&config.authority)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Notifications { kind, limit, json } => {
            let config = load(&cli.config)?;
            let outbox = Outbox::open(&config.outbox_path()).await?;
            let list = NotificationStore::new(&outbox).list(kind, limit).await?;
            outbox.close().await;
            if json {
                println!("{}", terminal::json_pretty(&list)?);
            } else {
                print!("{}", escape_lines(&notifications::render_table(&list)));
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
            // Errors can quote the hub, a file or the command line.
            eprintln!("error: {}", escape(&message));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "kith-agent",
            "audit",
            "search",
            "--as",
            "dpo",
            "--role",
            "auditor",
            "--user",
            "u-1",
            "--from",
            "2026-01-01T00:00:00Z",
        ])
        .unwrap();
        let Command::Audit(AuditCommand::Search {
            who, user, from, ..
        }) = cli.command
        else {
            panic!("not a search");
        };
        assert_eq!((who.user.as_str(), user.as_deref()), ("dpo", Some("u-1")));
        assert!(from.is_some());
    }

    /// Parses a command line given as words separated by spaces.
    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kith-agent").chain(line.split_whitespace()))
    }

    #[test]
    fn break_glass_lists_or_reviews() {
        let cli = parse("audit break-glass --all --as dpo --role auditor").unwrap();
        let Command::Audit(AuditCommand::BreakGlass {
            action: None,
            who: Some(who),
            all: true,
            json: false,
        }) = cli.command
        else {
            panic!("not a listing: {:?}", cli.command);
        };
        assert_eq!(who.role, "auditor");

        let review = "audit break-glass review q-7 --outcome inappropriate --note no_emergency";
        let cli = parse(&format!("{review} --as dpo --role auditor")).unwrap();
        let Command::Audit(AuditCommand::BreakGlass {
            action:
                Some(BreakGlassCommand::Review {
                    query_id,
                    outcome,
                    note,
                    who,
                }),
            ..
        }) = cli.command
        else {
            panic!("not a review");
        };
        assert_eq!(
            (query_id.as_str(), outcome, note.as_str(), who.user.as_str()),
            ("q-7", ReviewOutcome::Inappropriate, "no_emergency", "dpo")
        );

        // A review needs its outcome and note; the outcome is one of two.
        assert!(parse("audit break-glass review q-7 --note x --as d --role auditor").is_err());
        let err =
            parse("audit break-glass review q-7 --outcome fine --note x --as d --role auditor")
                .unwrap_err();
        assert!(
            err.to_string().contains("appropriate or inappropriate"),
            "{err}"
        );
        // A half-named auditor is refused.
        assert!(parse("audit break-glass --as dpo").is_err());
    }

    #[test]
    fn query_takes_demographics_confirm_and_break_glass() {
        let cli = parse(
            "query --given-name Amara --family-name Davies --date-of-birth 1958-11-02 \
             --postcode M166TR --confirm cand-1 --break-glass life_threatening \
             --justification unconscious_no_history --purpose emergency --as p1 --role paramedic",
        )
        .unwrap();
        let Command::Query {
            nhs_number,
            date_of_birth,
            confirm,
            break_glass,
            ..
        } = cli.command
        else {
            panic!("not a query");
        };
        assert_eq!(nhs_number, None);
        assert_eq!(date_of_birth, Some("1958-11-02".parse().unwrap()));
        assert_eq!(confirm.as_deref(), Some("cand-1"));
        assert_eq!(break_glass.as_deref(), Some("life_threatening"));
        let err = parse(
            "query --nhs-number 9434765919 --date-of-birth 02/11/1958 --purpose emergency \
             --as p1 --role paramedic",
        )
        .unwrap_err();
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
    }
}
