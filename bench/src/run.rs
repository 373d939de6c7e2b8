//! One benchmark run, phase by phase: the echo baseline, then a hub on a
//! fresh store, ingest, queries, and the hub's peak memory; with
//! `--subscriptions N`, then a second hub on a second fresh store holding N
//! current subscriptions, and the same ingest again (issue #17.3).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kith_proto::v1 as pb;
use kith_tests::TestStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::federation::{Federation, QUERIER};
use crate::generator::{Batches, Plan};
use crate::load::{self, Outcome, Window};
use crate::process::{ChildProcess, free_loopback_addr};
use crate::report::{Params, Report, SubscriptionsPhase, load_average};
use crate::subscriptions;
use crate::{echo, ingest, rss};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub store: TestStore,
    pub records: u64,
    pub records_per_person: u32,
    pub clients: usize,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub publishers: usize,
    pub batch_size: usize,
    pub quick: bool,
    pub quiet: bool,
    pub seed: u64,
    /// Current subscriptions for the second ingest; 0: no second ingest.
    pub subscriptions: u64,
    pub hub_bin: PathBuf,
    pub self_bin: PathBuf,
}

fn note(quiet: bool, text: &str) {
    if !quiet {
        eprintln!("{text}");
    }
}

/// `count` mutual-TLS connections to `addr`, as the authority `code`.
async fn connections(
    federation: &Federation,
    addr: std::net::SocketAddr,
    code: &str,
    count: usize,
) -> Result<Vec<Channel>> {
    let tls = federation.tls(code);
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        channels.push(
            kith_tests::channel(addr, &tls)
                .await
                .with_context(|| format!("connecting to {addr} as {code}"))?,
        );
    }
    Ok(channels)
}

/// Runs every phase and returns the report.
pub async fn run(o: &Options) -> Result<Report> {
    let plan = Plan {
        records: o.records,
        per_person: o.records_per_person,
        batch_size: o.batch_size,
        seed: o.seed,
    };
    plan.check().map_err(anyhow::Error::msg)?;
    if o.subscriptions > 0 {
        subscriptions::check(o.subscriptions, plan.people()).map_err(anyhow::Error::msg)?;
    }
    let phases = if o.subscriptions > 0 { 5 } else { 4 };
    let window = Window {
        warmup: o.warmup,
        measure: o.duration,
    };
    let load_before = load_average();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut federation = Federation::create(o.store);
    note(
        o.quiet,
        &format!("kith-bench: working in {}", federation.path().display()),
    );

    // 1. The baseline: a bare echo over the same mutual TLS.
    note(o.quiet, &format!("[1/{phases}] echo baseline"));
    let echo_addr = free_loopback_addr()?;
    let tls = federation.hub_tls();
    let mut echo_server = ChildProcess::spawn(
        "kith-bench echo-server",
        &o.self_bin,
        [
            "echo-server".to_string(),
            "--ca".into(),
            tls.ca.display().to_string(),
            "--cert".into(),
            tls.cert.display().to_string(),
            "--key".into(),
            tls.key.display().to_string(),
            "--listen".into(),
            echo_addr.to_string(),
        ],
        &federation.path().join("echo.log"),
    )?;
    let client_tls = federation.tls(QUERIER);
    echo::wait_ready(echo_addr, &client_tls, Duration::from_secs(10), || {
        echo_server.check_running()
    })
    .await?;
    let channels = connections(&federation, echo_addr, QUERIER, o.connections).await?;
    let clients = (0..o.clients)
        .map(|i| {
            let client = echo::client(channels[i % channels.len()].clone());
            move || {
                let mut client = client.clone();
                async move {
                    match client.echo(echo::payload()).await {
                        Ok(_) => Outcome::Counted,
                        Err(status) => Outcome::Failed(status.to_string()),
                    }
                }
            }
        })
        .collect();
    let echo_result = load::drive(clients, window, Some(echo_server.pid())).await;
    drop(channels);
    echo_server.terminate(Duration::from_secs(5))?;

    // 2. The hub, on a fresh store.
    note(o.quiet, &format!("[2/{phases}] starting kith-hub"));
    let hub_addr = federation.start_hub(&o.hub_bin).await?;
    let hub_pid = federation.hub_pid().expect("the hub runs");

    // 3. Ingest.
    note(
        o.quiet,
        &format!(
            "[3/{phases}] ingest: {} records about {} people, batches of {}, {} publishers",
            o.records,
            plan.people(),
            o.batch_size,
            o.publishers
        ),
    );
    let ingest_summary = {
        let federation = &federation;
        ingest::run(
            hub_addr,
            hub_pid,
            |code| federation.tls(code),
            Batches::new(plan),
            o.publishers,
            o.records,
            o.quiet,
        )
        .await?
    };
    federation.check_hub()?;
    let after_ingest = rss::of_process(hub_pid)?;

    // 4. Queries: random people who have records, as a social worker at
    // another council, for direct care (the default agreements share
    // children's and adults' records for it).
    note(o.quiet, &format!("[4/{phases}] queries"));
    let channels = connections(&federation, hub_addr, QUERIER, o.connections).await?;
    let people = plan.people();
    let clients = (0..o.clients)
        .map(|i| {
            let client = pb::query_service_client::QueryServiceClient::new(
                channels[i % channels.len()].clone(),
            );
            let mut rng = StdRng::seed_from_u64(o.seed ^ (i as u64 + 1));
            move || {
                let mut client = client.clone();
                let person = rng.random_range(0..people);
                async move {
                    let nhs = kith_demo::synthetic::test_nhs_number(person).as_digits();
                    let request =
                        kith_tests::query_request(&nhs, pb::Purpose::DirectCare, "social_worker");
                    match client.query(request).await {
                        Ok(answer) => {
                            let disclosed = answer.into_inner().records.iter().any(|r| {
                                matches!(
                                    r.level(),
                                    pb::DisclosureLevel::Detail | pb::DisclosureLevel::Summary
                                )
                            });
                            if disclosed {
                                Outcome::Counted
                            } else {
                                Outcome::Uncounted
                            }
                        }
                        Err(status) => Outcome::Failed(status.to_string()),
                    }
                }
            }
        })
        .collect();
    let query_result = load::drive(clients, window, Some(hub_pid)).await;
    drop(channels);
    federation.check_hub()?;
    let hub_memory = rss::of_process(hub_pid)?;
    federation.stop_hub()?;
    let sqlite_bytes = (o.store == TestStore::Sqlite).then(|| federation.sqlite_bytes());

    for (phase, r) in [("echo", &echo_result), ("query", &query_result)] {
        if let Some(e) = &r.first_error {
            eprintln!("{phase}: {} calls failed, first: {e}", r.failed);
        }
    }
    if echo_result.counted == 0 || query_result.counted == 0 {
        bail!(
            "nothing counted (echo {}, authorised queries {}): see the errors above and {}",
            echo_result.counted,
            query_result.counted,
            federation.path().join("hub.log").display()
        );
    }

    drop(federation); // its store (and PostgreSQL database) goes before the next

    // 5. The same ingest into a fresh store holding the subscriptions.
    let subscribed = if o.subscriptions > 0 {
        Some(subscribed_ingest(o, plan, phases, &ingest_summary).await?)
    } else {
        None
    };

    let echo = echo_result.summary();
    let query = query_result.summary();
    let mut report = Report {
        params: Params {
            started_at,
            store: match o.store {
                TestStore::Sqlite => "sqlite".into(),
                TestStore::Postgres => "postgres".into(),
            },
            records: o.records,
            records_per_person: o.records_per_person,
            people,
            clients: o.clients,
            connections: o.connections,
            duration_s: o.duration.as_secs_f64(),
            warmup_s: o.warmup.as_secs_f64(),
            publishers: o.publishers,
            batch_size: o.batch_size,
            quick: o.quick,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_before,
            load_after: load_average(),
        },
        query_to_echo: query.per_s / echo.per_s,
        cpu_to_echo: query
            .server_cpu_per_call_us
            .zip(echo.server_cpu_per_call_us)
            .filter(|(_, e)| *e > 0.0)
            .map(|(q, e)| q / e),
        echo,
        ingest: ingest_summary,
        query,
        hub_memory_after_ingest: after_ingest,
        hub_memory,
        sqlite_bytes,
        subscriptions: subscribed,
        targets: vec![],
    };
    report.check_targets();
    Ok(report)
}

