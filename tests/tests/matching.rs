//! Finding the person without an NHS number, over real mutual TLS: names
//! normalised (O'Brien / OBrien, Zoë / Zoe, Smith-Jones / Smith Jones),
//! postcodes with or without the space, a date of birth with day and month
//! swapped; only certain matches link, possible ones come back as
//! candidates at summary level at most until confirmed; every link is
//! audited with its score and rule version; a local identifier counts only
//! against the authority that issued it.

use kith_tests::v1 as pb;
use kith_tests::*;

struct World {
    t: TestDir,
    hub: kith_hub::server::RunningHub,
}

/// A record of `custodian` with no NHS number: a local id and demographics.
fn unnumbered(
    custodian: &str,
    record_id: &str,
    relationship_type: &str,
    person: (&str, &str, &str, &str),
    local_id: &str,
) -> pb::RelationshipRecord {
    let mut r = record_wire(
        custodian,
        record_id,
        1,
        &test_nhs_number(1),
        relationship_type,
        &["safeguarding", "direct_care", "emergency"],
    );
    let (given, family, dob, postcode) = person;
    r.subject = Some(pb::Subject {
        nhs_number: String::new(),
        local_ids: vec![pb::LocalIdentifier {
            system: "mosaic".into(),
            value: local_id.into(),
        }],
        demographics: Some(pb::Demographics {
            given_name: given.into(),
            family_name: family.into(),
            date_of_birth: dob.into(),
            postcode: postcode.into(),
        }),
    });
    r.provenance.as_mut().unwrap().content_hash.clear();
    r
}

async fn world() -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let records = vec![
        unnumbered(
            COUNCIL_A,
            "cpp-amelia",
            "child_protection_plan",
            ("Amelia", "O'Brien", "2015-04-12", "M14 5RT"),
            "MOS-1",
        ),
        unnumbered(
            COUNCIL_A,
            "cin-zoe",
            "child_in_need",
            ("Zoë", "Smith-Jones", "2010-03-07", "M13 9PL"),
            "MOS-2",
        ),
        unnumbered(
            COUNCIL_A,
            "cin-other",
            "child_in_need",
            ("Oliver", "Grant", "2015-04-12", "M20 2LN"),
            "MOS-3",
        ),
    ];
    publish_accepted(hub.addr(), &t.agent_tls(COUNCIL_A), records).await;
    World { t, hub }
}

fn by_demographics(
    given: &str,
    family: &str,
    dob: &str,
    postcode: &str,
    confirm: &str,
) -> pb::QueryRequest {
    let mut q = query_request("", pb::Purpose::Safeguarding, "social_worker");
    q.subject = Some(pb::Subject {
        demographics: Some(pb::Demographics {
            given_name: given.into(),
            family_name: family.into(),
            date_of_birth: dob.into(),
            postcode: postcode.into(),
        }),
        ..Default::default()
    });
    q.confirm_candidate = confirm.into();
    q
}

async fn ask(
    w: &World,
    as_authority: &str,
    q: pb::QueryRequest,
) -> Result<pb::QueryResponse, tonic::Status> {
    ask_as(w.hub.addr(), &w.t.agent_tls(as_authority), q).await
}

fn ids(r: &pb::QueryResponse) -> Vec<String> {
    r.records
        .iter()
        .map(|d| d.record.as_ref().unwrap().record_id.clone())
        .collect()
}

async fn entry(w: &World, index: u64) -> serde_json::Value {
    let e = w.hub.hub().store().audit_entries(index, 1).await.unwrap();
    serde_json::from_slice(&e[0].entry).unwrap()
}

#[tokio::test]
async fn spelling_and_postcode_variants_of_the_same_person_link_for_certain_and_are_audited() {
    let w = world().await;
    let r = ask(
        &w,
        COUNCIL_B,
        by_demographics("amelia", "OBrien", "2015-04-12", "m145rt", ""),
    )
    .await
    .unwrap();
    assert_eq!(
        ids(&r),
        ["cpp-amelia"],
        "Oliver Grant shares the birthday, not the person"
    );
    assert_eq!(r.matched_by, "demographics");
    assert_eq!(r.records[0].level, pb::DisclosureLevel::Detail as i32);
    assert!(r.candidates.is_empty());

    let e = entry(&w, r.audit_index).await;
    let m = &e["matches"][0];
    assert_eq!(m["record_id"], "cpp-amelia");
    assert_eq!(m["grade"], "certain");
    assert_eq!(m["rule_version"], "kith-match-1");
    let score: f64 = m["score"].as_str().unwrap().parse().unwrap();
    assert!(score >= 30.0, "{score}");
}

