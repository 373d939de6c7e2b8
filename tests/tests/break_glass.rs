//! Break glass and access notifications over real mutual TLS: an emergency
//! claim opens what policy allows for that user and subject for the
//! configured window, flagged in the audit; the custodian is told; the
//! user's authority's auditor lists it and marks it reviewed (audited);
//! bad claims are refused field by field. Accesses to record types
//! configured for access notifications (child protection plans by default)
//! are told to the custodian: who, which organisation, what purpose, when.

use std::time::Duration;

use kith_tests::v1 as pb;
use kith_tests::*;

struct World {
    t: TestDir,
    hub: kith_hub::server::RunningHub,
    nhs: String,
}

/// The trust holds a mental health record shared for emergencies. Police
/// have no agreement with NHS trusts, so without break glass they see
/// nothing of it.
async fn world() -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(11);
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
    World { t, hub, nhs }
}

async fn police_query(
    w: &World,
    break_glass: Option<pb::BreakGlass>,
) -> Result<pb::QueryResponse, tonic::Status> {
    let mut request = query_request(&w.nhs, pb::Purpose::Emergency, "police_officer");
    request.break_glass = break_glass;
    ask_as(w.hub.addr(), &w.t.agent_tls(POLICE_D), request).await
}

/// The break-glass accesses `role` at the client's authority may list.
async fn list(
    audit: &mut pb::audit_service_client::AuditServiceClient<tonic::transport::Channel>,
    role: &str,
    include_reviewed: bool,
) -> Result<Vec<pb::BreakGlassAccess>, tonic::Status> {
    audit
        .list_break_glass(pb::ListBreakGlassRequest {
            acting_user: Some(acting_user(role)),
            include_reviewed,
        })
        .await
        .map(|r| r.into_inner().accesses)
}

fn claim() -> pb::BreakGlass {
    pb::BreakGlass {
        reason_code: "life_threatening".into(),
        justification: "Person in crisis on a bridge; need the crisis team's number now".into(),
    }
}

#[tokio::test]
async fn break_glass_opens_a_summary_for_the_window_flags_the_audit_and_tells_the_custodian() {
    let w = world().await;
    let before = police_query(&w, None).await.unwrap();
    assert!(
        before.records.is_empty(),
        "no agreement: nothing without break glass"
    );
    assert!(before.break_glass_until.is_empty());

    let r = police_query(&w, Some(claim())).await.unwrap();
    assert_eq!(r.records.len(), 1, "{r:?}");
    assert_eq!(r.records[0].level, pb::DisclosureLevel::Summary as i32);
    assert!(
        r.records[0]
            .decided_by
            .contains(&"break-glass-emergency-summary".to_string())
    );
    let until = chrono::DateTime::parse_from_rfc3339(&r.break_glass_until).unwrap();
    let hours = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!(
        (235..=240).contains(&hours),
        "four hours by default, got {hours} minutes"
    );

    // Within the window the same user needs no new claim for this person.
    let later = police_query(&w, None).await.unwrap();
    assert_eq!(later.records.len(), 1);
    assert_eq!(later.break_glass_until, r.break_glass_until);

    // Flagged in the audit: the claim, and the later query inside its window.
    let flagged: Vec<serde_json::Value> = audit_entries(&w.hub)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "query" && e.get("break_glass").is_some())
        .collect();
    assert_eq!(flagged.len(), 2, "{flagged:?}");
    assert_eq!(flagged[0]["break_glass"]["claimed"], true);
    assert_eq!(flagged[0]["break_glass"]["reason_code"], "life_threatening");
    assert_eq!(flagged[1]["break_glass"]["claimed"], false);

    // The custodian is told, with who, from where, why.
    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(TRUST_C)).await;
    let n = link
        .next_notification(Duration::from_secs(10))
        .await
        .expect("a break-glass notice");
    assert_eq!(n.kind, pb::NotificationKind::BreakGlass as i32);
    assert_eq!(n.accessor_authority, POLICE_D);
    assert_eq!(n.accessor_authority_name, "Greater Manchester Police");
    assert_eq!(n.accessor.as_ref().unwrap().role, "police_officer");
    assert_eq!(n.purpose, pb::Purpose::Emergency as i32);
    assert_eq!(n.level, pb::DisclosureLevel::Summary as i32);
    assert_eq!(n.query_id, r.query_id);
    assert!(n.reason.contains("life_threatening"), "{}", n.reason);

    // Another user of the same force has no open access.
    let mut other = query_request(&w.nhs, pb::Purpose::Emergency, "police_officer");
    other.acting_user.as_mut().unwrap().user_id = "pc-2".into();
    assert!(
        ask_as(w.hub.addr(), &w.t.agent_tls(POLICE_D), other)
            .await
            .unwrap()
            .records
            .is_empty()
    );
}

