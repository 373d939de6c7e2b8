//! `kith-demo`: a whole federation in one command.
//!
//! Lays down a development PKI, the default policy set and configs in a
//! folder; starts a hub on SQLite and three agents (two councils and an NHS
//! trust) on loopback over mutual TLS; drops a synthetic data set into each
//! agent's drop folder; waits until every record is delivered; runs
//! case-worker queries and prints what each saw. With `--keep-running` the
//! federation stays up for `kith-agent --config DIR/agents/CODE/agent.toml …`,
//! and each agent also serves its staff console on loopback plain HTTP, with
//! a local account for a case worker, an auditor and an operator (passwords
//! generated and printed once).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kith_agent::{Agent, AgentConfig, QueryArgs, RunningAgent};
use kith_core::tls::TlsFiles;
use kith_core::{AuthorityCode, Purpose, RelationshipType};

use crate::synthetic::{Generator, Person};
use kith_hub::config::HubConfig;
use kith_hub::directory::Member;

const MARKER: &str = ".kith-demo";
/// The demo's log lines, in its folder.
pub const LOG_FILE: &str = "kith-demo.log";
const PEOPLE: u64 = 60;

struct Authority {
    code: &'static str,
    name: &'static str,
    kind: &'static str,
    /// The console's local accounts with `--keep-running`: (user id, name,
    /// team, role), one per demo role.
    staff: [(&'static str, &'static str, &'static str, &'static str); 3],
}

const AUTHORITIES: [Authority; 3] = [
    Authority {
        code: "E08000003",
        name: "Manchester City Council",
        kind: "council",
        staff: [
            (
                "j.hargreaves",
                "Jo Hargreaves",
                "Adult Social Care",
                "social_worker",
            ),
            ("m.dpo", "Mina Shah", "Information Governance", "auditor"),
            ("m.it", "Lee Grant", "IT Operations", "operator"),
        ],
    },
    Authority {
        code: "E08000006",
        name: "Salford City Council",
        kind: "council",
        staff: [
            (
                "s.okoye",
                "Sam Okoye",
                "Children's Services",
                "social_worker",
            ),
            ("s.dpo", "Ruth Adeyemi", "Information Governance", "auditor"),
            ("s.it", "Chris Doyle", "IT Operations", "operator"),
        ],
    },
    Authority {
        code: "R0A",
        name: "Manchester University NHS Foundation Trust",
        kind: "nhs_trust",
        staff: [
            (
                "a.rahman",
                "Dr Aisha Rahman",
                "Emergency Department",
                "ed_clinician",
            ),
            (
                "t.caldicott",
                "Dr Tom Price",
                "Caldicott Guardian",
                "auditor",
            ),
            ("t.it", "Priya Nair", "Digital Services", "operator"),
        ],
    },
];

