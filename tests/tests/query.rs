//! Case-worker queries over real mutual TLS: what each requester sees, the
//! redaction that goes with each level, refusals before lookup, and the
//! audit entry that is durable before the answer.

use kith_tests::v1 as pb;
use kith_tests::*;

struct World {
    _t: TestDir,
    hub: kith_hub::server::RunningHub,
    nhs: String,
}

async fn world() -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(42);
    let mut a = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let mut c = records_client(channel(hub.addr(), &t.agent_tls(TRUST_C)).await.unwrap());
    let cpp = record_wire(
        COUNCIL_A,
        "cpp-1",
        1,
        &nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care", "emergency"],
    );
    let mut mh = record_wire(
        TRUST_C,
        "mh-1",
        1,
        &nhs,
        "mental_health",
        &["direct_care", "care_planning"],
    );
    mh.service = "Community Mental Health Team".into();
    mh.provenance.as_mut().unwrap().content_hash.clear();
    let results = a
        .publish_records(pb::PublishRecordsRequest { records: vec![cpp] })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].outcome, pb::PublishOutcome::Accepted as i32);
    let results = c
        .publish_records(pb::PublishRecordsRequest { records: vec![mh] })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(
        results[0].outcome,
        pb::PublishOutcome::Accepted as i32,
        "{:?}",
        results[0].errors
    );
    World { _t: t, hub, nhs }
}

async fn ask(
    w: &World,
    as_authority: &str,
    purpose: pb::Purpose,
    role: &str,
) -> Result<pb::QueryResponse, tonic::Status> {
    let t = &w._t;
    let mut q = query_client(
        channel(w.hub.addr(), &t.agent_tls(as_authority))
            .await
            .unwrap(),
    );
    q.query(query_request(&w.nhs, purpose, role))
        .await
        .map(|r| r.into_inner())
}

fn levels(r: &pb::QueryResponse) -> Vec<(String, pb::DisclosureLevel)> {
    r.records
        .iter()
        .map(|d| {
            (
                d.record.as_ref().unwrap().custodian.clone(),
                pb::DisclosureLevel::try_from(d.level).unwrap(),
            )
        })
        .collect()
}

fn record_of<'a>(r: &'a pb::QueryResponse, custodian: &str) -> &'a pb::DisclosedRecord {
    r.records
        .iter()
        .find(|d| d.record.as_ref().unwrap().custodian == custodian)
        .expect("record present")
}

