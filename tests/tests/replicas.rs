//! Several hubs on one PostgreSQL database: records published through one
//! are found through the other; one hub at a time signs checkpoints, the
//! other follows; when the signing hub goes, the other takes over with no
//! leaf lost or duplicated and every checkpoint consistent with the last.
//! Always runs on PostgreSQL (127.0.0.1:5432; CI starts it).

use std::time::Duration;

use kith_tests::v1 as pb;
use kith_tests::*;
use kith_tlog::{NoteVerifier, open_checkpoint, verify_consistency};

async fn publish(hub: &kith_hub::server::RunningHub, t: &TestDir, ids: std::ops::Range<u32>) {
    let mut a = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let records = ids
        .map(|n| {
            record_wire(
                COUNCIL_A,
                &format!("cin-{n}"),
                1,
                &test_nhs_number(n),
                "child_in_need",
                &["safeguarding"],
            )
        })
        .collect();
    let results = a
        .publish_records(pb::PublishRecordsRequest { records })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(
        results
            .iter()
            .all(|r| r.outcome == pb::PublishOutcome::Accepted as i32)
    );
}

#[tokio::test]
async fn two_hubs_share_records_and_the_survivor_takes_over_signing() {
    let t = TestDir::on_postgres();
    let first = t.start_hub().await;
    // Let the first hub take the sequencer lease before the second starts.
    assert!(
        eventually(Duration::from_secs(10), || async {
            first.log().is_sequencer()
        })
        .await
    );
    let second = t.start_hub().await;
    publish(&first, &t, 0..5).await;

    // Found through the other hub.
    let mut q = query_client(
        channel(second.addr(), &t.agent_tls(COUNCIL_B))
            .await
            .unwrap(),
    );
    let r = q
        .query(query_request(
            &test_nhs_number(3),
            pb::Purpose::Safeguarding,
            "social_worker",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.records.len(), 1);

    // One signs, the other follows the same checkpoints.
    let len = first.hub().store().audit_len().await.unwrap();
    let caught_up = eventually(Duration::from_secs(10), || async {
        second
            .log()
            .latest()
            .await
            .is_some_and(|c| c.tree_size >= len)
    })
    .await;
    assert!(caught_up, "the follower adopts the signer's checkpoint");
    assert!(first.log().is_sequencer());
    assert!(!second.log().is_sequencer());
    let before = first.log().latest().await.unwrap();

    // The signing hub goes away mid-load; publishing continues through the other.
    let load = {
        let t_addr = second.addr();
        let tls = t.agent_tls(COUNCIL_A);
        tokio::spawn(async move {
            let mut a = records_client(channel(t_addr, &tls).await.unwrap());
            for n in 100..130u32 {
                let record = record_wire(
                    COUNCIL_A,
                    &format!("lac-{n}"),
                    1,
                    &test_nhs_number(n),
                    "looked_after_child",
                    &["safeguarding"],
                );
                a.publish_records(pb::PublishRecordsRequest {
                    records: vec![record],
                })
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    first.shutdown().await.unwrap();
    load.await.unwrap();

    let total = second.hub().store().audit_len().await.unwrap();
    let took_over = eventually(Duration::from_secs(15), || async {
        second.log().is_sequencer()
            && second
                .log()
                .latest()
                .await
                .is_some_and(|c| c.tree_size == total)
    })
    .await;
    assert!(
        took_over,
        "the survivor signs a checkpoint covering every entry"
    );

    // No leaf lost or duplicated: indexes 0..total, each once.
    let entries = second
        .hub()
        .store()
        .audit_entries(0, 100_000)
        .await
        .unwrap();
    assert_eq!(entries.len() as u64, total);
    assert!(entries.iter().enumerate().all(|(i, e)| e.index == i as u64));

    // The new checkpoint is signed by the same key and consistent with the old.
    let after = second.log().latest().await.unwrap();
    let verifier = NoteVerifier::from_vkey(&second.log().vkey()).unwrap();
    let old = open_checkpoint(&before.note, &verifier).unwrap();
    let new = open_checkpoint(&after.note, &verifier).unwrap();
    let proof = second
        .log()
        .consistency_proof(old.size(), new.size())
        .await
        .unwrap();
    verify_consistency(
        old.size(),
        new.size(),
        old.root_hash(),
        new.root_hash(),
        &proof,
    )
    .unwrap();
    second.shutdown().await.unwrap();
}
