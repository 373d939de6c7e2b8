//! Sharing directives over real mutual TLS: an objection takes effect for
//! the very next query, withdrawing it restores sharing, conflicts resolve
//! deny-overrides-then-most-recent, consent-based records need consent, and
//! bad directives are refused with their reasons. Also the lifecycle around
//! them: a withdrawn or objected-to record is revoked downstream, and a
//! record past its retention is left out of answers and purged, audited.

use std::time::Duration;

use kith_tests::v1 as pb;
use kith_tests::*;

struct World {
    t: TestDir,
    hub: kith_hub::server::RunningHub,
    nhs: String,
}

/// Council A holds a child protection plan about one person.
async fn world() -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(7);
    let w = World { t, hub, nhs };
    let cpp = record_wire(
        COUNCIL_A,
        "cpp-1",
        1,
        &w.nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care", "emergency"],
    );
    publish(&w, COUNCIL_A, cpp).await;
    w
}

async fn publish(w: &World, custodian: &str, record: pb::RelationshipRecord) {
    publish_accepted(w.hub.addr(), &w.t.agent_tls(custodian), vec![record]).await;
}

/// Council B's social worker asks about the person, for safeguarding.
async fn ask_as_b(w: &World) -> pb::QueryResponse {
    let q = query_request(&w.nhs, pb::Purpose::Safeguarding, "social_worker");
    ask_as(w.hub.addr(), &w.t.agent_tls(COUNCIL_B), q)
        .await
        .unwrap()
}

async fn direct(
    w: &World,
    as_authority: &str,
    directives: Vec<pb::SharingDirective>,
) -> Vec<pb::DirectiveResult> {
    let mut c = records_client(
        channel(w.hub.addr(), &w.t.agent_tls(as_authority))
            .await
            .unwrap(),
    );
    c.publish_directives(pb::PublishDirectivesRequest { directives })
        .await
        .unwrap()
        .into_inner()
        .results
}

/// What council B's social worker sees of council A's record, for safeguarding.
async fn level_seen_by_b(w: &World) -> pb::DisclosureLevel {
    let r = ask_as_b(w).await;
    assert_eq!(r.records.len(), 1, "{r:?}");
    pb::DisclosureLevel::try_from(r.records[0].level).unwrap()
}

fn objection(version: u64, status: pb::DirectiveStatus) -> pb::SharingDirective {
    directive_wire(
        COUNCIL_A,
        "obj-1",
        version,
        "cpp-1",
        pb::DirectiveKind::Objection,
        status,
    )
}

#[tokio::test]
async fn an_objection_takes_effect_for_the_very_next_query_and_withdrawing_it_restores_sharing() {
    let w = world().await;
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Detail);

    let r = direct(
        &w,
        COUNCIL_A,
        vec![objection(1, pb::DirectiveStatus::Active)],
    )
    .await;
    assert_eq!(
        r[0].outcome,
        pb::PublishOutcome::Accepted as i32,
        "{:?}",
        r[0].errors
    );
    assert!(r[0].audit_index > 0);
    assert_eq!(
        level_seen_by_b(&w).await,
        pb::DisclosureLevel::Withheld,
        "the very next query honours the objection"
    );

    // Re-sending the same version changes nothing; a newer one withdraws it.
    let r = direct(
        &w,
        COUNCIL_A,
        vec![objection(1, pb::DirectiveStatus::Active)],
    )
    .await;
    assert_eq!(r[0].outcome, pb::PublishOutcome::Unchanged as i32);
    let r = direct(
        &w,
        COUNCIL_A,
        vec![objection(2, pb::DirectiveStatus::Inactive)],
    )
    .await;
    assert_eq!(
        r[0].outcome,
        pb::PublishOutcome::Accepted as i32,
        "{:?}",
        r[0].errors
    );
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Detail);
    let r = direct(
        &w,
        COUNCIL_A,
        vec![objection(1, pb::DirectiveStatus::Active)],
    )
    .await;
    assert_eq!(
        r[0].outcome,
        pb::PublishOutcome::Stale as i32,
        "an old version never wins"
    );
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Detail);
}

#[tokio::test]
async fn an_objection_scoped_to_other_recipients_leaves_this_one_alone() {
    let w = world().await;
    let mut scoped = objection(1, pb::DirectiveStatus::Active);
    scoped.recipient_kinds = vec!["police".into()];
    let r = direct(&w, COUNCIL_A, vec![scoped]).await;
    assert_eq!(
        r[0].outcome,
        pb::PublishOutcome::Accepted as i32,
        "{:?}",
        r[0].errors
    );
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Detail);
}

