//! Hostile sizes over real mutual TLS: nothing unbounded reaches the store,
//! the audit log or an answer, and a refusal stays readable.
//!
//! Each case sends what an attacker with a member's certificate could send
//! (a value of hundreds of thousands of characters, a list of thousands of
//! bad codes, an NHS number that is never issued) and checks three things:
//! the caller gets a field-level `INVALID_ARGUMENT` or per-record error it
//! can read, the audit entry written (if any) stays within a small multiple
//! of the request, and nothing of the bad value is kept beyond a short
//! quoted prefix.

use kith_tests::v1 as pb;
use kith_tests::*;
use prost::Message;

/// What "a small constant multiple of the request" means here: an audit
/// entry is never more than this many times the bytes of the request that
/// caused it, plus a fixed allowance for its own envelope (kind, time,
/// authority, outcome, the policy fingerprint).
const ENTRY_MULTIPLE: usize = 4;
const ENTRY_ENVELOPE: usize = 4096;

async fn last_entry_bytes(hub: &kith_hub::server::RunningHub) -> Vec<u8> {
    let store = hub.hub().store();
    let entries = store.audit_entries(0, 100_000).await.unwrap();
    entries.last().expect("an audit entry").entry.clone()
}

async fn entry_count(hub: &kith_hub::server::RunningHub) -> usize {
    hub.hub()
        .store()
        .audit_entries(0, 100_000)
        .await
        .unwrap()
        .len()
}

fn record(n: u32) -> pb::RelationshipRecord {
    record_wire(
        COUNCIL_A,
        &format!("cpp-{n}"),
        1,
        &test_nhs_number(n),
        "child_protection_plan",
        &["safeguarding"],
    )
}

#[tokio::test]
async fn a_huge_bad_value_is_quoted_short_in_the_answer_and_the_audit_entry() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut client = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());

    let mut bad = record(1);
    bad.record_id = "x".repeat(300_000);
    bad.period.as_mut().unwrap().end = "9".repeat(300_000);
    bad.service = "s".repeat(300_000);
    let request = pb::PublishRecordsRequest {
        records: vec![bad, record(2)],
    };
    let request_bytes = request.encoded_len();
    let results = client
        .publish_records(request)
        .await
        .expect("a bad record never fails its batch")
        .into_inner()
        .results;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].outcome, pb::PublishOutcome::Rejected as i32);
    assert_eq!(results[1].outcome, pb::PublishOutcome::Accepted as i32);
    assert!(
        results[0].record_id.len() < 80,
        "the answer quotes the bad id short: {} bytes",
        results[0].record_id.len()
    );
    for e in &results[0].errors {
        assert!(
            e.reason.len() < 200,
            "{}: {} bytes",
            e.field,
            e.reason.len()
        );
    }

    let entry = last_entry_bytes(&hub).await;
    assert!(
        entry.len() < 8192,
        "the publish entry holds no copy of the bad values: {} bytes for a {request_bytes}-byte request",
        entry.len()
    );
    eprintln!(
        "bounds: a {request_bytes}-byte publish with three 300,000-character values: audit entry {} bytes",
        entry.len()
    );
    let text = String::from_utf8(entry).unwrap();
    assert!(text.contains("(300000 characters)"), "{text}");
}

#[tokio::test]
async fn no_audit_entry_grows_past_a_small_multiple_of_its_request() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut client = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());

    // The shapes that made large entries before: many bad labels and local
    // ids (one error each), a long list of unknown purpose codes, bad codes
    // everywhere, and a custodian that is not the caller's, very long. Each
    // list stays under the guard's 1,000 elements a field, so it is the
    // domain's bounds that are tested here (`tests/limits.rs` has the guard).
    let mut many_errors = record(1);
    many_errors.security_labels = vec!["not a label!".repeat(5); 900];
    many_errors.subject.as_mut().unwrap().local_ids = vec![
        pb::LocalIdentifier {
            system: "bad system".repeat(10),
            value: "bad value".repeat(10),
        };
        900
    ];
    let mut bad_codes = record(2);
    bad_codes.permitted_purposes = vec![9_999; 900];
    bad_codes.relationship_type = 77;
    let mut foreign = record(3);
    foreign.custodian = "E".repeat(20_000);

    for bad in [many_errors, bad_codes, foreign] {
        let request = pb::PublishRecordsRequest { records: vec![bad] };
        let request_bytes = request.encoded_len();
        let results = client
            .publish_records(request)
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_ne!(results[0].outcome, pb::PublishOutcome::Accepted as i32);
        assert!(
            results[0].errors.len() <= kith_core::error::MAX_FIELD_ERRORS + 1,
            "{} errors",
            results[0].errors.len()
        );
        let entry = last_entry_bytes(&hub).await;
        eprintln!(
            "bounds: a {request_bytes}-byte rejected publish: {} field errors, audit entry {} bytes",
            results[0].errors.len(),
            entry.len()
        );
        assert!(
            entry.len() <= ENTRY_MULTIPLE * request_bytes + ENTRY_ENVELOPE,
            "a {request_bytes}-byte request made a {}-byte audit entry",
            entry.len()
        );
        assert!(
            entry.len() < 16_384,
            "{} bytes: rejected values are not copied",
            entry.len()
        );
    }
}

