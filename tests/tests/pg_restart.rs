//! PostgreSQL restarted under load, run by hand (it restarts the local
//! server, which would break any other test using it at that moment, so it
//! never runs in CI):
//!
//! ```sh
//! cargo test -p kith-tests --test pg_restart -- --ignored --nocapture
//! ```
//!
//! Publishers and query clients run against a hub on PostgreSQL; after 5 s
//! the server is restarted (`pg_ctlcluster --skip-systemctl-redirect 15 main
//! restart`; `KITH_PG_RESTART` overrides the command). The hub must
//! reconnect by itself, every failed call must be an explicit `UNAVAILABLE`,
//! and every acknowledged record must be in the database and in the audit
//! log exactly once, under a signed checkpoint.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_tests::*;

const PUBLISHERS: usize = 4;
const QUERIERS: usize = 8;
const BATCH: usize = 50;

#[derive(Default)]
struct Outcomes {
    codes: BTreeMap<String, u64>,
    acknowledged: HashSet<String>,
    /// When each successful call finished, since the start.
    ok_at: Vec<Duration>,
    failed_at: Vec<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the local PostgreSQL server; run by hand (see the file's doc)"]
async fn postgres_restarted_under_load_loses_nothing_acknowledged() {
    let t = TestDir::on_postgres();
    let hub = t.start_hub().await;
    let addr = hub.addr();
    let nhs = test_nhs_number(51);
    publish_accepted(
        addr,
        &t.agent_tls(COUNCIL_A),
        vec![record_wire(
            COUNCIL_A,
            "seed",
            1,
            &nhs,
            "child_in_need",
            &["safeguarding"],
        )],
    )
    .await;

    let started = Instant::now();
    let run_for = Duration::from_secs(20);
    let publishes = Arc::new(Mutex::new(Outcomes::default()));
    let queries = Arc::new(Mutex::new(Outcomes::default()));
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let (tls, out) = (t.agent_tls(COUNCIL_A), publishes.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = records_client(channel(addr, &tls).await.unwrap());
            let mut n = 0;
            while started.elapsed() < run_for {
                n += 1;
                let records: Vec<_> = (0..BATCH)
                    .map(|j| {
                        record_wire(
                            COUNCIL_A,
                            &format!("p{p}-{n}-{j}"),
                            1,
                            // Each its own subject: the queries' subject
                            // stays at one record.
                            &test_nhs_number((100_000 + p * 1_000_000 + n * BATCH + j) as u32),
                            "child_in_need",
                            &["safeguarding"],
                        )
                    })
                    .collect();
                let r = c
                    .publish_records(v1::PublishRecordsRequest { records })
                    .await;
                let failed = {
                    let mut out = out.lock().unwrap();
                    match r {
                        Ok(r) => {
                            out.ok_at.push(started.elapsed());
                            *out.codes.entry("Ok".into()).or_default() += 1;
                            for result in r.into_inner().results {
                                if result.outcome == v1::PublishOutcome::Accepted as i32 {
                                    out.acknowledged.insert(result.record_id);
                                }
                            }
                            false
                        }
                        Err(s) => {
                            out.failed_at.push(started.elapsed());
                            *out.codes.entry(format!("{:?}", s.code())).or_default() += 1;
                            true
                        }
                    }
                };
                if failed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for _ in 0..QUERIERS {
        let (tls, out, nhs) = (t.agent_tls(COUNCIL_B), queries.clone(), nhs.clone());
        tasks.push(tokio::spawn(async move {
            let mut q = query_client(channel(addr, &tls).await.unwrap());
            while started.elapsed() < run_for {
                let r = q
                    .query(query_request(
                        &nhs,
                        v1::Purpose::Safeguarding,
                        "social_worker",
                    ))
                    .await;
                let failed = {
                    let mut out = out.lock().unwrap();
                    match r {
                        Ok(_) => {
                            out.ok_at.push(started.elapsed());
                            *out.codes.entry("Ok".into()).or_default() += 1;
                            false
                        }
                        Err(s) => {
                            out.failed_at.push(started.elapsed());
                            *out.codes.entry(format!("{:?}", s.code())).or_default() += 1;
                            true
                        }
                    }
                };
                if failed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(5)).await;
    let restart = std::env::var("KITH_PG_RESTART")
        .unwrap_or_else(|_| "pg_ctlcluster --skip-systemctl-redirect 15 main restart".into());
    let restart_at = started.elapsed();
    let status = tokio::process::Command::new("sh")
        .args(["-c", &restart])
        .status()
        .await
        .unwrap();
    let restart_took = started.elapsed() - restart_at;
    assert!(status.success(), "{restart} failed");
    eprintln!("PostgreSQL restarted at {restart_at:?}, the command took {restart_took:?}");
    for task in tasks {
        task.await.unwrap();
    }

    let publishes = std::mem::take(&mut *publishes.lock().unwrap());
    let queries = std::mem::take(&mut *queries.lock().unwrap());
    let recovered = |o: &Outcomes| {
        let last_fail = o.failed_at.iter().max().copied();
        let first_ok_after =
            last_fail.and_then(|f| o.ok_at.iter().filter(|t| **t > f).min().copied());
        (last_fail, first_ok_after)
    };
    eprintln!(
        "publishes: {:?}, {} records acknowledged; last failure, first success after it: {:?}",
        publishes.codes,
        publishes.acknowledged.len(),
        recovered(&publishes)
    );
    eprintln!(
        "queries: {:?}; last failure, first success after it: {:?}",
        queries.codes,
        recovered(&queries)
    );
    for o in [&publishes, &queries] {
        for code in o.codes.keys() {
            assert!(
                ["Ok", "Unavailable"].contains(&code.as_str()),
                "an unexpected outcome: {code}"
            );
        }
        assert!(
            o.ok_at.iter().any(|t| *t > restart_at + restart_took),
            "calls succeeded again after the restart"
        );
    }

    // Every acknowledged record is stored, and accepted exactly once in the
    // audit log.
    let pool = t.postgres_pool().await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT record_id FROM records WHERE custodian = $1")
            .bind(COUNCIL_A)
            .fetch_all(&pool)
            .await
            .unwrap();
    let stored: HashSet<String> = stored.into_iter().collect();
    let missing: Vec<_> = publishes.acknowledged.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    let entries = audit_entries(&hub).await;
    for e in &entries {
        if e["kind"] == "publish" {
            for r in e["records"].as_array().unwrap() {
                if r["decision"] == "accepted" {
                    *accepted
                        .entry(r["record_id"].as_str().unwrap().into())
                        .or_default() += 1;
                }
            }
        }
    }
    for id in &publishes.acknowledged {
        assert_eq!(accepted.get(id), Some(&1), "{id} in the audit log");
    }
    let total = entries.len() as u64;
    assert!(
        eventually(Duration::from_secs(15), || async {
            hub.log()
                .latest()
                .await
                .is_some_and(|c| c.tree_size >= total)
        })
        .await,
        "a checkpoint covers all {total} entries after the restart"
    );
    eprintln!(
        "{} acknowledged, {} stored for {COUNCIL_A} (including the seed and any \
         committed but unacknowledged), {total} audit entries, all under a checkpoint",
        publishes.acknowledged.len(),
        stored.len()
    );
    pool.close().await;
    hub.shutdown().await.unwrap();
}