#[tokio::test]
async fn each_requester_sees_the_level_policy_gives_with_fields_redacted_to_match() {
    let w = world().await;

    // A social worker at another council, safeguarding: the child
    // protection plan in detail; the trust's mental health record, which
    // its custodian does not share for safeguarding, withheld.
    let r = ask(&w, COUNCIL_B, pb::Purpose::Safeguarding, "social_worker")
        .await
        .unwrap();
    assert_eq!(
        levels(&r),
        [
            (COUNCIL_A.to_string(), pb::DisclosureLevel::Detail),
            (TRUST_C.to_string(), pb::DisclosureLevel::Withheld)
        ]
    );
    let detail = record_of(&r, COUNCIL_A);
    let rec = detail.record.as_ref().unwrap();
    assert_eq!(rec.subject.as_ref().unwrap().nhs_number, w.nhs);
    assert_eq!(rec.period.as_ref().unwrap().start, "2025-02-01");
    assert_eq!(detail.custodian_name, "Manchester City Council");
    assert_eq!(detail.decided_by, ["children-safeguarding.detail"]);
    let withheld = record_of(&r, TRUST_C);
    let rec = withheld.record.as_ref().unwrap();
    assert!(
        rec.service.is_empty() && rec.key_worker.is_none() && rec.subject.is_none(),
        "withheld has no content: {rec:?}"
    );
    assert!(
        withheld.reason.contains("contact the custodian"),
        "{}",
        withheld.reason
    );
    // The case worker is told what permitted the level, never which forbid
    // held back more (a forbid's id can reveal what policy withholds)...
    assert!(
        !withheld
            .decided_by
            .iter()
            .any(|id| id.starts_with("forbid")),
        "{:?}",
        withheld.decided_by
    );
    // ...while the audit names both.
    let audit = audit_entries(&w.hub).await;
    let entry = &audit[r.audit_index as usize];
    let trust = entry["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["custodian"] == TRUST_C)
        .unwrap();
    assert!(
        trust["decided_by"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(
                "forbid-purpose-not-permitted-by-custodian"
            )),
        "{trust}"
    );

    // An emergency department clinician: a summary of the plan, with how to
    // reach the key worker, and nothing else.
    let r = ask(&w, TRUST_C, pb::Purpose::Safeguarding, "ed_clinician")
        .await
        .unwrap();
    let summary = record_of(&r, COUNCIL_A);
    assert_eq!(summary.level, pb::DisclosureLevel::Summary as i32);
    let rec = summary.record.as_ref().unwrap();
    assert_eq!(
        rec.relationship_type,
        pb::RelationshipType::ChildProtectionPlan as i32
    );
    assert_eq!(rec.key_worker.as_ref().unwrap().phone, "0161 234 5000");
    assert_eq!(rec.out_of_hours.as_ref().unwrap().phone, "0161 234 5999");
    assert!(
        rec.subject.is_none() && rec.period.is_none() && rec.lawful_basis.is_none(),
        "summary leaks: {rec:?}"
    );
    assert!(rec.permitted_purposes.is_empty() && rec.provenance.is_none());

    // Police asking for care planning: no agreement covers it; nothing
    // shown, and a notice they can act on.
    let r = ask(&w, POLICE_D, pb::Purpose::CarePlanning, "police_officer")
        .await
        .unwrap();
    assert!(r.records.is_empty(), "{:?}", levels(&r));
    assert!(
        r.notice
            .contains("no sharing agreement covers purpose care_planning for a police"),
        "{}",
        r.notice
    );
    // The same notice whether or not anything is held: it reveals nothing.
    let mut q = query_client(
        channel(w.hub.addr(), &w._t.agent_tls(POLICE_D))
            .await
            .unwrap(),
    );
    let nobody = q
        .query(query_request(
            &test_nhs_number(999),
            pb::Purpose::CarePlanning,
            "police_officer",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(nobody.notice, r.notice);
    // Where an agreement covers the purpose there is no notice.
    let r = ask(&w, COUNCIL_B, pb::Purpose::Safeguarding, "social_worker")
        .await
        .unwrap();
    assert!(r.notice.is_empty(), "{}", r.notice);
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_query_is_audited_with_each_decision_before_it_is_answered() {
    let w = world().await;
    let r = ask(&w, POLICE_D, pb::Purpose::CarePlanning, "police_officer")
        .await
        .unwrap();
    let audit = audit_entries(&w.hub).await;
    let entry = &audit[r.audit_index as usize];
    assert_eq!(entry["kind"], "query");
    assert_eq!(entry["authority"], POLICE_D);
    assert_eq!(entry["user"], "u-1001");
    assert_eq!(entry["role"], "police_officer");
    assert_eq!(entry["purpose"], "care_planning");
    assert_eq!(entry["subject"], w.nhs);
    assert_eq!(entry["query_id"], r.query_id);
    // The police were shown nothing, so their own query entry (which their
    // auditor reads) names no other custodian's record: each custodian's
    // hidden decision is in its own `access` entry, in the same commit.
    assert!(entry.get("records").is_none(), "{entry}");
    let shares: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|e| e["kind"] == "access" && e["query_id"] == r.query_id)
        .collect();
    let decisions: Vec<(&str, &str)> = shares
        .iter()
        .flat_map(|e| e["records"].as_array().unwrap())
        .map(|d| {
            (
                d["custodian"].as_str().unwrap(),
                d["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [(COUNCIL_A, "hidden"), (TRUST_C, "hidden")],
        "hidden decisions are audited too"
    );
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_query_without_a_valid_purpose_or_subject_is_refused_before_lookup() {
    let w = world().await;
    let before = audit_entries(&w.hub).await.len();
    let err = ask(&w, COUNCIL_B, pb::Purpose::Unspecified, "social_worker")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("purpose: is required"),
        "{}",
        err.message()
    );

    let mut q = query_client(
        channel(w.hub.addr(), &w._t.agent_tls(COUNCIL_B))
            .await
            .unwrap(),
    );
    let mut req = query_request("9434765918", pb::Purpose::Safeguarding, "social_worker");
    let err = q.query(req.clone()).await.unwrap_err();
    assert!(
        err.message().contains("subject.nhs_number: check digit"),
        "{}",
        err.message()
    );
    req.subject = None;
    req.purpose = 99;
    let err = q.query(req.clone()).await.unwrap_err();
    assert!(
        err.message().contains("purpose: 99 is not a known purpose"),
        "{}",
        err.message()
    );
    req = query_request(&w.nhs, pb::Purpose::Safeguarding, "");
    let err = q.query(req).await.unwrap_err();
    assert!(
        err.message().contains("acting_user.role: is required"),
        "{}",
        err.message()
    );
    assert_eq!(
        audit_entries(&w.hub).await.len(),
        before,
        "nothing was looked up, so nothing was disclosed"
    );
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_query_fails_closed_when_its_audit_entry_cannot_be_written() {
    let w = world().await;
    // Make the audit log refuse writes, from outside the hub.
    HubDb::connect(&w._t)
        .await
        .execute(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'disk full'; END; $$; \
             CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
        )
        .await;
    let err = ask(&w, COUNCIL_B, pb::Purpose::Safeguarding, "social_worker")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(
        !err.message().contains("cpp-1"),
        "no record content in the error"
    );
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn ended_records_show_their_end_and_withdrawn_ones_are_gone() {
    let w = world().await;
    let mut a = records_client(
        channel(w.hub.addr(), &w._t.agent_tls(COUNCIL_A))
            .await
            .unwrap(),
    );
    let key = Some(pb::RecordRef {
        custodian: COUNCIL_A.into(),
        record_id: "cpp-1".into(),
    });
    a.end_record(pb::EndRecordRequest {
        record: key.clone(),
        end: "2026-06-30".into(),
    })
    .await
    .unwrap();
    let r = ask(&w, COUNCIL_B, pb::Purpose::Safeguarding, "social_worker")
        .await
        .unwrap();
    assert_eq!(
        record_of(&r, COUNCIL_A)
            .record
            .as_ref()
            .unwrap()
            .period
            .as_ref()
            .unwrap()
            .end,
        "2026-06-30"
    );
    a.withdraw_record(pb::WithdrawRecordRequest {
        record: key,
        reason: pb::WithdrawReason::EnteredInError as i32,
    })
    .await
    .unwrap();
    let r = ask(&w, COUNCIL_B, pb::Purpose::Safeguarding, "social_worker")
        .await
        .unwrap();
    assert!(
        r.records
            .iter()
            .all(|d| d.record.as_ref().unwrap().custodian != COUNCIL_A)
    );
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_role_asserted_by_an_authority_kind_that_does_not_hold_it_discloses_nothing() {
    let w = world().await;
    // A police public protection officer sees the council's plan in detail
    // under the children's safeguarding agreement.
    let r = ask(
        &w,
        POLICE_D,
        pb::Purpose::Safeguarding,
        "public_protection_officer",
    )
    .await
    .unwrap();
    assert_eq!(
        levels(&r),
        [(COUNCIL_A.to_string(), pb::DisclosureLevel::Detail)]
    );
    // The same role asserted by an NHS trust's agent: nothing, and the
    // audit says which rule refused.
    let r = ask(
        &w,
        TRUST_C,
        pb::Purpose::Safeguarding,
        "public_protection_officer",
    )
    .await
    .unwrap();
    assert!(
        r.records
            .iter()
            .all(|d| d.record.as_ref().unwrap().custodian == TRUST_C),
        "{:?}",
        levels(&r)
    );
    let audit = audit_entries(&w.hub).await;
    let share = audit
        .iter()
        .find(|e| {
            e["kind"] == "access"
                && e["query_id"] == r.query_id
                && e["records"][0]["custodian"] == COUNCIL_A
        })
        .expect("the council's share of the trust's query");
    assert_eq!(share["records"][0]["decision"], "hidden", "{share}");
    assert!(
        share["records"][0]["decided_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "forbid-role-not-held-by-authority-kind"),
        "{share}"
    );
    w.hub.shutdown().await.unwrap();
}
