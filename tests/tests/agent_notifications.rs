//! Real agents against a real hub for issue #4's agent side: a directive
//! dropped in the custodian's drop folder reaches the hub behind its record
//! and takes effect; the custodian's agent is told of an access to its child
//! protection plan, and the recipient's agent of the revocation that the
//! objection causes. Both store what they are told, write it to the file
//! the operator configured, and acknowledge it, so the hub stops sending.

use std::path::Path;
use std::time::Duration;

use kith_agent::Agent;
use kith_tests::v1 as pb;
use kith_tests::*;

const WAIT: Duration = Duration::from_secs(20);

/// The JSON lines of a notification file, once it has at least `n`.
async fn lines_of(file: &Path, n: usize) -> Vec<serde_json::Value> {
    let read = || {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(WAIT, || async { read().len() >= n }).await,
        "{} has fewer than {n} notifications: {:?}",
        file.display(),
        read()
    );
    read()
}

async fn level_seen_by_b(t: &TestDir, hub: &kith_hub::server::RunningHub, nhs: &str) -> i32 {
    let q = query_request(nhs, pb::Purpose::Safeguarding, "social_worker");
    let r = ask_as(hub.addr(), &t.agent_tls(COUNCIL_B), q)
        .await
        .unwrap();
    assert_eq!(r.records.len(), 1, "{r:?}");
    r.records[0].level
}

#[tokio::test]
async fn agents_deliver_directives_and_receive_access_and_revocation_notices() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(31);

    let mut a_config = t.agent_config(COUNCIL_A, hub.addr());
    let a_file = t.path().join("a-notifications.jsonl");
    a_config.notifications.file = Some(a_file.clone());
    let a = Agent::start(a_config.clone()).await.unwrap();
    let mut b_config = t.agent_config(COUNCIL_B, hub.addr());
    let b_file = t.path().join("b-notifications.jsonl");
    b_config.notifications.file = Some(b_file.clone());
    let b = Agent::start(b_config).await.unwrap();

    let cpp = record_json(
        COUNCIL_A,
        "cpp-1",
        1,
        &nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care"],
    );
    drop_file(&a_config, "records.jsonl", &format!("{cpp}\n"));
    a.wait_until_drained(WAIT).await.unwrap();
    assert!(
        eventually(WAIT, || async {
            hub.hub()
                .store()
                .record(&kith_hub::store::RecordKey {
                    custodian: COUNCIL_A.into(),
                    record_id: "cpp-1".into(),
                })
                .await
                .unwrap()
                .is_some()
        })
        .await
    );
    assert_eq!(
        level_seen_by_b(&t, &hub, &nhs).await,
        pb::DisclosureLevel::Detail as i32
    );

    // Council A's agent is told who looked, and acknowledges.
    let told = lines_of(&a_file, 1).await;
    assert_eq!(told[0]["kind"], "access", "{told:?}");
    assert_eq!(told[0]["record_id"], "cpp-1", "{told:?}");
    let pending_at_hub = || async {
        hub.hub()
            .pending_notifications(COUNCIL_A, 10)
            .await
            .unwrap()
            .is_empty()
    };
    assert!(
        eventually(WAIT, pending_at_hub).await,
        "acknowledged: nothing pending"
    );

    // The person objects: council A's source system drops a directive.
    let objection = serde_json::json!({
        "directive_id": "obj-1", "version": 1, "record_id": "cpp-1",
        "kind": "objection", "period": {"start": "2025-01-01"},
        "grantor": "the person", "recorded_at": "2026-01-01T09:00:00Z"
    });
    drop_file(
        &a_config,
        "consent.directives.jsonl",
        &format!("{objection}\n"),
    );
    assert!(
        eventually(WAIT, || async {
            level_seen_by_b(&t, &hub, &nhs).await == pb::DisclosureLevel::Withheld as i32
        })
        .await,
        "the objection reached the hub and took effect"
    );

    // Council B's agent, whose user was shown the record, is told to stop
    // relying on it.
    let revoked = lines_of(&b_file, 1).await;
    let revocation = revoked
        .iter()
        .find(|n| n["kind"] == "revocation")
        .unwrap_or_else(|| panic!("no revocation in {revoked:?}"));
    assert_eq!(revocation["record_id"], "cpp-1");
    assert!(
        eventually(WAIT, || async {
            hub.hub()
                .pending_notifications(COUNCIL_B, 10)
                .await
                .unwrap()
                .is_empty()
        })
        .await
    );

    a.shutdown().await;
    b.shutdown().await;
    hub.shutdown().await.unwrap();
}
