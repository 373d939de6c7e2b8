//! Changing policy without a release: a valid edit takes effect on the next
//! query, an invalid one is rejected and audited while the previous set
//! keeps serving.

use std::time::Duration;

use kith_tests::v1 as pb;
use kith_tests::*;

const FREEZE: &str = r#"
@id("freeze-detail")
@reason("Detail sharing is paused while the agreement is reviewed.")
@advice("detail sharing is paused: contact the custodian")
forbid (principal, action == Kith::Action::"view_detail", resource);
"#;

async fn level_seen(t: &TestDir, hub: &kith_hub::server::RunningHub, nhs: &str) -> Vec<i32> {
    let mut q = query_client(channel(hub.addr(), &t.agent_tls(COUNCIL_B)).await.unwrap());
    let r = q
        .query(query_request(
            nhs,
            pb::Purpose::Safeguarding,
            "social_worker",
        ))
        .await
        .unwrap()
        .into_inner();
    r.records.iter().map(|d| d.level).collect()
}

fn policy_loads(audit: &[serde_json::Value]) -> Vec<(String, String)> {
    audit
        .iter()
        .filter(|e| e["kind"] == "policy_load")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn edits_take_effect_whole_or_not_at_all_and_every_load_is_audited() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(77);
    let mut a = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    a.publish_records(pb::PublishRecordsRequest {
        records: vec![record_wire(
            COUNCIL_A,
            "cpp-9",
            1,
            &nhs,
            "child_protection_plan",
            &["safeguarding"],
        )],
    })
    .await
    .unwrap();
    assert_eq!(
        level_seen(&t, &hub, &nhs).await,
        [pb::DisclosureLevel::Detail as i32]
    );
    let started_with = hub.hub().policies().fingerprint().to_string();

    // An invalid edit: a syntax error. Rejected; the old set keeps serving.
    let broken = t.path().join("policies/default/50-broken.cedar");
    std::fs::write(&broken, "permit (principal, action, resource) when { oops").unwrap();
    let rejected = eventually(Duration::from_secs(10), || async {
        policy_loads(&audit_entries(&hub).await)
            .iter()
            .any(|(o, _)| o == "rejected")
    })
    .await;
    assert!(rejected, "the rejected load is audited");
    assert_eq!(
        hub.hub().policies().fingerprint(),
        started_with,
        "the previous set keeps serving"
    );
    assert_eq!(
        level_seen(&t, &hub, &nhs).await,
        [pb::DisclosureLevel::Detail as i32]
    );

    // A valid edit, applied at once through the SIGHUP path.
    std::fs::remove_file(&broken).unwrap();
    std::fs::write(t.path().join("policies/default/50-freeze.cedar"), FREEZE).unwrap();
    hub.reload_handle().send(()).await.unwrap();
    let changed = eventually(Duration::from_secs(10), || async {
        hub.hub().policies().fingerprint() != started_with
    })
    .await;
    assert!(changed, "the new set is serving");
    let levels = level_seen(&t, &hub, &nhs).await;
    assert_eq!(
        levels,
        [pb::DisclosureLevel::Summary as i32],
        "detail is now forbidden"
    );

    let loads = policy_loads(&audit_entries(&hub).await);
    assert!(
        loads[0].1.contains(&started_with),
        "the first set is audited at start: {loads:?}"
    );
    let new = hub.hub().policies().fingerprint().to_string();
    assert!(
        loads.iter().any(|(o, r)| o == "ok" && r.contains(&new)),
        "{loads:?}"
    );
    hub.shutdown().await.unwrap();
}
