//! Real agents against a real hub: drop folder to hub, restarts, outages,
//! malformed files, the link and status. Nothing accepted is lost, and
//! nothing is delivered twice.

use std::time::Duration;

use kith_agent::{Agent, AgentConfig};
use kith_tests::*;

const WAIT: Duration = Duration::from_secs(20);

async fn wait_taken(config: &AgentConfig, name: &str) {
    let done = config.drop_dir.join("done").join(name);
    assert!(
        eventually(WAIT, || async { done.exists() }).await,
        "{name} was not taken into done/"
    );
}

fn lines(custodian: &str, ids: &[(&str, u32)]) -> String {
    ids.iter()
        .map(|(id, n)| {
            record_json(
                custodian,
                id,
                1,
                &test_nhs_number(*n),
                "child_in_need",
                &["safeguarding"],
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// How many times the hub accepted each record id, from its audit log.
async fn accepted_counts(
    hub: &kith_hub::server::RunningHub,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for entry in audit_entries(hub).await {
        if entry["kind"] == "publish" {
            for r in entry["records"].as_array().unwrap() {
                if r["decision"] == "accepted" {
                    *counts
                        .entry(r["record_id"].as_str().unwrap().to_string())
                        .or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn dropped_records_reach_the_hub_bad_lines_are_reported_and_others_can_query_them() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let config = t.agent_config(COUNCIL_A, hub.addr());
    let agent = Agent::start(config.clone()).await.unwrap();

    let mut text = lines(COUNCIL_A, &[("cin-1", 10), ("cin-2", 11)]);
    text.push_str(&record_json(
        COUNCIL_A,
        "cin-3",
        1,
        "9434765918",
        "child_in_need",
        &["safeguarding"],
    ));
    text.push('\n');
    drop_file(&config, "monday.jsonl", &text);
    wait_taken(&config, "monday.jsonl").await;
    agent.wait_until_drained(WAIT).await.unwrap();

    let report = std::fs::read_to_string(
        config
            .drop_dir
            .join("done")
            .join("monday.jsonl.report.json"),
    )
    .unwrap();
    assert!(
        report.contains("\"line\": 3") || report.contains("\"line\":3"),
        "{report}"
    );
    assert!(report.contains("subject.nhs_number"), "{report}");
    assert_eq!(
        accepted_counts(&hub).await.keys().collect::<Vec<_>>(),
        ["cin-1", "cin-2"]
    );

    // A social worker at another council finds the record through their agent.
    let b = t.agent_config(COUNCIL_B, hub.addr());
    let answer = kith_agent::query(
        &b,
        kith_agent::QueryArgs {
            nhs_number: Some(test_nhs_number(10)),
            purpose: Some(kith_core::Purpose::Safeguarding),
            user_id: "u-7".into(),
            role: "social_worker".into(),
            display_name: "Sam".into(),
            ..kith_agent::QueryArgs::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.records[0].custodian, COUNCIL_A);
    assert_eq!(answer.records[0].level, "detail");
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_agent_restarted_with_a_full_outbox_delivers_everything_once() {
    let t = TestDir::new();
    let port = free_port();
    // No hub yet: the agent takes the file into its outbox and keeps it.
    let config = t.agent_config(
        COUNCIL_A,
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    );
    let agent = Agent::start(config.clone()).await.unwrap();
    drop_file(
        &config,
        "batch.jsonl",
        &lines(COUNCIL_A, &[("a", 20), ("b", 21), ("c", 22)]),
    );
    wait_taken(&config, "batch.jsonl").await;
    assert_eq!(agent.outbox().stats().await.unwrap().pending, 3);
    agent.shutdown().await; // as good as a crash: nothing was delivered

    let hub = kith_hub::server::start(&t.hub_config(port)).await.unwrap();
    let agent = Agent::start(config.clone()).await.unwrap();
    agent.wait_until_drained(WAIT).await.unwrap();
    let counts = accepted_counts(&hub).await;
    assert_eq!(
        counts,
        [
            ("a".to_string(), 1),
            ("b".to_string(), 1),
            ("c".to_string(), 1)
        ]
        .into_iter()
        .collect()
    );
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn records_queued_during_a_hub_outage_are_delivered_exactly_once_when_it_returns() {
    let t = TestDir::new();
    let port = free_port();
    let hub = kith_hub::server::start(&t.hub_config(port)).await.unwrap();
    let config = t.agent_config(COUNCIL_A, hub.addr());
    let agent = Agent::start(config.clone()).await.unwrap();
    drop_file(
        &config,
        "one.jsonl",
        &lines(COUNCIL_A, &[("r1", 30), ("r2", 31)]),
    );
    wait_taken(&config, "one.jsonl").await;
    agent.wait_until_drained(WAIT).await.unwrap();

    // An open agent link must not hold up a graceful shutdown.
    tokio::time::timeout(Duration::from_secs(10), hub.shutdown())
        .await
        .expect("shutdown within 10 s")
        .unwrap();
    drop_file(
        &config,
        "two.jsonl",
        &lines(COUNCIL_A, &[("r3", 32), ("r4", 33)]),
    );
    wait_taken(&config, "two.jsonl").await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let it try and fail
    let stats = agent.outbox().stats().await.unwrap();
    assert_eq!(stats.pending, 2, "queued while the hub is down");
    assert!(
        stats.last_error.is_some(),
        "the failed attempts are visible"
    );

    let hub = kith_hub::server::start(&t.hub_config(port)).await.unwrap();
    agent.wait_until_drained(WAIT).await.unwrap();
    let counts = accepted_counts(&hub).await;
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "each record accepted exactly once: {counts:?}"
    );
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_files_are_reported_and_the_agent_carries_on() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let config = t.agent_config(COUNCIL_A, hub.addr());
    let agent = Agent::start(config.clone()).await.unwrap();
    drop_file(
        &config,
        "garbage.jsonl",
        "this is not json\n{\"record_id\": 5}\n",
    );
    drop_file(&config, "odd.csv", "who,what\nx,y\n");
    wait_taken(&config, "garbage.jsonl").await;
    wait_taken(&config, "odd.csv").await;
    let report = std::fs::read_to_string(
        config
            .drop_dir
            .join("done")
            .join("garbage.jsonl.report.json"),
    )
    .unwrap();
    assert!(
        report.contains("\"line\": 1") || report.contains("\"line\":1"),
        "{report}"
    );
    assert!(
        report.contains("\"line\": 2") || report.contains("\"line\":2"),
        "{report}"
    );
    let csv_report =
        std::fs::read_to_string(config.drop_dir.join("done").join("odd.csv.report.json")).unwrap();
    assert!(
        csv_report.contains("who"),
        "the unknown column is named: {csv_report}"
    );
    assert_eq!(agent.outbox().stats().await.unwrap().pending, 0);

    // Still working afterwards.
    drop_file(&config, "good.jsonl", &lines(COUNCIL_A, &[("ok-1", 40)]));
    wait_taken(&config, "good.jsonl").await;
    agent.wait_until_drained(WAIT).await.unwrap();
    assert_eq!(accepted_counts(&hub).await.len(), 1);
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_agent_keeps_a_link_open_and_status_reports_it_all() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let config = t.agent_config(TRUST_C, hub.addr());
    let agent = Agent::start(config.clone()).await.unwrap();
    assert!(agent.wait_until_linked(WAIT).await, "link welcomed");
    assert_eq!(
        agent.link_state().borrow().authority_at_hub.as_deref(),
        Some(TRUST_C)
    );
    assert!(hub.links().get(TRUST_C).is_some(), "the hub sees the link");

    let status = kith_agent::status(&config).await.unwrap();
    assert!(status.hub_reachable, "{status:?}");
    assert_eq!(status.outbox.pending, 0);
    agent.shutdown().await;
    hub.shutdown().await.unwrap();

    let status = kith_agent::status(&config).await.unwrap();
    assert!(
        !status.hub_reachable,
        "a stopped hub is reported unreachable"
    );
    assert!(status.hub_error.is_some());
}