#[tokio::test]
async fn a_bad_claim_is_refused_before_any_lookup_naming_each_field() {
    let w = world().await;
    let err = police_query(
        &w,
        Some(pb::BreakGlass {
            reason_code: "curiosity".into(),
            justification: "now".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("break_glass.reason_code"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("break_glass.justification"),
        "{}",
        err.message()
    );
    assert!(
        police_query(&w, None)
            .await
            .unwrap()
            .break_glass_until
            .is_empty()
    );
}

#[tokio::test]
async fn the_users_authority_auditor_lists_and_reviews_break_glass_accesses() {
    let w = world().await;
    let r = police_query(&w, Some(claim())).await.unwrap();
    let mut audit = audit_client(
        channel(w.hub.addr(), &w.t.agent_tls(POLICE_D))
            .await
            .unwrap(),
    );

    let listed = list(&mut audit, "auditor", false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].query_id, r.query_id);
    assert_eq!(listed[0].subject, w.nhs);
    assert_eq!(listed[0].reason_code, "life_threatening");
    assert!(!listed[0].reviewed);

    // A police officer is not an auditor: refused.
    let refused = list(&mut audit, "police_officer", true).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // The custodian's auditor does not review the police's accesses.
    let mut trust_audit = audit_client(
        channel(w.hub.addr(), &w.t.agent_tls(TRUST_C))
            .await
            .unwrap(),
    );
    let theirs = list(&mut trust_audit, "auditor", true).await.unwrap();
    assert!(theirs.is_empty());

    let bad = audit
        .review_break_glass(pb::ReviewBreakGlassRequest {
            acting_user: Some(acting_user("auditor")),
            query_id: r.query_id.clone(),
            outcome: 0,
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(
        bad.message().contains("outcome") && bad.message().contains("note"),
        "{}",
        bad.message()
    );

    let reviewed = audit
        .review_break_glass(pb::ReviewBreakGlassRequest {
            acting_user: Some(acting_user("auditor")),
            query_id: r.query_id.clone(),
            outcome: pb::BreakGlassReviewOutcome::Appropriate as i32,
            note: "Crisis call log confirms the emergency".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let awaiting = list(&mut audit, "auditor", false).await.unwrap();
    assert!(awaiting.is_empty(), "reviewed: no longer awaiting");
    let all = list(&mut audit, "auditor", true).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].reviewed);
    assert_eq!(
        all[0].review_outcome,
        pb::BreakGlassReviewOutcome::Appropriate as i32
    );
    assert_eq!(all[0].reviewed_by, "auditor-1");

    let entry = w
        .hub
        .hub()
        .store()
        .audit_entries(reviewed.audit_index, 1)
        .await
        .unwrap();
    let entry: serde_json::Value = serde_json::from_slice(&entry[0].entry).unwrap();
    assert_eq!(entry["kind"], "break_glass_review");
    assert_eq!(entry["query_id"], r.query_id.as_str());

    let missing = audit
        .review_break_glass(pb::ReviewBreakGlassRequest {
            acting_user: Some(acting_user("auditor")),
            query_id: "no-such-query".into(),
            outcome: pb::BreakGlassReviewOutcome::Inappropriate as i32,
            note: "checking".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn the_custodian_is_told_of_every_access_to_a_child_protection_plan_and_not_of_others() {
    let w = world().await;
    let cpp = record_wire(
        COUNCIL_A,
        "cpp-1",
        1,
        &w.nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care", "emergency"],
    );
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp]).await;

    // Council B's social worker looks: council A is told; the trust's mental
    // health record is not a type configured for notifications.
    let request = query_request(&w.nhs, pb::Purpose::Safeguarding, "social_worker");
    let answer = ask_as(w.hub.addr(), &w.t.agent_tls(COUNCIL_B), request)
        .await
        .unwrap();
    assert!(!answer.records.is_empty());

    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(COUNCIL_A)).await;
    let n = link
        .next_notification(Duration::from_secs(10))
        .await
        .expect("an access notice");
    assert_eq!(n.kind, pb::NotificationKind::Access as i32);
    assert_eq!(n.record.as_ref().unwrap().record_id, "cpp-1");
    assert_eq!(
        n.relationship_type,
        pb::RelationshipType::ChildProtectionPlan as i32
    );
    assert_eq!(n.accessor_authority, COUNCIL_B);
    assert_eq!(n.accessor_authority_name, "Salford City Council");
    let who = n.accessor.as_ref().unwrap();
    assert_eq!(
        (who.user_id.as_str(), who.role.as_str()),
        ("u-1001", "social_worker")
    );
    assert_eq!(n.purpose, pb::Purpose::Safeguarding as i32);
    assert_eq!(n.query_id, answer.query_id);
    assert!(chrono::DateTime::parse_from_rfc3339(&n.occurred_at).is_ok());
    link.ack(&n.notification_id).await;

    let mut trust = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(TRUST_C)).await;
    assert!(
        trust
            .next_notification(Duration::from_secs(1))
            .await
            .is_none(),
        "mental health is not configured for access notifications"
    );
}

#[tokio::test]
async fn the_user_who_broke_glass_never_reviews_it_nor_does_a_non_auditor_and_each_refusal_is_audited()
 {
    let w = world().await;
    let r = police_query(&w, Some(claim())).await.unwrap();
    let mut audit = audit_client(
        channel(w.hub.addr(), &w.t.agent_tls(POLICE_D))
            .await
            .unwrap(),
    );
    let review = |user: pb::ActingUser| pb::ReviewBreakGlassRequest {
        acting_user: Some(user),
        query_id: r.query_id.clone(),
        outcome: pb::BreakGlassReviewOutcome::Appropriate as i32,
        note: "Looks fine to me".into(),
    };
    // The officer who broke glass (user u-1001), now asserted as the
    // force's auditor: separation of duties refuses.
    let mut same_user = acting_user("auditor");
    same_user.user_id = "u-1001".into();
    let err = audit
        .review_break_glass(review(same_user))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("another auditor"),
        "{}",
        err.message()
    );
    // The same officer under their own role, and another officer: refused.
    let mut officer = acting_user("police_officer");
    officer.user_id = "u-1001".into();
    let err = audit.review_break_glass(review(officer)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let err = audit
        .review_break_glass(review(acting_user("police_officer")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // The custodian's auditor cannot review the police's access either.
    let mut trust_audit = audit_client(
        channel(w.hub.addr(), &w.t.agent_tls(TRUST_C))
            .await
            .unwrap(),
    );
    let err = trust_audit
        .review_break_glass(review(acting_user("auditor")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    let refused: Vec<_> = audit_entries(&w.hub)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "break_glass_review" && e["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    for e in &refused {
        assert_eq!(e["authority"], POLICE_D);
        assert_eq!(e["query_id"], r.query_id.as_str(), "{e}");
    }
    assert_eq!(refused[0]["user"], "u-1001");
    assert_eq!(refused[0]["role"], "auditor");
    // Still awaiting review; another auditor at the force records it.
    let awaiting = list(&mut audit, "auditor", false).await.unwrap();
    assert_eq!(awaiting.len(), 1);
    assert!(!awaiting[0].reviewed);
    audit
        .review_break_glass(review(acting_user("auditor")))
        .await
        .unwrap();
    let all = list(&mut audit, "auditor", true).await.unwrap();
    assert!(all[0].reviewed);
    assert_eq!(all[0].reviewed_by, "auditor-1");
    w.hub.shutdown().await.unwrap();
}