/// Runs the demo in `dir` (a temporary folder when `None`), its log lines
/// into `log`'s file there when given.
pub async fn run(
    dir: Option<PathBuf>,
    keep_running: bool,
    signal: impl std::future::Future<Output = ()>,
    log: Option<&crate::log_file::DemoLog>,
) -> Result<()> {
    let temp;
    let dir = match dir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new().prefix("kith-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    prepare(&dir)?;
    println!("Kith demo: a hub and three agents on loopback, over mutual TLS");
    println!("  folder: {}", dir.display());
    if let Some(log) = log {
        let path = dir.join(LOG_FILE);
        log.open(&path)
            .with_context(|| format!("cannot write the demo's log to {}", path.display()))?;
        println!("  log:    {}", path.display());
    }

    // 1. PKI and policies.
    let codes: Vec<AuthorityCode> = AUTHORITIES
        .iter()
        .map(|a| AuthorityCode::new(a.code))
        .collect::<Result<_, _>>()?;
    let pki = kith_core::pki::init(
        &dir.join("pki"),
        &["localhost".into(), "127.0.0.1".into()],
        &codes,
    )?;
    kith_hub::default_policies::write_to(&dir.join("policies"), true)?;
    let (skey, vkey) =
        kith_hub::transparency::write_key(&dir.join("pki"), kith_hub::transparency::DEV_ORIGIN)
            .map_err(anyhow::Error::msg)?;
    std::fs::copy(&vkey, dir.join("audit-log.vkey"))?;
    println!(
        "[1/5] development PKI: federation CA, hub and {} authority certificates",
        codes.len()
    );

    // 2. Hub.
    let mut hub_config = HubConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}", dir.join("hub.db").display()),
        jurisdiction: "england".into(),
        policy_dir: dir.join("policies"),
        policy_reload_interval_ms: kith_hub::config::DEFAULT_POLICY_RELOAD_INTERVAL_MS,
        tls_reload_interval_ms: kith_hub::config::DEFAULT_TLS_RELOAD_INTERVAL_MS,
        detail_timeout_ms: kith_hub::config::DEFAULT_DETAIL_TIMEOUT_MS,
        tls: TlsFiles {
            ca: pki.ca_cert(),
            cert: pki.hub_cert(),
            key: pki.hub_key(),
        },
        sharing: Default::default(),
        limits: Default::default(),
        audit: kith_hub::config::AuditConfig::new(skey),
        metrics: kith_hub::config::metrics_on_any_loopback_port(),
        authorities: AUTHORITIES
            .iter()
            .map(|a| Member {
                code: a.code.into(),
                name: a.name.into(),
                kind: a.kind.into(),
                jurisdiction: "england".into(),
            })
            .collect(),
    };
    let hub = kith_hub::server::start(&hub_config)
        .await
        .context("starting the hub")?;
    hub_config.listen = hub.addr();
    std::fs::write(dir.join("hub.toml"), hub_config.to_toml())?;
    println!(
        "[2/5] hub serving on https://{} (SQLite {}/hub.db)",
        hub.addr(),
        dir.display()
    );

    // 3. Agents.
    let mut agents = Vec::new();
    let mut sign_ins: Vec<Vec<(&'static str, &'static str, String)>> = Vec::new();
    for (a, code) in AUTHORITIES.iter().zip(&codes) {
        let base = dir.join("agents").join(a.code);
        let mut config = AgentConfig::new(
            a.code,
            vec![format!("https://{}", hub.addr())],
            TlsFiles {
                ca: pki.ca_cert(),
                cert: pki.authority_cert(code),
                key: pki.authority_key(code),
            },
            base.join("data"),
            base.join("drop"),
        );
        config.ingest.poll_interval_ms = 100;
        // The agent's own copy of the policy set, checked before it gives
        // the hub the detail of a record held at source.
        config.policy = Some(kith_agent::config::PolicySection {
            dir: dir.join("policies"),
            kind: a.kind.into(),
            jurisdiction: "england".into(),
        });
        std::fs::create_dir_all(&config.drop_dir)?;
        std::fs::create_dir_all(&config.data_dir)?;
        if keep_running {
            // The staff console, on loopback plain HTTP, with one local
            // account per demo role (only when the federation stays up).
            config.console = Some(kith_agent::console::ConsoleSection::plain_loopback(
                "127.0.0.1:0".parse()?,
            ));
            sign_ins.push(add_console_accounts(&config, a).await?);
        }
        config.write(&base.join("agent.toml"))?;
        let agent = Agent::start(config)
            .await
            .with_context(|| format!("starting the agent of {}", a.name))?;
        agents.push(agent);
    }
    println!(
        "[3/5] agents running: {}",
        AUTHORITIES
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 4. Data.
    let (people, counts) = drop_data_set(&agents)?;
    for agent in &agents {
        // First the agent takes the file (it moves to done/), then delivers.
        let taken = agent.config().drop_dir.join("done").join("records.jsonl");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !taken.exists() {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the agent of {} did not take its drop file within 30 s",
                    agent.config().authority
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        agent
            .wait_until_drained(Duration::from_secs(60))
            .await
            .with_context(|| format!("waiting for {} to deliver", agent.config().authority))?;
    }
    let mut summary = String::new();
    for (a, (accepted, refused)) in AUTHORITIES.iter().zip(&counts) {
        let _ = write!(summary, "\n      {}: {accepted} records published", a.name);
        if *refused > 0 {
            let _ = write!(
                summary,
                ", {refused} line refused (see the report in its drop folder's done/)"
            );
        }
    }
    println!("[4/5] synthetic data set ({PEOPLE} people) delivered:{summary}");

    // 5. Queries.
    println!("[5/5] case-worker queries\n");
    let child = &people[0];
    let adult = &people[1];
    let asks = [
        (
            1,
            "s.okoye",
            "Sam Okoye",
            "social_worker",
            "Children's Services",
            Purpose::Safeguarding,
            child,
            "A Salford social worker, safeguarding, asks about a child",
        ),
        (
            2,
            "a.rahman",
            "Dr Aisha Rahman",
            "ed_clinician",
            "Emergency Department",
            Purpose::Safeguarding,
            child,
            "An emergency department doctor at the trust, safeguarding, asks about the same child",
        ),
        (
            0,
            "j.hargreaves",
            "Jo Hargreaves",
            "social_worker",
            "Adult Social Care",
            Purpose::CarePlanning,
            adult,
            "A Manchester adult social worker, care planning, asks about an adult",
        ),
        (
            1,
            "t.brennan",
            "Tom Brennan",
            "social_worker",
            "Housing",
            Purpose::PublicProtection,
            adult,
            "A Salford worker asks about the same adult for a purpose no agreement covers",
        ),
    ];
    for (i, (agent, user, name, role, team, purpose, person, title)) in asks.into_iter().enumerate()
    {
        let args = QueryArgs {
            nhs_number: Some(person.nhs_number.as_digits()),
            purpose: Some(purpose),
            user_id: user.into(),
            role: role.into(),
            display_name: name.into(),
            team: team.into(),
            ..QueryArgs::default()
        };
        ask(&dir, agents[agent].config(), i + 1, title, args).await?;
    }

    // Break glass: the trust's emergency doctor has no agreement covering
    // an adult's council records for an emergency; policy lets a summary
    // through under break glass, flagged for review and told to the
    // custodians.
    let args = QueryArgs {
        nhs_number: Some(adult.nhs_number.as_digits()),
        purpose: Some(Purpose::Emergency),
        user_id: "a.rahman".into(),
        role: "ed_clinician".into(),
        display_name: "Dr Aisha Rahman".into(),
        team: "Emergency Department".into(),
        break_glass: Some(kith_agent::query::BreakGlassArgs {
            reason_code: "life_threatening".into(),
            justification: "Unconscious on arrival, no history; need the care team now".into(),
        }),
        ..QueryArgs::default()
    };
    ask(
        &dir,
        agents[2].config(),
        5,
        "The trust's emergency doctor breaks glass for the adult (purpose emergency)",
        args,
    )
    .await?;

    // An objection: Manchester records the child's objection to sharing
    // the plan; the very next query honours it.
    let objection = serde_json::json!({
        "directive_id": "mcc-obj-0001", "version": 1, "record_id": "mcc-cpp-0001",
        "kind": "objection", "period": {"start": "2026-01-01"},
        "grantor": "the child, with Gillick competence",
        "recorded_at": chrono::Utc::now().to_rfc3339(),
    });
    let drop_dir = &agents[0].config().drop_dir;
    let temp = drop_dir.join(".objection.directives.jsonl.partial");
    std::fs::write(&temp, format!("{objection}\n"))?;
    std::fs::rename(&temp, drop_dir.join("objection.directives.jsonl"))?;
    let taken = drop_dir.join("done").join("objection.directives.jsonl");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !taken.exists() {
        if tokio::time::Instant::now() > deadline {
            bail!("Manchester's agent did not take the objection within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agents[0]
        .wait_until_drained(Duration::from_secs(30))
        .await
        .context("waiting for Manchester to deliver the objection")?;
    println!(
        "Manchester City Council records the child's objection to sharing mcc-cpp-0001\n  (a directive in {}/objection.directives.jsonl)\n",
        drop_dir.display()
    );
    let args = QueryArgs {
        nhs_number: Some(child.nhs_number.as_digits()),
        purpose: Some(Purpose::Safeguarding),
        user_id: "s.okoye".into(),
        role: "social_worker".into(),
        display_name: "Sam Okoye".into(),
        team: "Children's Services".into(),
        ..QueryArgs::default()
    };
    ask(
        &dir,
        agents[1].config(),
        6,
        "Query 1 again: the plan is now withheld; Salford was told of the revocation",
        args,
    )
    .await?;

    // What Manchester's agent was told about access to its child's plan.
    let config = agents[0].config();
    let outbox = kith_agent::Outbox::open(&config.outbox_path()).await?;
    let told = kith_agent::notifications::NotificationStore::new(&outbox)
        .list(None, 10)
        .await?;
    outbox.close().await;
    println!("What Manchester City Council's agent was told (access notifications, CP-IS style):");
    println!(
        "  kith-agent --config {}/agents/{}/agent.toml notifications",
        dir.display(),
        config.authority
    );
    println!(
        "{}",
        indent(&kith_agent::notifications::render_table(&told))
    );
    crate::subscription::show(&dir, &agents, child).await?;

    if keep_running {
        println!(
            "The staff consoles (loopback, plain HTTP; passwords generated now and shown only here):"
        );
        for ((a, agent), accounts) in AUTHORITIES.iter().zip(&agents).zip(&sign_ins) {
            if let Some(addr) = agent.console_address() {
                println!("  {}: http://{addr}/", a.name);
            }
            for (user, role, password) in accounts {
                println!("    {role:<14} user {user:<13} password {password}");
            }
        }
        println!();
        println!("The federation is running. In another terminal, for example:");
        println!(
            "  cargo run -p kith-agent -- --config {}/agents/E08000006/agent.toml status",
            dir.display()
        );
        println!(
            "  cargo run -p kith-agent -- --config {}/agents/E08000006/agent.toml query --nhs-number {} --purpose safeguarding --as me --role social_worker",
            dir.display(),
            child.nhs_number.as_digits()
        );
        println!("Press Ctrl-C to stop.");
        signal.await;
    }
    for agent in agents {
        agent.shutdown().await;
    }
    hub.shutdown().await?;
    println!("Stopped. Everything the demo made is in {}", dir.display());
    Ok(())
}

/// Adds the console's local accounts of `a` to the agent's database,
/// each with a generated password: (user id, role, password).
async fn add_console_accounts(
    config: &AgentConfig,
    a: &Authority,
) -> Result<Vec<(&'static str, &'static str, String)>> {
    use kith_agent::console::accounts::{Accounts, NewAccount};
    use rand::Rng;
    let outbox = kith_agent::Outbox::open(&config.outbox_path()).await?;
    let accounts = Accounts::new(&outbox);
    let roles = kith_agent::console::Roles::from_policy_dir(
        &config
            .policy
            .as_ref()
            .expect("the demo sets a policy copy")
            .dir,
    )
    .map_err(anyhow::Error::msg)?;
    let mut made = Vec::new();
    for (user, name, team, role) in a.staff {
        let password: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        accounts
            .add(
                &NewAccount {
                    user_id: user.into(),
                    display_name: name.into(),
                    team: team.into(),
                    role: role.into(),
                },
                &password,
                &roles,
            )
            .await
            .with_context(|| format!("adding the console account {user}"))?;
        made.push((user, role, password));
    }
    outbox.close().await;
    Ok(made)
}

/// Runs one case worker's query through an agent, printing the command
/// that does the same and what came back.
async fn ask(
    dir: &Path,
    config: &AgentConfig,
    n: usize,
    title: &str,
    args: QueryArgs,
) -> Result<()> {
    println!("Query {n}: {title}");
    let mut command = format!(
        "  kith-agent --config {}/agents/{}/agent.toml query --nhs-number {} --purpose {} --as {} --role {}",
        dir.display(),
        config.authority,
        args.nhs_number.as_deref().unwrap_or_default(),
        args.purpose.map_or("", |p| p.as_str()),
        args.user_id,
        args.role
    );
    if let Some(b) = &args.break_glass {
        let _ = write!(
            command,
            " --break-glass {} --justification {:?}",
            b.reason_code, b.justification
        );
    }
    println!("{command}");
    let answer = kith_agent::query(config, args).await.context("query")?;
    println!("{}", indent(&answer.render_table()));
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Refuses a non-empty folder that is not an earlier demo; clears an earlier demo.
fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} is not empty and was not made by `kith-demo`; choose another --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("clearing the earlier demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "made by kith-demo; the next demo run in this folder replaces it\n",
    )?;
    Ok(())
}

/// What the demo dropped: the people, and per authority (records written,
/// deliberately bad lines).
type DataSet = (Vec<Person>, Vec<(usize, usize)>);

/// Writes each authority's records into its agent's drop folder (write to a
/// temporary name, then rename, as a source system should).
fn drop_data_set(agents: &[RunningAgent]) -> Result<DataSet> {
    let mut generator = Generator::new(2026);
    let mut people: Vec<Person> = (0..PEOPLE).map(|n| generator.person(n)).collect();
    // The people the queries ask about: a child and an adult.
    people[0].date_of_birth = chrono::NaiveDate::from_ymd_opt(2016, 5, 14).expect("date");
    people[1].date_of_birth = chrono::NaiveDate::from_ymd_opt(1958, 11, 2).expect("date");
    let mut files: Vec<Vec<String>> = vec![Vec::new(); AUTHORITIES.len()];
    let mut push = |i: usize, record: kith_core::Record| {
        files[i].push(serde_json::to_string(&record).expect("record serialises"));
    };
    use RelationshipType::*;
    let (child, adult) = (people[0].clone(), people[1].clone());
    push(
        0,
        generator.record_of_type(
            AUTHORITIES[0].code,
            &child,
            "mcc-cpp-0001".into(),
            ChildProtectionPlan,
        ),
    );
    push(
        1,
        generator.record_of_type(
            AUTHORITIES[1].code,
            &child,
            "scc-lac-0001".into(),
            LookedAfterChild,
        ),
    );
    // The trust keeps this one's detail at source (residency): the hub
    // holds its index only, and fetches the detail live when policy permits.
    let mut held_at_source = generator.record_of_type(
        AUTHORITIES[2].code,
        &child,
        "mft-mh-0001".into(),
        MentalHealth,
    );
    held_at_source.residency = kith_core::Residency::SourceOnly;
    held_at_source.seal();
    push(2, held_at_source);
    push(
        0,
        generator.record_of_type(
            AUTHORITIES[0].code,
            &adult,
            "mcc-asc-0002".into(),
            AdultSocialCare,
        ),
    );
    push(
        1,
        generator.record_of_type(
            AUTHORITIES[1].code,
            &adult,
            "scc-hs-0002".into(),
            HousingSupport,
        ),
    );
    push(
        2,
        generator.record_of_type(
            AUTHORITIES[2].code,
            &adult,
            "mft-mh-0002".into(),
            MentalHealth,
        ),
    );
    for (n, person) in people.iter().enumerate().skip(2) {
        for (i, a) in AUTHORITIES.iter().enumerate() {
            if (n + i) % 3 != 0 {
                let id = format!("{}-{:04}", a.code.to_lowercase(), n);
                push(i, generator.record(a.code, a.kind, person, id));
            }
        }
    }
    let mut counts = Vec::new();
    for (i, (agent, mut lines)) in agents.iter().zip(files).enumerate() {
        let written = lines.len();
        let mut refused = 0;
        if i == 0 {
            // One line a source system got wrong: a mistyped NHS number.
            let mut bad: serde_json::Value = serde_json::from_str(&lines[2]).expect("json");
            bad["record_id"] = "mcc-typo-9999".into();
            bad["subject"]["nhs_number"] = "9990000019".into();
            lines.push(bad.to_string());
            refused = 1;
        }
        let drop_dir = &agent.config().drop_dir;
        let temp = drop_dir.join(".records.jsonl.partial");
        std::fs::write(&temp, lines.join("\n") + "\n")?;
        std::fs::rename(&temp, drop_dir.join("records.jsonl"))?;
        counts.push((written, refused));
    }
    Ok((people, counts))
}