#[tokio::test]
async fn deny_overrides_a_later_consent() {
    let w = world().await;
    let mut consent = directive_wire(
        COUNCIL_A,
        "consent-1",
        1,
        "cpp-1",
        pb::DirectiveKind::Consent,
        pb::DirectiveStatus::Active,
    );
    let mut objection = objection(1, pb::DirectiveStatus::Active);
    objection.recorded_at = "2026-01-01T09:00:00Z".into();
    consent.recorded_at = "2026-02-01T09:00:00Z".into();
    let r = direct(&w, COUNCIL_A, vec![objection, consent]).await;
    assert!(
        r.iter()
            .all(|r| r.outcome == pb::PublishOutcome::Accepted as i32),
        "{r:?}"
    );
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Withheld);
}

#[tokio::test]
async fn a_consent_based_record_is_shared_only_while_consent_covers_the_request() {
    let w = world().await;
    let mut record = record_wire(
        COUNCIL_A,
        "cpp-1",
        2,
        &w.nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care", "emergency"],
    );
    record.lawful_basis.as_mut().unwrap().article6 = pb::Article6Basis::Consent as i32;
    record.provenance.as_mut().unwrap().content_hash.clear();
    publish(&w, COUNCIL_A, record).await;
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Withheld);

    let mut consent = directive_wire(
        COUNCIL_A,
        "consent-1",
        1,
        "cpp-1",
        pb::DirectiveKind::Consent,
        pb::DirectiveStatus::Active,
    );
    consent.purposes = vec![pb::Purpose::Safeguarding as i32];
    let r = direct(&w, COUNCIL_A, vec![consent.clone()]).await;
    assert_eq!(
        r[0].outcome,
        pb::PublishOutcome::Accepted as i32,
        "{:?}",
        r[0].errors
    );
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Detail);

    // Consent withdrawn: back to withheld at once.
    consent.version = 2;
    consent.status = pb::DirectiveStatus::Inactive as i32;
    let r = direct(&w, COUNCIL_A, vec![consent]).await;
    assert_eq!(
        r[0].outcome,
        pb::PublishOutcome::Accepted as i32,
        "{:?}",
        r[0].errors
    );
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Withheld);
}

#[tokio::test]
async fn bad_directives_are_refused_with_their_reasons_and_the_rest_of_the_batch_goes_through() {
    let w = world().await;
    let unknown = directive_wire(
        COUNCIL_A,
        "obj-x",
        1,
        "no-such-record",
        pb::DirectiveKind::Objection,
        pb::DirectiveStatus::Active,
    );
    let not_ours = directive_wire(
        COUNCIL_B,
        "obj-y",
        1,
        "cpp-1",
        pb::DirectiveKind::Objection,
        pb::DirectiveStatus::Active,
    );
    let mut invalid = objection(1, pb::DirectiveStatus::Active);
    invalid.directive_id = "obj-z".into();
    invalid.kind = 0;
    invalid.grantor = String::new();
    invalid.recorded_at = "last tuesday".into();
    let good = objection(1, pb::DirectiveStatus::Active);
    let r = direct(&w, COUNCIL_A, vec![unknown, not_ours, invalid, good]).await;

    assert_eq!(r[0].outcome, pb::PublishOutcome::Rejected as i32);
    assert_eq!(r[0].errors[0].field, "record_id");
    assert!(
        r[0].errors[0].reason.contains("no record"),
        "{:?}",
        r[0].errors
    );
    assert_eq!(r[1].outcome, pb::PublishOutcome::PermissionDenied as i32);
    assert_eq!(r[1].errors[0].field, "custodian");
    assert_eq!(r[2].outcome, pb::PublishOutcome::Rejected as i32);
    let fields: Vec<_> = r[2].errors.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"kind") && fields.contains(&"recorded_at"),
        "{fields:?}"
    );
    assert_eq!(
        r[3].outcome,
        pb::PublishOutcome::Accepted as i32,
        "{:?}",
        r[3].errors
    );
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Withheld);

    // Another authority cannot object for council A's record, even naming it.
    let r = direct(
        &w,
        COUNCIL_B,
        vec![objection(5, pb::DirectiveStatus::Inactive)],
    )
    .await;
    assert_eq!(r[0].outcome, pb::PublishOutcome::PermissionDenied as i32);
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Withheld);

    // Same version, different content: refused, the held one stands.
    let mut changed = objection(1, pb::DirectiveStatus::Active);
    changed.grantor = "someone else".into();
    let r = direct(&w, COUNCIL_A, vec![changed]).await;
    assert_eq!(r[0].outcome, pb::PublishOutcome::Rejected as i32);
    assert_eq!(r[0].errors[0].field, "version");
}

