//! Data location: a record whose residency forbids holding it centrally
//! never has its detail in the hub's store; a permitted query fetches the
//! detail live from the custodian's agent, and an unreachable or unwilling
//! custodian gives a partial answer, never a failed query.

use std::time::{Duration, Instant};

use kith_agent::config::PolicySection;
use kith_agent::{Agent, AgentConfig};
use kith_tests::v1 as pb;
use kith_tests::*;

const SECRET_NAME: &str = "Quillfeather";

fn source_only_line(nhs: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&record_json(
        TRUST_C,
        "mh-src-1",
        1,
        nhs,
        "mental_health",
        &["direct_care", "care_planning"],
    ))
    .unwrap();
    v["residency"] = "source_only".into();
    v["subject"]["demographics"]["given_name"] = "Zebedee".into();
    v["subject"]["demographics"]["family_name"] = SECRET_NAME.into();
    v["service"] = "Community Mental Health Team".into();
    v.to_string() + "\n"
}

async fn publish_through_agent(
    t: &TestDir,
    config: &AgentConfig,
    nhs: &str,
) -> kith_agent::RunningAgent {
    let agent = Agent::start(config.clone()).await.unwrap();
    std::fs::write(config.drop_dir.join(".mh.partial"), source_only_line(nhs)).unwrap();
    std::fs::rename(
        config.drop_dir.join(".mh.partial"),
        config.drop_dir.join("mh.jsonl"),
    )
    .unwrap();
    let done = config.drop_dir.join("done").join("mh.jsonl");
    assert!(eventually(Duration::from_secs(20), || async { done.exists() }).await);
    agent
        .wait_until_drained(Duration::from_secs(20))
        .await
        .unwrap();
    assert!(agent.wait_until_linked(Duration::from_secs(20)).await);
    let _ = t;
    agent
}

fn with_policy_copy(t: &TestDir, mut config: AgentConfig) -> AgentConfig {
    config.policy = Some(PolicySection {
        dir: t.path().join("policies"),
        kind: "nhs_trust".into(),
        jurisdiction: "england".into(),
    });
    config
}

async fn ask(t: &TestDir, hub: &kith_hub::server::RunningHub, nhs: &str) -> pb::QueryResponse {
    let mut q = query_client(channel(hub.addr(), &t.agent_tls(COUNCIL_B)).await.unwrap());
    q.query(query_request(
        nhs,
        pb::Purpose::CarePlanning,
        "social_worker",
    ))
    .await
    .expect("a query never fails because a custodian is away")
    .into_inner()
}

fn file_contains(path: &std::path::Path, needle: &str) -> bool {
    std::fs::read(path)
        .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .unwrap_or(false)
}

/// Asserts the hub's database holds `needle` nowhere. On SQLite, every byte
/// of the database files (tables, free pages, WAL); on PostgreSQL, where the
/// files belong to the server, every text and byte column of every table.
async fn assert_not_stored(t: &TestDir, needle: &str) {
    match t.store_kind() {
        TestStore::Sqlite => {
            for file in ["hub.db", "hub.db-wal"] {
                assert!(
                    !file_contains(&t.path().join(file), needle),
                    "{file} holds the detail"
                );
            }
        }
        TestStore::Postgres => {
            let pool = t.postgres_pool().await;
            let found: Vec<String> = sqlx::query_scalar(
                "SELECT 'records' FROM records WHERE strpos(concat_ws('|', custodian, record_id, \
                   version, nhs_number, relationship_type, status, withdraw_reason, ended_on, \
                   content_hash, retain_until, body, updated_at), $1) > 0 \
                 UNION ALL SELECT 'audit_log' FROM audit_log \
                   WHERE position(convert_to($1, 'UTF8') IN entry) > 0 OR strpos(recorded_at, $1) > 0 \
                 UNION ALL SELECT 'audit_checkpoints' FROM audit_checkpoints \
                   WHERE strpos(signed_note, $1) > 0",
            )
            .bind(needle)
            .fetch_all(&pool)
            .await
            .unwrap();
            pool.close().await;
            assert!(found.is_empty(), "{found:?} hold the detail");
        }
    }
}

#[tokio::test]
async fn source_only_detail_is_never_stored_and_is_fetched_live_when_permitted() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(500);
    let config = with_policy_copy(&t, t.agent_config(TRUST_C, hub.addr()));
    let agent = publish_through_agent(&t, &config, &nhs).await;

    // Not in the hub's database, in any form.
    assert_not_stored(&t, SECRET_NAME).await;
    let held = hub
        .hub()
        .store()
        .record(&kith_hub::store::RecordKey {
            custodian: TRUST_C.into(),
            record_id: "mh-src-1".into(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(held.held_at_source);
    assert!(held.record.subject.demographics.is_none());

    // A permitted query gets the detail, live, from the trust's agent.
    let r = ask(&t, &hub, &nhs).await;
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records[0].level, pb::DisclosureLevel::Detail as i32);
    let subject = r.records[0]
        .record
        .as_ref()
        .unwrap()
        .subject
        .as_ref()
        .unwrap();
    assert_eq!(
        subject.demographics.as_ref().unwrap().family_name,
        SECRET_NAME
    );
    assert_eq!(r.authority_statuses.len(), 1);
    assert_eq!(r.authority_statuses[0].state, pb::AuthorityState::Ok as i32);
    // Still not stored after the fetch.
    assert_not_stored(&t, SECRET_NAME).await;

    // The custodian goes away: a summary, a status, and an answer in bounded time.
    agent.shutdown().await;
    let started = Instant::now();
    let r = ask(&t, &hub, &nhs).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    assert_eq!(r.records[0].level, pb::DisclosureLevel::Summary as i32);
    assert!(r.records[0].record.as_ref().unwrap().subject.is_none());
    assert_eq!(r.authority_statuses[0].authority, TRUST_C);
    assert_eq!(
        r.authority_statuses[0].state,
        pb::AuthorityState::Unreachable as i32
    );
    assert!(
        r.records[0].reason.contains("contact them"),
        "{}",
        r.records[0].reason
    );

    // The audit names what was actually disclosed each time.
    let decisions: Vec<String> = audit_entries(&hub)
        .await
        .iter()
        .filter(|e| e["kind"] == "query")
        .map(|e| e["records"][0]["decision"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(decisions, ["detail", "summary"]);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_agent_without_a_policy_copy_refuses_and_the_query_still_answers() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(501);
    let config = t.agent_config(TRUST_C, hub.addr()); // no [policy]
    let agent = publish_through_agent(&t, &config, &nhs).await;
    let r = ask(&t, &hub, &nhs).await;
    assert_eq!(r.records[0].level, pb::DisclosureLevel::Summary as i32);
    assert_eq!(
        r.authority_statuses[0].state,
        pb::AuthorityState::Refused as i32
    );
    assert!(
        r.authority_statuses[0].detail.contains("no policy copy"),
        "{:?}",
        r.authority_statuses
    );
    agent.shutdown().await;
    hub.shutdown().await.unwrap();
}