/// Phase 5: a second federation on a fresh store, `o.subscriptions`
/// subscriptions stored in it before its hub starts, then the same ingest
/// as phase 3 (same plan and seed: the same records), compared with
/// `without` (phase 3's).
async fn subscribed_ingest(
    o: &Options,
    plan: Plan,
    phases: u32,
    without: &ingest::IngestSummary,
) -> Result<SubscriptionsPhase> {
    let mut federation = Federation::create(o.store);
    let url = federation.dir.database_url();
    note(
        o.quiet,
        &format!(
            "[5/{phases}] storing {} subscriptions of {} for {} of {} people",
            o.subscriptions,
            subscriptions::SUBSCRIBER,
            o.subscriptions,
            plan.people()
        ),
    );
    let seed = subscriptions::seed(&url, o.subscriptions, plan.people()).await?;
    note(
        o.quiet,
        &format!(
            "  stored in {:.1} s ({:.0}/s); starting kith-hub on that store",
            seed.elapsed_s, seed.per_s
        ),
    );
    let hub_addr = federation.start_hub(&o.hub_bin).await?;
    let hub_pid = federation.hub_pid().expect("the hub runs");
    note(
        o.quiet,
        &format!(
            "[5/{phases}] ingest with {} subscriptions: the same {} records",
            o.subscriptions, o.records
        ),
    );
    let with = {
        let federation = &federation;
        ingest::run(
            hub_addr,
            hub_pid,
            |code| federation.tls(code),
            Batches::new(plan),
            o.publishers,
            o.records,
            o.quiet,
        )
        .await?
    };
    federation.check_hub()?;
    let hub_memory = rss::of_process(hub_pid)?;
    federation.stop_hub()?;
    let limit = u32::try_from(o.records).unwrap_or(u32::MAX);
    let notices_stored = subscriptions::notices_stored(&url, limit).await?;
    Ok(SubscriptionsPhase::new(
        seed,
        with,
        without,
        notices_stored,
        hub_memory,
    ))
}
