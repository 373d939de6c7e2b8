//! Publishing over real mutual TLS: idempotence, versions, custodianship,
//! field-level rejection, and the audit entries each writes.

use kith_tests::v1 as pb;
use kith_tests::*;

async fn publish(
    client: &mut pb::record_service_client::RecordServiceClient<tonic::transport::Channel>,
    records: Vec<pb::RelationshipRecord>,
) -> Vec<pb::PublishResult> {
    client
        .publish_records(pb::PublishRecordsRequest { records })
        .await
        .expect("publish call")
        .into_inner()
        .results
}

fn outcome(r: &pb::PublishResult) -> pb::PublishOutcome {
    pb::PublishOutcome::try_from(r.outcome).unwrap()
}

#[tokio::test]
async fn publish_is_idempotent_and_never_goes_backwards() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut client = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let nhs = test_nhs_number(1);
    let v2 = record_wire(
        COUNCIL_A,
        "cpp-1",
        2,
        &nhs,
        "child_protection_plan",
        &["safeguarding"],
    );

    let first = publish(&mut client, vec![v2.clone()]).await;
    assert_eq!(outcome(&first[0]), pb::PublishOutcome::Accepted);

    let again = publish(&mut client, vec![v2.clone()]).await;
    assert_eq!(
        outcome(&again[0]),
        pb::PublishOutcome::Unchanged,
        "re-publishing changes nothing"
    );

    let v1 = record_wire(
        COUNCIL_A,
        "cpp-1",
        1,
        &nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care"],
    );
    let stale = publish(&mut client, vec![v1]).await;
    assert_eq!(outcome(&stale[0]), pb::PublishOutcome::Stale);
    assert!(
        stale[0].errors[0].reason.contains("version 2"),
        "{:?}",
        stale[0].errors
    );

    // Same version, different content: refused, not silently replaced.
    let mut changed = v2.clone();
    changed.service = "Changed service".into();
    changed.provenance.as_mut().unwrap().content_hash.clear();
    let conflict = publish(&mut client, vec![changed]).await;
    assert_eq!(outcome(&conflict[0]), pb::PublishOutcome::Rejected);

    // What is held is still version 2 with its original content.
    let held = hub
        .hub()
        .store()
        .record(&kith_hub::store::RecordKey {
            custodian: COUNCIL_A.into(),
            record_id: "cpp-1".into(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.record.version, 2);
    assert_eq!(held.record.service, "Children's Services");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_record_gets_field_errors_and_the_rest_of_its_batch_goes_through() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut client = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let good = record_wire(
        COUNCIL_A,
        "good-1",
        1,
        &test_nhs_number(2),
        "child_in_need",
        &["safeguarding"],
    );
    let mut bad = record_wire(
        COUNCIL_A,
        "bad-1",
        1,
        &test_nhs_number(3),
        "child_in_need",
        &["safeguarding"],
    );
    bad.subject.as_mut().unwrap().nhs_number = "9434765918".into(); // wrong check digit
    bad.period.as_mut().unwrap().end = "2020-01-01".into(); // before start
    bad.relationship_type = 0;
    let mut tampered = record_wire(
        COUNCIL_A,
        "tampered-1",
        1,
        &test_nhs_number(4),
        "child_in_need",
        &["safeguarding"],
    );
    tampered.provenance.as_mut().unwrap().content_hash = "0".repeat(64);

    let results = publish(&mut client, vec![bad, good, tampered]).await;
    assert_eq!(outcome(&results[0]), pb::PublishOutcome::Rejected);
    let fields: Vec<&str> = results[0].errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["subject.nhs_number", "relationship_type"],
        "{:?}",
        results[0].errors
    );
    assert_eq!(outcome(&results[1]), pb::PublishOutcome::Accepted);
    assert_eq!(outcome(&results[2]), pb::PublishOutcome::Rejected);
    assert_eq!(results[2].errors[0].field, "provenance.content_hash");

    let audit = audit_entries(&hub).await;
    let publish = audit
        .iter()
        .find(|e| e["kind"] == "publish")
        .expect("publish audited");
    let decisions: Vec<&str> = publish["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["rejected", "accepted", "rejected"]);
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_authority_cannot_publish_end_or_withdraw_another_custodians_record() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut a = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let mut b = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_B)).await.unwrap());
    let record = record_wire(
        COUNCIL_A,
        "lac-7",
        1,
        &test_nhs_number(5),
        "looked_after_child",
        &["safeguarding"],
    );
    assert_eq!(
        outcome(&publish(&mut a, vec![record.clone()]).await[0]),
        pb::PublishOutcome::Accepted
    );

    // B claims A's record with a newer version.
    let mut forged = record.clone();
    forged.version = 9;
    forged.provenance.as_mut().unwrap().content_hash.clear();
    let results = publish(&mut b, vec![forged]).await;
    assert_eq!(outcome(&results[0]), pb::PublishOutcome::PermissionDenied);

    let key = Some(pb::RecordRef {
        custodian: COUNCIL_A.into(),
        record_id: "lac-7".into(),
    });
    let end = b
        .end_record(pb::EndRecordRequest {
            record: key.clone(),
            end: "2026-01-01".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(end.code(), tonic::Code::PermissionDenied);
    let withdraw = b
        .withdraw_record(pb::WithdrawRecordRequest {
            record: key,
            reason: pb::WithdrawReason::EnteredInError as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(withdraw.code(), tonic::Code::PermissionDenied);

    let held = hub
        .hub()
        .store()
        .record(&kith_hub::store::RecordKey {
            custodian: COUNCIL_A.into(),
            record_id: "lac-7".into(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.record.version, 1, "B's attempt changed nothing");
    assert_eq!(held.ended_on, None);

    let audit = audit_entries(&hub).await;
    let by_b: Vec<_> = audit
        .iter()
        .filter(|e| e["authority"] == COUNCIL_B)
        .collect();
    assert_eq!(by_b.len(), 3, "each refused attempt is audited: {by_b:?}");
    assert!(
        by_b.iter()
            .all(|e| e.to_string().contains("permission_denied"))
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_custodian_can_end_and_withdraw_its_record() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut a = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let nhs = test_nhs_number(6);
    publish(
        &mut a,
        vec![record_wire(
            COUNCIL_A,
            "cin-1",
            1,
            &nhs,
            "child_in_need",
            &["safeguarding"],
        )],
    )
    .await;
    let key = Some(pb::RecordRef {
        custodian: COUNCIL_A.into(),
        record_id: "cin-1".into(),
    });

    let bad_date = a
        .end_record(pb::EndRecordRequest {
            record: key.clone(),
            end: "31/12/2025".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_date.code(), tonic::Code::InvalidArgument);
    assert!(
        bad_date.message().starts_with("end:"),
        "{}",
        bad_date.message()
    );

    // The record started on 2025-02-01: an end before it is refused.
    let too_early = a
        .end_record(pb::EndRecordRequest {
            record: key.clone(),
            end: "2019-01-01".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(too_early.code(), tonic::Code::InvalidArgument);
    assert!(
        too_early.message().contains("end: 2019-01-01 is before"),
        "{}",
        too_early.message()
    );

    a.end_record(pb::EndRecordRequest {
        record: key.clone(),
        end: "2026-03-31".into(),
    })
    .await
    .unwrap();
    a.withdraw_record(pb::WithdrawRecordRequest {
        record: key.clone(),
        reason: pb::WithdrawReason::EnteredInError as i32,
    })
    .await
    .unwrap();
    let again = a
        .withdraw_record(pb::WithdrawRecordRequest {
            record: key,
            reason: pb::WithdrawReason::EnteredInError as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);
    let active = hub
        .hub()
        .store()
        .records_for_nhs_number(&nhs.parse().unwrap(), chrono::Utc::now().date_naive())
        .await
        .unwrap();
    assert!(active.is_empty(), "a withdrawn record is gone from results");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_batch_is_refused_whole() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut a = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let one = record_wire(
        COUNCIL_A,
        "r",
        1,
        &test_nhs_number(7),
        "child_in_need",
        &["safeguarding"],
    );
    let status = a
        .publish_records(pb::PublishRecordsRequest {
            records: vec![one; 1001],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("at most 1000"),
        "{}",
        status.message()
    );
    hub.shutdown().await.unwrap();
}
