//! Subscriptions over real mutual TLS (issue #17), on SQLite or, with
//! `KITH_TEST_DATABASE=postgres`, PostgreSQL: a subscriber is told of a new
//! relationship within a second of its publish, at the level the policy set
//! allows for the subscription's purpose and never above it; an objection
//! stops the notice; an ended subscription stops; the subscriber's own
//! relationship ending ends it; every bad input is refused with its reason,
//! and audited where it reaches the store.

use std::time::{Duration, Instant};

use kith_tests::v1 as pb;
use kith_tests::*;

struct World {
    t: TestDir,
    hub: kith_hub::server::RunningHub,
    nhs: String,
}

/// The trust treats the child: it holds a current record of its own.
async fn world() -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(17);
    let w = World { t, hub, nhs };
    let own = record_wire(
        TRUST_C,
        "ed-1",
        1,
        &w.nhs,
        "mental_health",
        &["direct_care", "safeguarding", "emergency"],
    );
    publish_accepted(w.hub.addr(), &w.t.agent_tls(TRUST_C), vec![own]).await;
    w
}

fn user(role: &str) -> pb::ActingUser {
    pb::ActingUser {
        user_id: format!("{role}-7"),
        display_name: "Dr R. Okafor".into(),
        role: role.into(),
        team: "Emergency Department".into(),
    }
}

fn request(nhs: &str, role: &str, purpose: pb::Purpose) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        acting_user: Some(user(role)),
        nhs_number: nhs.into(),
        relationship_types: vec![pb::RelationshipType::ChildProtectionPlan as i32],
        categories: vec![],
        purpose: purpose as i32,
        ends_on: String::new(),
    }
}

async fn subscribe_as(
    w: &World,
    code: &str,
    r: pb::SubscribeRequest,
) -> Result<pb::SubscribeResponse, tonic::Status> {
    let mut c = subscriptions_client(channel(w.hub.addr(), &w.t.agent_tls(code)).await.unwrap());
    c.subscribe(r).await.map(|r| r.into_inner())
}

async fn subscribed(w: &World, role: &str, purpose: pb::Purpose) -> pb::Subscription {
    subscribe_as(w, TRUST_C, request(&w.nhs, role, purpose))
        .await
        .expect("subscribed")
        .subscription
        .unwrap()
}

async fn list(w: &World, code: &str, include_ended: bool) -> Vec<pb::Subscription> {
    let mut c = subscriptions_client(channel(w.hub.addr(), &w.t.agent_tls(code)).await.unwrap());
    c.list_subscriptions(pb::ListSubscriptionsRequest { include_ended })
        .await
        .unwrap()
        .into_inner()
        .subscriptions
}

async fn unsubscribe_as(w: &World, code: &str, id: &str) -> Result<u64, tonic::Status> {
    let mut c = subscriptions_client(channel(w.hub.addr(), &w.t.agent_tls(code)).await.unwrap());
    c.unsubscribe(pb::UnsubscribeRequest {
        acting_user: Some(user("ed_clinician")),
        subscription_id: id.into(),
    })
    .await
    .map(|r| r.into_inner().audit_index)
}

fn cpp(w: &World, version: u64) -> pb::RelationshipRecord {
    record_wire(
        COUNCIL_A,
        "cpp-1",
        version,
        &w.nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care", "emergency"],
    )
}

/// The subscription notices the link sends within `within`, acknowledged.
async fn notices(link: &mut LinkProbe, within: Duration) -> Vec<pb::Notification> {
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    while let Some(n) = link
        .next_notification(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        link.ack(&n.notification_id).await;
        if n.kind == pb::NotificationKind::Subscription as i32 {
            out.push(n);
        }
    }
    out
}

fn level_of(n: &pb::Notification) -> i32 {
    n.disclosed.as_ref().unwrap().level
}

