//! A query is audited exactly once, even when an agent retries it.
//!
//! A break-glass query writes its audit entry and opens the access for
//! review. If those were two writes, a failure of the second after the
//! first had committed would answer `UNAVAILABLE`, the agent would fail
//! over and ask again, and the same query would be audited twice. They are
//! one commit: this test makes the break-glass write fail and checks the
//! refused attempt left no audit entry behind, then that the retry makes
//! exactly one.

use kith_tests::v1 as pb;
use kith_tests::*;

fn query_entries(entries: &[serde_json::Value]) -> usize {
    entries.iter().filter(|e| e["kind"] == "query").count()
}

#[tokio::test]
async fn a_break_glass_query_that_fails_to_commit_leaves_no_entry_and_a_retry_makes_one() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(21);
    let mut mh = record_wire(
        TRUST_C,
        "mh-1",
        1,
        &nhs,
        "mental_health",
        &["direct_care", "emergency"],
    );
    mh.provenance.as_mut().unwrap().content_hash.clear();
    publish_accepted(hub.addr(), &t.agent_tls(TRUST_C), vec![mh]).await;
    let request = || {
        let mut r = query_request(&nhs, pb::Purpose::Emergency, "police_officer");
        r.break_glass = Some(pb::BreakGlass {
            reason_code: "public_safety".into(),
            justification: "armed person reported at the address, welfare of occupants".into(),
        });
        r
    };

    // The break-glass table refuses writes: the query cannot be recorded
    // for review, so it must not be audited (or answered) at all.
    let db = HubDb::connect(&t).await;
    db.execute(
        "CREATE TRIGGER no_break_glass BEFORE INSERT ON break_glass \
         BEGIN SELECT RAISE(ABORT, 'test: break_glass unwritable'); END;",
        "CREATE FUNCTION no_break_glass() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'test: break_glass unwritable'; END $$; \
         CREATE TRIGGER no_break_glass BEFORE INSERT ON break_glass \
         FOR EACH ROW EXECUTE FUNCTION no_break_glass();",
    )
    .await;
    let before = query_entries(&audit_entries(&hub).await);
    let failed = ask_as(hub.addr(), &t.agent_tls(POLICE_D), request())
        .await
        .unwrap_err();
    assert_eq!(failed.code(), tonic::Code::Unavailable, "{failed:?}");
    assert_eq!(
        query_entries(&audit_entries(&hub).await),
        before,
        "a query that was not answered left no audit entry"
    );

    // The agent retries once the store accepts writes again: one entry.
    db.execute(
        "DROP TRIGGER no_break_glass;",
        "DROP TRIGGER no_break_glass ON break_glass; DROP FUNCTION no_break_glass();",
    )
    .await;
    let answer = ask_as(hub.addr(), &t.agent_tls(POLICE_D), request())
        .await
        .expect("the retry is answered");
    assert!(!answer.break_glass_until.is_empty());
    let entries = audit_entries(&hub).await;
    assert_eq!(
        query_entries(&entries),
        before + 1,
        "one query answered, one query entry"
    );
    let with_index: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "query" && e["break_glass"]["claimed"] == true)
        .collect();
    assert_eq!(with_index.len(), 1);

    // The access is open for review, pointing at that entry.
    let mut audit = audit_client(channel(hub.addr(), &t.agent_tls(POLICE_D)).await.unwrap());
    let listed = audit
        .list_break_glass(pb::ListBreakGlassRequest {
            acting_user: Some(acting_user("auditor")),
            include_reviewed: false,
        })
        .await
        .expect("the police auditor lists its accesses")
        .into_inner()
        .accesses;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].audit_index, answer.audit_index);
    db.close().await;
}
