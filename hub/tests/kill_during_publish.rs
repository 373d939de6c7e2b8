//! A `kith-hub serve` process SIGKILLed again and again while three agents
//! publish to it: every record is stored once and accepted once in the
//! audit log, none lost, none doubled, and the log stays gapless.
//!
//! Sizes: `KITH_KILL_RECORDS` records in all (default 6,000, split between
//! the three agents) and `KITH_KILL_COUNT` kills (default 2). The figures in
//! docs/reliability.md are for 100,000 records and 5 kills:
//!
//! ```text
//! KITH_KILL_RECORDS=100000 KITH_KILL_COUNT=5 \
//!   cargo test -p kith-hub --test kill_during_publish -- --nocapture
//! ```
//!
//! The store is SQLite, or PostgreSQL with `KITH_TEST_DATABASE=postgres`.

use std::time::{Duration, Instant};

use kith_agent::Agent;
use kith_tests::process::{
    free_port, record_lines, serve_hub, size_from_env, wait_listening, write_hub_config,
};
use kith_tests::tally::tally;
use kith_tests::*;

const HUB: &str = env!("CARGO_BIN_EXE_kith-hub");
const AGENTS: [&str; 3] = [COUNCIL_A, COUNCIL_B, TRUST_C];
/// Lines per dropped file.
const FILE_LINES: u32 = 5_000;

/// Rows in the hub's records table (read past the hub, which may be down).
async fn stored(t: &TestDir) -> u64 {
    let db = HubDb::connect(t).await;
    let n = match &db {
        HubDb::Sqlite(pool) => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM records")
            .fetch_one(pool)
            .await
            .unwrap_or(0),
        HubDb::Postgres(pool) => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM records")
            .fetch_one(pool)
            .await
            .unwrap_or(0),
    };
    db.close().await;
    n as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_killed_during_a_publish_from_three_agents_loses_and_doubles_nothing() {
    let total = size_from_env("KITH_KILL_RECORDS", 6_000);
    let kills = size_from_env("KITH_KILL_COUNT", 2);
    // Split as evenly as the total allows.
    let share = |a: usize| {
        total / AGENTS.len() as u32 + u32::from((a as u32) < total % AGENTS.len() as u32)
    };
    let t = TestDir::new();
    let port = free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let hub_config = write_hub_config(&t, port);
    let log = t.path().join("hub.log");
    let mut hub = serve_hub(HUB.as_ref(), &hub_config, &log);
    assert!(
        wait_listening(addr, Duration::from_secs(30)).await,
        "the hub started: {}",
        hub.log_text()
    );

    let mut agents = Vec::new();
    let mut expected = Vec::new();
    let started = Instant::now();
    for (a, code) in AGENTS.iter().enumerate() {
        let mut config = t.agent_config(code, addr);
        config.hub.connect_timeout_ms = 1_000;
        config.publish.request_timeout_ms = 10_000;
        let agent = Agent::start(config.clone()).await.unwrap();
        let each = share(a);
        let offset = (0..a).map(share).sum::<u32>();
        let mut from = 0;
        while from < each {
            let to = (from + FILE_LINES).min(each);
            drop_file(
                &config,
                &format!("part-{from}.jsonl"),
                &record_lines(code, "kill", from..to, offset + from),
            );
            from = to;
        }
        expected.extend((0..each).map(|i| (code.to_string(), format!("kill-{i}"))));
        agents.push(agent);
    }

    // Kill the hub each time another 1/(kills+1) of the records is stored.
    let expected_total = u64::from(total);
    let mut kill_log = Vec::new();
    for k in 1..=u64::from(kills) {
        let mark = expected_total * k / (u64::from(kills) + 1);
        let deadline = Instant::now() + Duration::from_secs(600);
        while stored(&t).await < mark {
            assert!(
                Instant::now() < deadline,
                "no progress to {mark}: {}",
                hub.log_text()
            );
            assert!(hub.running(), "the hub died by itself: {}", hub.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        hub.kill();
        let at = stored(&t).await;
        kill_log.push(at);
        tokio::time::sleep(Duration::from_millis(300)).await;
        hub = serve_hub(HUB.as_ref(), &hub_config, &log);
        assert!(
            wait_listening(addr, Duration::from_secs(60)).await,
            "the hub restarted after kill {k}: {}",
            hub.log_text()
        );
    }
    for agent in &agents {
        agent
            .wait_until_drained(Duration::from_secs(900))
            .await
            .unwrap_or_else(|e| panic!("{e}: {}", hub.log_text()));
    }
    let elapsed = started.elapsed();

    let db = HubDb::connect(&t).await;
    let counted = tally(&db).await;
    // The log has no gap and no repeated index.
    let indexes: Vec<i64> = match &db {
        HubDb::Sqlite(pool) => sqlx::query_scalar("SELECT idx FROM audit_log ORDER BY idx")
            .fetch_all(pool)
            .await
            .unwrap(),
        HubDb::Postgres(pool) => sqlx::query_scalar("SELECT idx FROM audit_log ORDER BY idx")
            .fetch_all(pool)
            .await
            .unwrap(),
    };
    db.close().await;
    assert!(
        indexes.iter().enumerate().all(|(i, idx)| *idx == i as i64),
        "the audit log is gapless"
    );
    for (a, code) in AGENTS.iter().enumerate() {
        assert_eq!(
            counted.stored.get(*code),
            Some(&u64::from(share(a))),
            "{code}"
        );
    }
    let missing = counted.missing(&expected);
    assert!(
        missing.is_empty(),
        "{} lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let doubled = counted.duplicated();
    assert!(
        doubled.is_empty(),
        "{} doubled, e.g. {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(5)]
    );
    assert_eq!(counted.accepted.len(), expected.len());
    for (a, agent) in agents.iter().enumerate() {
        let stats = agent.outbox().stats().await.unwrap();
        assert_eq!((stats.pending, stats.delivered), (0, u64::from(share(a))));
    }
    eprintln!(
        "hub kill: {} records from {} agents, {} SIGKILLs (records stored at each: {:?}), \
         {:?} in all; stored {}, accepted once each: {}, lost 0, doubled 0; \
         {} publish entries, other decisions {:?} (resends of batches committed before a kill)",
        expected.len(),
        AGENTS.len(),
        kills,
        kill_log,
        elapsed,
        counted.stored.values().sum::<u64>(),
        counted.accepted.len(),
        counted.publish_entries,
        counted.other_decisions
    );
    for agent in agents {
        agent.shutdown().await;
    }
    drop(hub);
}