#[tokio::test]
async fn a_subscriber_is_told_within_a_second_at_the_level_allowed_and_never_above() {
    let w = world().await;
    // Two subscriptions of the trust's: an ED clinician for direct care
    // (summary of a council's child protection plan by default) and its
    // safeguarding lead for safeguarding (detail).
    let ed = subscribed(&w, "ed_clinician", pb::Purpose::DirectCare).await;
    let lead = subscribed(&w, "safeguarding_lead", pb::Purpose::Safeguarding).await;
    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(TRUST_C)).await;

    let started = Instant::now();
    let published =
        publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp(&w, 1)]).await;
    let first = link
        .next_notification(Duration::from_secs(1))
        .await
        .expect("told within a second of the publish");
    assert!(started.elapsed() < Duration::from_secs(1));
    link.ack(&first.notification_id).await;
    let mut got = vec![first];
    got.extend(notices(&mut link, Duration::from_secs(1)).await);
    assert_eq!(got.len(), 2, "{got:?}");
    for n in &got {
        assert_eq!(n.kind, pb::NotificationKind::Subscription as i32);
        assert_eq!(n.change, pb::SubscriptionChange::Started as i32);
        assert_eq!(n.audit_index, published[0].audit_index);
        let r = n.disclosed.as_ref().unwrap().record.as_ref().unwrap();
        assert_eq!(r.custodian, COUNCIL_A);
        assert_eq!(r.record_id, "cpp-1");
        assert_eq!(r.key_worker.as_ref().unwrap().phone, "0161 234 5000");
        assert_eq!(
            n.disclosed.as_ref().unwrap().custodian_name,
            "Manchester City Council"
        );
        // Nothing beyond the summary fields travels, whatever the level.
        assert!(r.subject.is_none() && r.lawful_basis.is_none(), "{r:?}");
    }
    let summary = got
        .iter()
        .find(|n| n.subscription_id == ed.subscription_id)
        .unwrap();
    assert_eq!(level_of(summary), pb::DisclosureLevel::Summary as i32);
    assert!(
        summary
            .disclosed
            .as_ref()
            .unwrap()
            .record
            .as_ref()
            .unwrap()
            .period
            .is_none(),
        "summary: no period"
    );
    let detail = got
        .iter()
        .find(|n| n.subscription_id == lead.subscription_id)
        .unwrap();
    assert_eq!(level_of(detail), pb::DisclosureLevel::Detail as i32);
    let period = detail
        .disclosed
        .as_ref()
        .unwrap()
        .record
        .as_ref()
        .unwrap()
        .period
        .clone();
    assert_eq!(period.unwrap().start, "2025-02-01");

    // The custodian's auditor sees who was told, in the publish entry.
    let entries = audit_entries(&w.hub).await;
    let publish = entries
        .iter()
        .rfind(|e| e["kind"] == "publish" && e["authority"] == COUNCIL_A)
        .unwrap();
    let told: Vec<&str> = publish["notified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["subscription_id"].as_str().unwrap())
        .collect();
    assert!(told.contains(&ed.subscription_id.as_str()), "{publish}");
    assert!(told.contains(&lead.subscription_id.as_str()), "{publish}");

    // A new version (a new key worker) is a change; the same version again
    // is nothing.
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp(&w, 2)]).await;
    let changed = notices(&mut link, Duration::from_secs(2)).await;
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(
        changed
            .iter()
            .all(|n| n.change == pb::SubscriptionChange::Changed as i32)
    );
    let mut c = records_client(
        channel(w.hub.addr(), &w.t.agent_tls(COUNCIL_A))
            .await
            .unwrap(),
    );
    let again = c
        .publish_records(pb::PublishRecordsRequest {
            records: vec![cpp(&w, 2)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again.results[0].outcome,
        pb::PublishOutcome::Unchanged as i32
    );
    assert!(
        notices(&mut link, Duration::from_millis(800))
            .await
            .is_empty()
    );

    // Ending it is told too, with the end date at detail.
    c.end_record(pb::EndRecordRequest {
        record: Some(pb::RecordRef {
            custodian: COUNCIL_A.into(),
            record_id: "cpp-1".into(),
        }),
        end: "2026-01-31".into(),
    })
    .await
    .unwrap();
    let ended = notices(&mut link, Duration::from_secs(2)).await;
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert!(
        ended
            .iter()
            .all(|n| n.change == pb::SubscriptionChange::Ended as i32)
    );
    let detail = ended
        .iter()
        .find(|n| level_of(n) == pb::DisclosureLevel::Detail as i32)
        .unwrap();
    let period = detail
        .disclosed
        .as_ref()
        .unwrap()
        .record
        .as_ref()
        .unwrap()
        .period
        .clone();
    assert_eq!(period.unwrap().end, "2026-01-31");
}

#[tokio::test]
async fn an_objection_stops_the_notice_and_other_types_are_not_told() {
    let w = world().await;
    subscribed(&w, "safeguarding_lead", pb::Purpose::Safeguarding).await;
    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(TRUST_C)).await;
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp(&w, 1)]).await;
    assert_eq!(notices(&mut link, Duration::from_secs(2)).await.len(), 1);

    // The person objects; the plan's next version is not told.
    let mut c = records_client(
        channel(w.hub.addr(), &w.t.agent_tls(COUNCIL_A))
            .await
            .unwrap(),
    );
    let r = c
        .publish_directives(pb::PublishDirectivesRequest {
            directives: vec![directive_wire(
                COUNCIL_A,
                "obj-1",
                1,
                "cpp-1",
                pb::DirectiveKind::Objection,
                pb::DirectiveStatus::Active,
            )],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[0].outcome, pb::PublishOutcome::Accepted as i32);
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp(&w, 2)]).await;
    assert!(
        notices(&mut link, Duration::from_secs(2)).await.is_empty(),
        "an objection stops the notice"
    );
    let entries = audit_entries(&w.hub).await;
    let last_publish = entries
        .iter()
        .rfind(|e| e["kind"] == "publish" && e["authority"] == COUNCIL_A)
        .unwrap();
    assert!(last_publish.get("notified").is_none(), "{last_publish}");

    // A type the subscription does not name is not told.
    let other = record_wire(
        COUNCIL_A,
        "cin-1",
        1,
        &w.nhs,
        "child_in_need",
        &["safeguarding", "direct_care", "emergency"],
    );
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![other]).await;
    assert!(notices(&mut link, Duration::from_secs(1)).await.is_empty());
}