#[tokio::test]
async fn withdrawing_a_record_sends_a_revocation_to_whoever_was_shown_it_until_acknowledged() {
    let w = world().await;
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Detail);

    let mut c = records_client(
        channel(w.hub.addr(), &w.t.agent_tls(COUNCIL_A))
            .await
            .unwrap(),
    );
    let withdrawn = c
        .withdraw_record(pb::WithdrawRecordRequest {
            record: Some(pb::RecordRef {
                custodian: COUNCIL_A.into(),
                record_id: "cpp-1".into(),
            }),
            reason: pb::WithdrawReason::EnteredInError as i32,
        })
        .await
        .unwrap()
        .into_inner();

    // Council B's agent is told on its link, again on a new link until it
    // acknowledges, and never again after.
    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(COUNCIL_B)).await;
    let n = link
        .next_notification(Duration::from_secs(10))
        .await
        .expect("a revocation notice");
    assert_eq!(n.kind, pb::NotificationKind::Revocation as i32);
    assert_eq!(n.record.as_ref().unwrap().record_id, "cpp-1");
    assert_eq!(n.audit_index, withdrawn.audit_index);
    assert!(n.reason.contains("entered_in_error"), "{}", n.reason);
    drop(link);

    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(COUNCIL_B)).await;
    let again = link
        .next_notification(Duration::from_secs(10))
        .await
        .expect("resent while unacknowledged");
    assert_eq!(again.notification_id, n.notification_id);
    link.ack(&n.notification_id).await;
    // The acknowledgement is recorded before the next link looks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(link);
    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(COUNCIL_B)).await;
    assert!(
        link.next_notification(Duration::from_secs(2))
            .await
            .is_none(),
        "acknowledged: not sent again"
    );

    // The custodian's own link gets no revocation of its own record.
    // (It is told of council B's access to its child protection plan.)
    let mut own = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(COUNCIL_A)).await;
    while let Some(n) = own.next_notification(Duration::from_secs(1)).await {
        assert_eq!(n.kind, pb::NotificationKind::Access as i32, "{n:?}");
    }

    // The withdrawn record is gone from answers.
    let r = ask_as_b(&w).await;
    assert!(r.records.is_empty(), "{r:?}");
}

#[tokio::test]
async fn an_objection_revokes_what_other_authorities_were_shown() {
    let w = world().await;
    assert_eq!(level_seen_by_b(&w).await, pb::DisclosureLevel::Detail);
    let r = direct(
        &w,
        COUNCIL_A,
        vec![objection(1, pb::DirectiveStatus::Active)],
    )
    .await;
    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(COUNCIL_B)).await;
    let n = link
        .next_notification(Duration::from_secs(10))
        .await
        .expect("a revocation notice");
    assert_eq!(n.kind, pb::NotificationKind::Revocation as i32);
    assert_eq!(n.audit_index, r[0].audit_index);
    assert!(n.reason.contains("objected"), "{}", n.reason);
    // Police were never shown it: nothing for them.
    let mut police = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(POLICE_D)).await;
    assert!(
        police
            .next_notification(Duration::from_secs(1))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_record_past_its_retention_is_left_out_then_purged_and_the_purge_audited() {
    let w = world().await;
    let mut old = record_wire(
        COUNCIL_A,
        "eh-1",
        1,
        &w.nhs,
        "early_help",
        &["safeguarding", "direct_care"],
    );
    old.retain_until = "2025-06-30".into();
    old.provenance.as_mut().unwrap().content_hash.clear();
    publish(&w, COUNCIL_A, old).await;

    // Only the plan comes back: the early-help record's retention has ended.
    let r = ask_as_b(&w).await;
    let ids: Vec<_> = r
        .records
        .iter()
        .map(|d| d.record.as_ref().unwrap().record_id.as_str())
        .collect();
    assert_eq!(ids, ["cpp-1"]);

    let today = chrono::Utc::now().date_naive();
    assert_eq!(w.hub.hub().purge_expired(today).await.unwrap(), 1);
    assert_eq!(
        w.hub.hub().purge_expired(today).await.unwrap(),
        0,
        "idempotent"
    );
    let key = kith_hub::store::RecordKey {
        custodian: COUNCIL_A.into(),
        record_id: "eh-1".into(),
    };
    assert!(
        w.hub.hub().store().record(&key).await.unwrap().is_none(),
        "deleted from the store"
    );
    let kept = kith_hub::store::RecordKey {
        custodian: COUNCIL_A.into(),
        record_id: "cpp-1".into(),
    };
    assert!(w.hub.hub().store().record(&kept).await.unwrap().is_some());

    let purges: Vec<serde_json::Value> = audit_entries(&w.hub)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "purge")
        .collect();
    assert_eq!(purges.len(), 1, "{purges:?}");
    assert_eq!(purges[0]["records"][0]["record_id"], "eh-1");
}