#[tokio::test]
async fn a_bad_query_field_of_any_size_is_a_readable_invalid_argument() {
    // 30,000 characters a field: far past every field's bound, and the
    // whole request within the query service's message limit (a larger
    // message is refused before decoding, `tests/limits.rs`).
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut client = query_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let before = entry_count(&hub).await;

    let mut request = query_request(
        &test_nhs_number(1),
        pb::Purpose::Safeguarding,
        "social_worker",
    );
    request.subject = Some(pb::Subject {
        demographics: Some(pb::Demographics {
            given_name: "Amelia".into(),
            family_name: "O'Brien".into(),
            date_of_birth: "d".repeat(30_000),
            postcode: "p".repeat(30_000),
        }),
        ..Default::default()
    });
    request.acting_user.as_mut().unwrap().display_name = "n".repeat(30_000);
    request.acting_user.as_mut().unwrap().team = "t".repeat(30_000);
    request.confirm_candidate = "c".repeat(30_000);
    request.break_glass = Some(pb::BreakGlass {
        reason_code: "r".repeat(30_000),
        justification: format!("short{}", " ".repeat(30_000)),
    });
    let status = client.query(request).await.unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "not RESOURCE_EXHAUSTED: {status:?}"
    );
    let message = status.message();
    eprintln!(
        "bounds: a query with six 30,000-character fields: {:?}, message {} bytes",
        status.code(),
        message.len()
    );
    assert!(message.len() <= 2048, "{} bytes", message.len());
    for field in [
        "subject.demographics.date_of_birth",
        "acting_user.display_name",
        "acting_user.team",
        "confirm_candidate",
        "break_glass.reason_code",
        "break_glass.justification",
    ] {
        assert!(message.contains(field), "{field} named in: {message}");
    }
    assert_eq!(
        entry_count(&hub).await,
        before,
        "a request refused as invalid before lookup writes nothing"
    );
}

#[tokio::test]
async fn control_characters_in_the_acting_user_are_refused_by_field() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut client = query_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let mut request = query_request(
        &test_nhs_number(1),
        pb::Purpose::Safeguarding,
        "social_worker",
    );
    request.acting_user.as_mut().unwrap().display_name = "Sam \u{1b}[2J\u{1b}[31mPatel".into();
    let status = client.query(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("acting_user.display_name"),
        "{}",
        status.message()
    );

    // Padding is trimmed, and the trimmed name is what is audited.
    let mut request = query_request(
        &test_nhs_number(1),
        pb::Purpose::Safeguarding,
        "social_worker",
    );
    request.acting_user.as_mut().unwrap().user_id = format!("  u-1001{}", " ".repeat(100_000));
    client
        .query(request)
        .await
        .expect("a padded user id is trimmed");
    let entry: serde_json::Value = serde_json::from_slice(&last_entry_bytes(&hub).await).unwrap();
    assert_eq!(entry["user"], "u-1001");
}

#[tokio::test]
async fn nhs_numbers_that_are_never_issued_are_refused_with_the_reason() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
    let mut records = records_client(ch.clone());
    let mut query = query_client(ch);

    for never in ["0000000000", "1111111111", "9999999999"] {
        let mut r = record(1);
        r.subject.as_mut().unwrap().nhs_number = never.into();
        let results = records
            .publish_records(pb::PublishRecordsRequest { records: vec![r] })
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(results[0].outcome, pb::PublishOutcome::Rejected as i32);
        assert_eq!(results[0].errors[0].field, "subject.nhs_number");
        assert!(
            results[0].errors[0].reason.contains("never")
                || results[0].errors[0].reason.contains("ever issued"),
            "{never}: {:?}",
            results[0].errors
        );

        let status = query
            .query(query_request(
                never,
                pb::Purpose::Safeguarding,
                "social_worker",
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{never}");
        assert!(
            status.message().contains("subject.nhs_number"),
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn an_empty_publish_writes_no_audit_entry() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
    let mut records = records_client(ch);
    let before = entry_count(&hub).await;
    let results = records
        .publish_records(pb::PublishRecordsRequest { records: vec![] })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(results.is_empty());
    let results = records
        .publish_directives(pb::PublishDirectivesRequest { directives: vec![] })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(results.is_empty());
    assert_eq!(
        entry_count(&hub).await,
        before,
        "nothing happened, nothing logged"
    );
}

#[tokio::test]
async fn a_record_without_sensitivity_is_refused_not_guessed() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut records = records_client(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap());
    let mut r = record(1);
    r.sensitivity = 0;
    let results = records
        .publish_records(pb::PublishRecordsRequest { records: vec![r] })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].outcome, pb::PublishOutcome::Rejected as i32);
    assert_eq!(results[0].errors[0].field, "sensitivity");
    assert_eq!(results[0].errors[0].reason, "is required");
}
