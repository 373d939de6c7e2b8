//! The `kith-agent run` process SIGKILLed three times while it ingests and
//! publishes a large drop file: every valid line reaches the hub exactly
//! once, bad lines are reported, and the file ends in `done/` beside its
//! report.
//!
//! Size: `KITH_INGEST_LINES` lines (default 5,000; one in 50 invalid). The
//! figures in docs/reliability.md are for 50,000:
//!
//! ```text
//! KITH_INGEST_LINES=50000 cargo test -p kith-agent --test kill_during_ingest -- --nocapture
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use kith_agent::outbox::Outbox;
use kith_tests::process::{run_agent, size_from_env, write_agent_config};
use kith_tests::tally::tally;
use kith_tests::*;

const AGENT: &str = env!("CARGO_BIN_EXE_kith-agent");

/// Line `i` of the file: valid, except every 50th (a wrong check digit).
fn line(i: u32) -> String {
    let nhs = if i % 50 == 49 {
        // 999 000 0018 is valid; a changed last digit is not.
        let good = test_nhs_number(i);
        let last = good.as_bytes()[9] - b'0';
        format!("{}{}", &good[..9], (last + 1) % 10)
    } else {
        test_nhs_number(i)
    };
    record_json(
        COUNCIL_A,
        &format!("big-{i}"),
        1,
        &nhs,
        "child_in_need",
        &["safeguarding"],
    )
}

/// Records at the hub (in-process, so counted through its database).
async fn at_hub(t: &TestDir) -> u64 {
    let db = HubDb::connect(t).await;
    let n = tally(&db).await.stored.get(COUNCIL_A).copied().unwrap_or(0);
    db.close().await;
    n
}

/// (pending, delivered) in the agent's outbox (SQLite WAL: reading does
/// not block the agent).
async fn outbox_counts(path: &Path) -> (u64, u64) {
    if !path.exists() {
        return (0, 0);
    }
    let outbox = Outbox::open(path).await.unwrap();
    let stats = outbox.stats().await.unwrap();
    outbox.close().await;
    (stats.pending, stats.delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_during_ingest_delivers_every_valid_line_exactly_once() {
    let lines = size_from_env("KITH_INGEST_LINES", 5_000);
    // The hub runs in this process: its warnings go to the test's output.
    let _telemetry = kith_agent::logging::init(Default::default());
    let invalid = (0..lines).filter(|i| i % 50 == 49).count() as u64;
    let valid = u64::from(lines) - invalid;
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut config = t.agent_config(COUNCIL_A, hub.addr());
    config.hub.connect_timeout_ms = 1_000;
    let config_path = write_agent_config(&config);
    let log = t.path().join("agent.log");
    let outbox_path = config.outbox_path();
    let mut text = String::with_capacity(lines as usize * 700);
    for i in 0..lines {
        text.push_str(&line(i));
        text.push('\n');
    }

    let started = Instant::now();
    let mut agent = run_agent(AGENT.as_ref(), &config_path, &log);
    drop_file(&config, "big.jsonl", &text);
    let in_drop = config.drop_dir.join("big.jsonl");
    let in_done = config.drop_dir.join("done/big.jsonl");
    let mut kills = Vec::new();

    // Kill 1: mid-ingest. The watcher takes the file at its second poll (50
    // ms apart) after it starts; kill it 120 ms after it says it started.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !agent.log_text().contains("watching the drop folder") {
        assert!(
            Instant::now() < deadline,
            "the agent never started: {}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    agent.kill();
    kills.push((
        "mid-ingest",
        in_drop.exists(),
        outbox_counts(&outbox_path).await,
        at_hub(&t).await,
    ));

    // Kills 2 and 3: mid-publish, once a third and two thirds are at the hub.
    for k in 1..=2u64 {
        agent = run_agent(AGENT.as_ref(), &config_path, &log);
        let mark = valid * k / 3;
        let deadline = Instant::now() + Duration::from_secs(120);
        while at_hub(&t).await < mark {
            assert!(
                Instant::now() < deadline,
                "no progress: {}",
                agent.log_text()
            );
            assert!(agent.running(), "the agent died: {}", agent.log_text());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        agent.kill();
        kills.push((
            "mid-publish",
            in_drop.exists(),
            outbox_counts(&outbox_path).await,
            at_hub(&t).await,
        ));
    }

    // The last start runs to the end.
    agent = run_agent(AGENT.as_ref(), &config_path, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    while at_hub(&t).await < valid || outbox_counts(&outbox_path).await.0 > 0 {
        assert!(
            Instant::now() < deadline,
            "not drained: {}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    agent.kill();

    let db = HubDb::connect(&t).await;
    let counted = tally(&db).await;
    db.close().await;
    assert_eq!(counted.stored.get(COUNCIL_A), Some(&valid));
    let expected: Vec<(String, String)> = (0..lines)
        .filter(|i| i % 50 != 49)
        .map(|i| (COUNCIL_A.to_string(), format!("big-{i}")))
        .collect();
    assert!(counted.missing(&expected).is_empty(), "lost");
    assert!(
        counted.duplicated().is_empty(),
        "doubled: {:?}",
        counted.duplicated()
    );
    assert_eq!(counted.accepted.len() as u64, valid);
    assert_eq!(outbox_counts(&outbox_path).await, (0, valid));
    assert!(
        in_done.exists() && !in_drop.exists(),
        "the file is in done/"
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(config.drop_dir.join("done/big.jsonl.report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["rejected"].as_array().unwrap().len() as u64, invalid);
    assert_eq!(report["accepted"].as_u64(), Some(valid));
    eprintln!(
        "agent kill: {lines} lines ({valid} valid, {invalid} invalid), 3 SIGKILLs \
         (kind, file still in drop/, outbox (pending, delivered), at hub): {kills:?}; \
         {elapsed:?} in all; at the hub {valid} stored, accepted once each, lost 0, doubled 0; \
         other decisions {:?}; report: {} enqueued, {} already queued",
        counted.other_decisions, report["enqueued"], report["duplicates"]
    );
    hub.shutdown().await.unwrap();
}
