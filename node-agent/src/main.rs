//! The `kith-agent` command: parses arguments (`cli.rs`) and calls the
//! library.

mod cli;

use cli::{AuditCommand, BreakGlassCommand, Cli, Command, PkiCommand, RecordCommand, UserCommand};
use kith_core::AuthorityCode;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use kith_agent::audit::break_glass::{self};
use kith_agent::lifecycle::{self, Change};
use kith_agent::logging::{self};
use kith_agent::notifications::{self, NotificationStore};
use kith_agent::outbox::Outbox;
use kith_agent::query::{BreakGlassArgs, DemographicArgs};
use kith_agent::subscriptions;
use kith_agent::terminal::{self, escape, escape_lines};
use kith_agent::{Agent, AgentConfig, QueryArgs, audit, ingest};

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

/// One line from standard input: the password (prompted for on a terminal).
fn read_password() -> Result<String> {
    use std::io::{BufRead, IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        eprint!("password (shown as typed; at least 12 characters): ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(4096)
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn run_user(config: &AgentConfig, command: UserCommand) -> Result<ExitCode> {
    use kith_agent::console::accounts::{self, Accounts, NewAccount};
    let outbox = Outbox::open(&config.outbox_path()).await?;
    let accounts = Accounts::new(&outbox);
    let result = async {
        match command {
            UserCommand::Add {
                user_id,
                name,
                team,
                role,
            } => {
                let roles = match &config.policy {
                    Some(p) => kith_agent::console::Roles::from_policy_dir(&p.dir)
                        .map_err(anyhow::Error::msg)?,
                    None => kith_agent::console::Roles::default_set(),
                };
                let password = read_password()?;
                let new = NewAccount {
                    user_id,
                    display_name: name,
                    team,
                    role,
                };
                accounts.add(&new, &password, &roles).await?;
                println!("user {} added", escape(new.user_id.trim()));
            }
            UserCommand::Disable { user_id } => {
                accounts.disable(&user_id).await?;
                println!("user {} disabled; their sessions ended", escape(&user_id));
            }
            UserCommand::List { json } => {
                let list = accounts.list().await?;
                if json {
                    println!("{}", terminal::json_pretty(&list)?);
                } else {
                    print!("{}", escape_lines(&accounts::render_table(&list)));
                }
            }
            UserCommand::ResetPassword { user_id } => {
                let password = read_password()?;
                accounts.reset_password(&user_id, &password).await?;
                println!(
                    "password of {} reset; the account is enabled and its sessions ended",
                    escape(&user_id)
                );
            }
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    }
    .await;
    outbox.close().await;
    result
}

fn hex_root(root: &[u8; 32]) -> String {
    root.iter().map(|b| format!("{b:02x}")).collect()
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
        Command::User(command) => {
            let config = load(&cli.config)?;
            run_user(&config, command).await
        }
        Command::ExampleConfig => {
            print!("{}", AgentConfig::example_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki(PkiCommand::Request { authority, out }) => {
            let code = AuthorityCode::new(authority).context("--authority")?;
            let files = kith_core::enrolment::write_request(&out, &code)?;
            let key = escape(&files.key.display().to_string()).into_owned();
            let csr = escape(&files.csr.display().to_string()).into_owned();
            println!("private key (stays on this machine, mode 0600): {key}");
            println!("certificate signing request for {code}: {csr}");
            println!(
                "send the request to the federation CA, who runs: kith-hub pki issue {csr} ..."
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            let config = load(&cli.config)?;
            let agent = Agent::start(config)
                .await
                .context("cannot start the agent")?;
            #[cfg(unix)]
            {
                // SIGHUP: load the TLS certificate, key and trust bundle now.
                let tls_reload = agent.tls_reload_handle();
                let mut hup =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the TLS files");
                        tls_reload.poke();
                    }
                });
            }
            shutdown_signal().await;
            agent.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { files, json } => {
            let config = load(&cli.config)?;
            let authority = config.authority_code().context("config key `authority`")?;
            let outbox = Outbox::open(&config.outbox_path()).await?;
            let reports = ingest::ingest_files(&files, &authority, &outbox, |report| {
                if !json {
                    print!("{}", escape_lines(&report.render()));
                }
            })
            .await
            .map_err(|(file, e)| {
                anyhow::Error::new(e).context(format!("cannot ingest {}", file.display()))
            })?;
            let clean = reports.iter().all(|r| r.is_clean());
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
        Command::Backup { out } => {
            let config = load(&cli.config)?;
            let written = kith_agent::backup::backup(&config, &out).context("backup failed")?;
            print!("{}", written.describe());
            print_outbox_state(&written.state);
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            from,
            replace,
            dry_run,
        } => {
            let config = load(&cli.config)?;
            let restored = kith_agent::backup::restore(&config, &from, replace, dry_run)
                .with_context(|| format!("{} was not restored", from.display()))?;
            print!("{}", restored.describe());
            print_outbox_state(&restored.state);
            Ok(ExitCode::SUCCESS)
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
        Command::Subscribe {
            nhs_number,
            types,
            categories,
            purpose,
            ends_on,
            user,
            role,
            team,
            file,
            json,
        } => {
            let config = load(&cli.config)?;
            if let Some(file) = file {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let report = subscriptions::subscribe_lines(&config, &text).await?;
                if json {
                    println!("{}", terminal::json_pretty(&report)?);
                } else {
                    print!("{}", escape_lines(&report.render()));
                }
                return Ok(if report.rejected > 0 {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                });
            }
            let line = subscriptions::SubscriptionLine {
                nhs_number: nhs_number.unwrap_or_default(),
                relationship_types: types,
                categories,
                purpose: purpose.map(|p| p.as_str().to_string()).unwrap_or_default(),
                ends_on,
                user_id: user.unwrap_or_default(),
                role: role.unwrap_or_default(),
                team,
            };
            let s = subscriptions::subscribe(&config, &line.request()).await?;
            if json {
                println!(
                    "{}",
                    terminal::json_pretty(&serde_json::json!({
                        "subscription_id": s.subscription_id,
                        "ends_on": s.ends_on,
                    }))?
                );
            } else {
                println!(
                    "subscribed {} until {}",
                    escape(&s.subscription_id),
                    escape(&s.ends_on)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Unsubscribe {
            subscription_id,
            user,
            role,
        } => {
            let config = load(&cli.config)?;
            let acting = kith_core::ActingUser {
                user_id: user,
                display_name: String::new(),
                role,
                team: String::new(),
            };
            let index = subscriptions::unsubscribe(&config, &acting, &subscription_id).await?;
            println!(
                "subscription {} ended; audit entry {index}",
                escape(&subscription_id)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Subscriptions { all, json } => {
            let config = load(&cli.config)?;
            let list = subscriptions::list(&config, all).await?;
            if json {
                println!("{}", terminal::json_pretty(&list)?);
            } else {
                print!("{}", escape_lines(&subscriptions::render_table(&list)));
            }
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
    let _telemetry = logging::init(cli.log_format);
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

fn print_outbox_state(state: &kith_agent::backup::OutboxState) {
    println!(
        "  records: {} pending, {} delivered, {} rejected",
        state.records_pending, state.records_delivered, state.records_rejected
    );
    println!("  directives: {}", state.directives);
    println!("  notifications: {}", state.notifications);
    println!("  console accounts: {}", state.console_accounts);
    println!("  schema version: {}", state.schema_version);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use kith_agent::audit::break_glass::ReviewOutcome;

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
