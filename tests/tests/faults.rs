//! Faults on the wire between an agent and its hub, and a hub outage: the
//! outbox drains exactly once and the link comes back.
//!
//! A [`FaultProxy`] sits between a real agent and a real hub on loopback.
//! Each phase drops a file of records into the agent, applies one fault
//! (delay, refused connections, resets mid-stream, half-open connections)
//! while they are published, lifts it, and waits for the outbox to drain.
//! At the end the hub's records table and audit log are counted: every
//! record stored once, accepted once, none missing.
//!
//! `KITH_FAULT_RECORDS` sets the records per phase (default 300);
//! `KITH_OUTAGE_SECONDS` the hub outage (default 3; the figure in
//! docs/reliability.md is for 60).

use std::time::{Duration, Instant};

use kith_agent::{Agent, AgentConfig};
use kith_tests::fault_proxy::{Fault, FaultProxy};
use kith_tests::process::{record_lines, size_from_env};
use kith_tests::tally::tally;
use kith_tests::*;

const WAIT: Duration = Duration::from_secs(60);

fn expected(custodian: &str, prefix: &str, n: u32) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (custodian.to_string(), format!("{prefix}-{i}")))
        .collect()
}

async fn drop_and_wait_taken(config: &AgentConfig, name: &str, text: &str) {
    drop_file(config, name, text);
    let done = config.drop_dir.join("done").join(name);
    assert!(
        eventually(WAIT, || async { done.exists() }).await,
        "{name} was not taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_drains_exactly_once_through_delay_refusal_resets_and_half_open_links() {
    let n = size_from_env("KITH_FAULT_RECORDS", 300);
    let _telemetry = kith_agent::logging::init(Default::default());
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let proxy = FaultProxy::start(hub.addr()).await;
    let mut config = t.agent_config(COUNCIL_A, proxy.addr());
    config.publish.batch_size = 50;
    config.publish.request_timeout_ms = 2_000;
    config.hub.connect_timeout_ms = 1_000;
    let agent = Agent::start(config.clone()).await.unwrap();
    assert!(
        agent.wait_until_linked(WAIT).await,
        "linked through the proxy"
    );
    let mut all = Vec::new();
    let mut phases = Vec::new();

    // 1. Every chunk delayed 20 ms each way.
    let started = Instant::now();
    proxy.set(Fault::Delay(Duration::from_millis(20)));
    drop_and_wait_taken(
        &config,
        "delay.jsonl",
        &record_lines(COUNCIL_A, "delay", 0..n, 0),
    )
    .await;
    agent.wait_until_drained(WAIT).await.unwrap();
    proxy.set(Fault::Pass);
    all.extend(expected(COUNCIL_A, "delay", n));
    phases.push(("delay 20 ms", started.elapsed()));

    // 2. Open connections reset and new ones refused for a second.
    let started = Instant::now();
    proxy.set(Fault::Refuse);
    proxy.reset_all();
    drop_and_wait_taken(
        &config,
        "refuse.jsonl",
        &record_lines(COUNCIL_A, "refuse", 0..n, n),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        agent.outbox().stats().await.unwrap().pending > 0,
        "nothing gets through while connections are refused"
    );
    proxy.set(Fault::Pass);
    agent.wait_until_drained(WAIT).await.unwrap();
    all.extend(expected(COUNCIL_A, "refuse", n));
    phases.push(("refused 1 s", started.elapsed()));

    // 3. Connections reset mid-stream, every 50 ms, while batches are in
    //    flight (each chunk slowed so that a reset lands inside a call).
    let started = Instant::now();
    proxy.set(Fault::Delay(Duration::from_millis(5)));
    drop_file(
        &config,
        "reset.jsonl",
        &record_lines(COUNCIL_A, "reset", 0..n, 2 * n),
    );
    let resetting = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            proxy.reset_all();
        }
    };
    resetting.await;
    proxy.set(Fault::Pass);
    let done = config.drop_dir.join("done/reset.jsonl");
    assert!(eventually(WAIT, || async { done.exists() }).await);
    agent.wait_until_drained(WAIT).await.unwrap();
    all.extend(expected(COUNCIL_A, "reset", n));
    phases.push(("reset every 50 ms for 1 s", started.elapsed()));

    // 4. Half-open: every open connection goes silent for good, without a
    //    close, while a file is published. The agent's request timeout
    //    (2 s) ends the stuck call; it dials again and the new connection
    //    passes.
    let started = Instant::now();
    let accepted_before = proxy.accepted();
    proxy.freeze_open();
    drop_and_wait_taken(
        &config,
        "halfopen.jsonl",
        &record_lines(COUNCIL_A, "halfopen", 0..n, 3 * n),
    )
    .await;
    agent.wait_until_drained(WAIT).await.unwrap();
    assert!(
        proxy.accepted() > accepted_before,
        "the agent dialled a new connection"
    );
    all.extend(expected(COUNCIL_A, "halfopen", n));
    phases.push(("half-open", started.elapsed()));

    // The link is back: the hub routes to this authority again.
    assert!(
        eventually(WAIT, || async { hub.links().get(COUNCIL_A).is_some() }).await,
        "the link recovered"
    );
    assert!(agent.wait_until_linked(WAIT).await);

    let db = HubDb::connect(&t).await;
    let counted = tally(&db).await;
    db.close().await;
    assert_eq!(counted.stored.get(COUNCIL_A), Some(&(4 * u64::from(n))));
    assert!(
        counted.missing(&all).is_empty(),
        "lost: {:?}",
        counted.missing(&all)
    );
    assert!(
        counted.duplicated().is_empty(),
        "doubled: {:?}",
        counted.duplicated()
    );
    assert_eq!(counted.accepted.len(), all.len());
    let stats = agent.outbox().stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered), (0, 4 * u64::from(n)));
    eprintln!(
        "fault proxy: {} records in 4 phases, {:?}; stored {}, accepted once each, \
         0 lost, 0 doubled; other decisions {:?}; connections accepted by the proxy {}",
        4 * n,
        phases,
        counted.stored[COUNCIL_A],
        counted.other_decisions,
        proxy.accepted()
    );
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_hub_outage_loses_nothing_and_the_outbox_drains_after_it() {
    let n = size_from_env("KITH_FAULT_RECORDS", 300);
    let outage = Duration::from_secs(u64::from(size_from_env("KITH_OUTAGE_SECONDS", 3)));
    let t = TestDir::new();
    let port = kith_tests::process::free_port();
    let hub = kith_hub::server::start(&t.hub_config(port)).await.unwrap();
    let mut config = t.agent_config(COUNCIL_A, hub.addr());
    config.hub.connect_timeout_ms = 1_000;
    let agent = Agent::start(config.clone()).await.unwrap();
    drop_and_wait_taken(
        &config,
        "before.jsonl",
        &record_lines(COUNCIL_A, "before", 0..n, 0),
    )
    .await;
    agent.wait_until_drained(WAIT).await.unwrap();

    // The hub goes away; the agent takes a file meanwhile and keeps it.
    hub.shutdown().await.unwrap();
    let down = Instant::now();
    drop_and_wait_taken(
        &config,
        "during.jsonl",
        &record_lines(COUNCIL_A, "during", 0..n, n),
    )
    .await;
    while down.elapsed() < outage {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            agent.outbox().stats().await.unwrap().pending,
            u64::from(n),
            "kept in the outbox during the outage"
        );
    }
    let hub = kith_hub::server::start(&t.hub_config(port)).await.unwrap();
    let back = Instant::now();
    agent.wait_until_drained(WAIT).await.unwrap();
    let drained_in = back.elapsed();

    let mut all = expected(COUNCIL_A, "before", n);
    all.extend(expected(COUNCIL_A, "during", n));
    let db = HubDb::connect(&t).await;
    let counted = tally(&db).await;
    db.close().await;
    assert_eq!(counted.stored.get(COUNCIL_A), Some(&(2 * u64::from(n))));
    assert!(
        counted.missing(&all).is_empty(),
        "lost: {:?}",
        counted.missing(&all)
    );
    assert!(
        counted.duplicated().is_empty(),
        "doubled: {:?}",
        counted.duplicated()
    );
    eprintln!(
        "hub outage of {:?}: {} records queued during it, drained {:?} after the hub came back; \
         0 lost, 0 doubled",
        outage, n, drained_in
    );
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_cancelled_mid_call_never_break_later_writes() {
    // A client that gives up on a call (its timeout, a reset, a killed
    // agent) makes tonic drop the hub's handler. Before the hub ran writes
    // to completion on their own task, a drop between sqlx's BEGIN and its
    // transaction guard left a pooled SQLite connection "inside a
    // transaction", and every later publish on it failed.
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let tls = t.agent_tls(COUNCIL_A);
    let ch = channel(hub.addr(), &tls).await.unwrap();
    let mut n = 0u32;
    for round in 0..200u64 {
        let records = (n..n + 20)
            .map(|i| {
                record_wire(
                    COUNCIL_A,
                    &format!("cancel-{i}"),
                    1,
                    &test_nhs_number(i),
                    "child_in_need",
                    &["safeguarding"],
                )
            })
            .collect();
        n += 20;
        let mut c = records_client(ch.clone());
        // Give up after 0–3.9 ms: some calls are dropped before the hub
        // starts, some inside the store, some after it answered.
        let wait = Duration::from_micros((round * 397) % 4_000);
        let _ = tokio::time::timeout(
            wait,
            c.publish_records(v1::PublishRecordsRequest { records }),
        )
        .await;
    }
    // Let the hub finish what it had started; then every write still works.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..8u32 {
        let record = record_wire(
            COUNCIL_A,
            &format!("after-{i}"),
            1,
            &test_nhs_number(100_000 + i),
            "child_in_need",
            &["safeguarding"],
        );
        publish_accepted(hub.addr(), &tls, vec![record]).await;
    }
    hub.shutdown().await.unwrap();
}