#[tokio::test]
async fn an_ended_subscription_stops_and_only_its_subscriber_may_end_it() {
    let w = world().await;
    let s = subscribed(&w, "safeguarding_lead", pb::Purpose::Safeguarding).await;

    // Another authority's id: refused with its reason, and audited.
    let refused = unsubscribe_as(&w, COUNCIL_B, &s.subscription_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("ends only its own"),
        "{}",
        refused.message()
    );
    let entries = audit_entries(&w.hub).await;
    assert!(entries.iter().any(|e| e["kind"] == "unsubscribe"
        && e["authority"] == COUNCIL_B
        && e["outcome"] == "refused"
        && e["subscription_id"] == s.subscription_id.as_str()));
    assert_eq!(list(&w, TRUST_C, false).await.len(), 1, "still current");

    unsubscribe_as(&w, TRUST_C, &s.subscription_id)
        .await
        .unwrap();
    assert!(list(&w, TRUST_C, false).await.is_empty());
    let all = list(&w, TRUST_C, true).await;
    assert_eq!(all[0].end_reason, "unsubscribed");
    let again = unsubscribe_as(&w, TRUST_C, &s.subscription_id)
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);

    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(TRUST_C)).await;
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp(&w, 1)]).await;
    assert!(notices(&mut link, Duration::from_secs(2)).await.is_empty());
}