#[tokio::test]
async fn a_near_match_comes_back_as_a_candidate_at_summary_until_the_case_worker_confirms_it() {
    let w = world().await;
    // Accent and hyphen differ, day and month swapped, postcode in the same sector.
    let r = ask(
        &w,
        COUNCIL_B,
        by_demographics("Zoe", "Smith Jones", "2010-07-03", "M13 9PX", ""),
    )
    .await
    .unwrap();
    assert!(
        r.records.is_empty(),
        "a possible match never links itself: {r:?}"
    );
    assert_eq!(r.matched_by, "", "nothing linked");
    assert_eq!(r.candidates.len(), 1, "{r:?}");
    let c = &r.candidates[0];
    assert_eq!(c.rule_version, "kith-match-1");
    assert!((15.0..30.0).contains(&c.score), "{}", c.score);
    for f in ["given_name", "family_name", "date_of_birth", "postcode"] {
        assert!(
            c.agreed.contains(&f.to_string()),
            "{f} agreed at least in part: {c:?}"
        );
    }
    let shown = c.record.as_ref().unwrap();
    assert_eq!(
        shown.level,
        pb::DisclosureLevel::Summary as i32,
        "summary at most"
    );
    let summary = shown.record.as_ref().unwrap();
    assert!(summary.subject.is_none(), "no demographics in a candidate");
    assert_eq!(
        summary.relationship_type,
        pb::RelationshipType::ChildInNeed as i32
    );
    let e = entry(&w, r.audit_index).await;
    assert_eq!(e["matches"][0]["grade"], "possible");
    assert_eq!(e["records"][0]["decision"], "summary");

    // Confirmed: linked, decided in full, audited as confirmed.
    let r = ask(
        &w,
        COUNCIL_B,
        by_demographics(
            "Zoe",
            "Smith Jones",
            "2010-07-03",
            "M13 9PX",
            &c.candidate_id,
        ),
    )
    .await
    .unwrap();
    assert_eq!(ids(&r), ["cin-zoe"]);
    assert_eq!(r.matched_by, "confirmed");
    assert_eq!(r.records[0].level, pb::DisclosureLevel::Detail as i32);
    let e = entry(&w, r.audit_index).await;
    assert_eq!(e["matches"][0]["grade"], "confirmed");

    // A candidate id this query does not offer cannot be confirmed.
    let err = ask(
        &w,
        COUNCIL_B,
        by_demographics(
            "Zoe",
            "Smith Jones",
            "2010-07-03",
            "M13 9PX",
            &format!("{COUNCIL_A}/cpp-amelia"),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("confirm_candidate"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn bad_demographics_are_refused_field_by_field() {
    let w = world().await;
    let err = ask(
        &w,
        COUNCIL_B,
        by_demographics("", "O'Brien", "12/04/2015", "nowhere", ""),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    for f in [
        "subject.demographics.given_name",
        "subject.demographics.date_of_birth",
        "subject.demographics.postcode",
    ] {
        assert!(err.message().contains(f), "{f}: {}", err.message());
    }
    let mut nothing = query_request("", pb::Purpose::Safeguarding, "social_worker");
    nothing.subject = None;
    let err = ask(&w, COUNCIL_B, nothing).await.unwrap_err();
    assert!(err.message().contains("subject"), "{}", err.message());
}

#[tokio::test]
async fn a_local_identifier_links_only_at_the_authority_that_issued_it() {
    let w = world().await;
    // Council A's own id for Zoë, with loose demographics: an identifier
    // match, certain.
    let mut q = by_demographics("Z", "Jones", "2010-03-07", "", "");
    q.subject.as_mut().unwrap().local_ids = vec![pb::LocalIdentifier {
        system: "mosaic".into(),
        value: "MOS-2".into(),
    }];
    let r = ask(&w, COUNCIL_A, q.clone()).await.unwrap();
    assert_eq!(ids(&r), ["cin-zoe"]);
    // The same id from council B means nothing: it did not issue it.
    let r = ask(&w, COUNCIL_B, q).await.unwrap();
    assert!(r.records.is_empty(), "{r:?}");
}

#[tokio::test]
async fn a_block_too_wide_to_compare_whole_says_so() {
    let w = world().await;
    let crowd: Vec<_> = (0..501)
        .map(|n| {
            unnumbered(
                COUNCIL_B,
                &format!("eh-{n}"),
                "early_help",
                ("Sam", &format!("Person{n}"), "2001-01-01", ""),
                &format!("LL-{n}"),
            )
        })
        .collect();
    publish_accepted(w.hub.addr(), &w.t.agent_tls(COUNCIL_B), crowd).await;
    let r = ask(
        &w,
        COUNCIL_A,
        by_demographics("Sam", "Nobody", "2001-01-01", "", ""),
    )
    .await
    .unwrap();
    assert!(r.notice.contains("not all were compared"), "{}", r.notice);
    let r = ask(
        &w,
        COUNCIL_A,
        by_demographics("Amelia", "O'Brien", "2015-04-12", "", ""),
    )
    .await
    .unwrap();
    assert!(!r.notice.contains("not all were compared"), "{}", r.notice);
}