#[tokio::test]
async fn the_subscribers_own_relationship_ending_ends_its_subscriptions() {
    let w = world().await;
    let s = subscribed(&w, "safeguarding_lead", pb::Purpose::Safeguarding).await;
    let mut c = records_client(
        channel(w.hub.addr(), &w.t.agent_tls(TRUST_C))
            .await
            .unwrap(),
    );
    c.end_record(pb::EndRecordRequest {
        record: Some(pb::RecordRef {
            custodian: TRUST_C.into(),
            record_id: "ed-1".into(),
        }),
        end: "2026-01-31".into(),
    })
    .await
    .unwrap();
    assert!(list(&w, TRUST_C, false).await.is_empty(), "ended with it");
    let all = list(&w, TRUST_C, true).await;
    assert_eq!(all[0].subscription_id, s.subscription_id);
    assert_eq!(all[0].end_reason, "relationship_ended");
    let entries = audit_entries(&w.hub).await;
    assert!(entries.iter().any(|e| e["kind"] == "unsubscribe"
        && e["authority"] == TRUST_C
        && e["subscription_id"] == s.subscription_id.as_str()));

    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(TRUST_C)).await;
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp(&w, 1)]).await;
    assert!(notices(&mut link, Duration::from_secs(2)).await.is_empty());

    // And with no current relationship, it may not subscribe again.
    let refused = subscribe_as(
        &w,
        TRUST_C,
        request(&w.nhs, "safeguarding_lead", pb::Purpose::Safeguarding),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn each_bad_subscription_is_refused_with_its_reason() {
    let w = world().await;
    let field_of = |s: &tonic::Status| s.message().split(':').next().unwrap_or("").to_string();

    // No relationship of its own: the policy refuses, and it is audited.
    let refused = subscribe_as(
        &w,
        POLICE_D,
        request(&w.nhs, "police_officer", pb::Purpose::Safeguarding),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("no current relationship record"),
        "{}",
        refused.message()
    );
    let entries = audit_entries(&w.hub).await;
    let e = entries
        .iter()
        .rfind(|e| e["kind"] == "subscribe" && e["authority"] == POLICE_D)
        .expect("refusal audited");
    assert_eq!(e["outcome"], "refused");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("forbid-subscribe-without-relationship")
    );

    // Unknown type, category and purpose; an end past the maximum (365
    // days by default); a bad NHS number.
    let mut r = request(&w.nhs, "ed_clinician", pb::Purpose::DirectCare);
    r.relationship_types = vec![999];
    let s = subscribe_as(&w, TRUST_C, r).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert_eq!(field_of(&s), "relationship_types[0]");

    let mut r = request(&w.nhs, "ed_clinician", pb::Purpose::DirectCare);
    r.categories = vec!["astrology".into()];
    let s = subscribe_as(&w, TRUST_C, r).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(
        s.message().starts_with("categories[0]: unknown category"),
        "{}",
        s.message()
    );

    let mut r = request(&w.nhs, "ed_clinician", pb::Purpose::DirectCare);
    r.purpose = 999;
    let s = subscribe_as(&w, TRUST_C, r).await.unwrap_err();
    assert_eq!(field_of(&s), "purpose");

    let mut r = request(&w.nhs, "ed_clinician", pb::Purpose::DirectCare);
    r.ends_on = (chrono::Utc::now().date_naive() + chrono::Duration::days(366)).to_string();
    let s = subscribe_as(&w, TRUST_C, r).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(
        s.message().contains("past the longest subscription"),
        "{}",
        s.message()
    );
    let mut r = request(&w.nhs, "ed_clinician", pb::Purpose::DirectCare);
    r.ends_on = (chrono::Utc::now().date_naive() + chrono::Duration::days(365)).to_string();
    let at_max = subscribe_as(&w, TRUST_C, r.clone())
        .await
        .expect("the maximum itself");

    let mut bad = request(&w.nhs, "ed_clinician", pb::Purpose::DirectCare);
    bad.nhs_number = "9434765918".into();
    let s = subscribe_as(&w, TRUST_C, bad).await.unwrap_err();
    assert_eq!(field_of(&s), "nhs_number");

    // A duplicate: refused, naming the one held, and audited.
    let dup = subscribe_as(&w, TRUST_C, r).await.unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);
    let held = at_max.subscription.unwrap().subscription_id;
    assert!(dup.message().contains(&held), "{}", dup.message());
    let entries = audit_entries(&w.hub).await;
    assert!(entries.iter().any(|e| e["kind"] == "subscribe"
        && e["outcome"] == "duplicate"
        && e["subscription_id"] == held.as_str()));
    assert_eq!(
        list(&w, TRUST_C, false).await.len(),
        1,
        "nothing else stored"
    );
}

#[tokio::test]
async fn the_agent_subscribes_in_bulk_and_lists_and_ends_them() {
    let w = world().await;
    let config = w.t.agent_config(TRUST_C, w.hub.addr());
    let good = serde_json::json!({"nhs_number": w.nhs, "relationship_types": ["child_protection_plan"],
        "purpose": "safeguarding", "user_id": "sg-1", "role": "safeguarding_lead"});
    let other = serde_json::json!({"nhs_number": test_nhs_number(99), "categories": ["children"],
        "purpose": "safeguarding", "user_id": "sg-1", "role": "safeguarding_lead"});
    let bad_type = serde_json::json!({"nhs_number": w.nhs, "relationship_types": ["astrology"],
        "purpose": "safeguarding", "user_id": "sg-1", "role": "safeguarding_lead"});
    let text = format!("{good}\n{other}\nnot json\n{bad_type}\n{good}\n");
    let report = kith_agent::subscriptions::subscribe_lines(&config, &text)
        .await
        .unwrap();
    assert_eq!((report.accepted, report.rejected), (1, 4), "{report:?}");
    let refused: Vec<(usize, &str)> = report
        .lines
        .iter()
        .filter(|l| !l.refused.is_empty())
        .map(|l| (l.line, l.refused.as_str()))
        .collect();
    assert!(
        refused[0].1.contains("no current relationship record"),
        "{refused:?}"
    );
    assert!(
        refused[1].1.starts_with("not a subscription"),
        "{refused:?}"
    );
    assert!(
        refused[2].1.starts_with("relationship_types[0]"),
        "{refused:?}"
    );
    assert!(refused[3].1.contains("duplicate"), "{refused:?}");
    assert_eq!(
        refused.iter().map(|r| r.0).collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );

    let listed = kith_agent::subscriptions::list(&config, false)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].subscription_id, report.lines[0].subscription_id);
    assert_eq!(listed[0].relationship_types, ["child_protection_plan"]);
    let user = kith_core::ActingUser {
        user_id: "sg-1".into(),
        display_name: String::new(),
        role: "safeguarding_lead".into(),
        team: String::new(),
    };
    kith_agent::subscriptions::unsubscribe(&config, &user, &listed[0].subscription_id)
        .await
        .unwrap();
    assert!(
        kith_agent::subscriptions::list(&config, false)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The lines of a JSON Lines file once it has at least `n`.
async fn lines_of(file: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let read = || {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(20), || async { read().len() >= n }).await,
        "{} has fewer than {n} lines: {:?}",
        file.display(),
        read()
    );
    read()
}

#[tokio::test]
async fn a_dropped_subscriptions_file_subscribes_and_the_agent_sinks_get_the_notice() {
    let w = world().await;
    let mut config = w.t.agent_config(TRUST_C, w.hub.addr());
    let sink = w.t.path().join("trust-notifications.jsonl");
    config.notifications.file = Some(sink.clone());
    let agent = kith_agent::Agent::start(config.clone()).await.unwrap();

    let good = serde_json::json!({"nhs_number": w.nhs, "relationship_types": ["child_protection_plan"],
        "purpose": "direct_care", "user_id": "ed-1", "role": "ed_clinician"});
    let bad = serde_json::json!({"nhs_number": w.nhs, "relationship_types": ["child_protection_plan"],
        "purpose": "direct_care", "user_id": "ed-1", "role": "ed_clinician", "ends_on": "2020-01-01"});
    drop_file(
        &config,
        "open-cases.subscriptions.jsonl",
        &format!("{good}\n{bad}\n"),
    );
    let done = config.drop_dir.join("done");
    let report = || {
        std::fs::read_dir(&done).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
                p.to_string_lossy()
                    .ends_with(".subscriptions.jsonl.report.json")
            })
        })
    };
    assert!(eventually(Duration::from_secs(20), || async { report().is_some() }).await);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report().unwrap()).unwrap()).unwrap();
    assert_eq!(r["accepted"], 1, "{r}");
    assert_eq!(r["rejected"], 1, "{r}");
    assert!(
        r["lines"][1]["refused"]
            .as_str()
            .unwrap()
            .starts_with("ends_on"),
        "{r}"
    );
    assert!(
        !config
            .drop_dir
            .join("open-cases.subscriptions.jsonl")
            .exists()
    );

    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp(&w, 1)]).await;
    let told = lines_of(&sink, 1).await;
    assert_eq!(told[0]["kind"], "subscription", "{told:?}");
    assert_eq!(told[0]["change"], "started");
    assert_eq!(told[0]["level"], "summary");
    assert_eq!(
        told[0]["relationship"]["custodian_name"],
        "Manchester City Council"
    );
    assert!(
        told[0]["message"]
            .as_str()
            .unwrap()
            .contains("started a child protection plan (record cpp-1)"),
        "{told:?}"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_withdrawal_is_told_and_named_in_its_audit_entry() {
    let w = world().await;
    let s = subscribed(&w, "safeguarding_lead", pb::Purpose::Safeguarding).await;
    let mut link = LinkProbe::open(w.hub.addr(), &w.t.agent_tls(TRUST_C)).await;
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_A), vec![cpp(&w, 1)]).await;
    assert_eq!(notices(&mut link, Duration::from_secs(2)).await.len(), 1);
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
    let told = notices(&mut link, Duration::from_secs(2)).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].change, pb::SubscriptionChange::Withdrawn as i32);
    assert_eq!(told[0].subscription_id, s.subscription_id);
    assert_eq!(told[0].audit_index, withdrawn.audit_index);
    let entries = audit_entries(&w.hub).await;
    let e = &entries[withdrawn.audit_index as usize];
    assert_eq!(e["kind"], "withdraw");
    assert_eq!(
        e["notified"][0]["subscription_id"],
        s.subscription_id.as_str()
    );
    assert_eq!(e["notified"][0]["recipient"], TRUST_C);
}
