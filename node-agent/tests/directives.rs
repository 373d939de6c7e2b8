//! Sharing directives at the agent: taken from `*.directives.jsonl`, queued
//! behind the records before them, and honoured by the agent's own detail
//! decisions.

use std::path::Path;

use kith_agent::AgentConfig;
use kith_agent::config::PolicySection;
use kith_agent::detail::DetailResponder;
use kith_agent::ingest::{DropWatcher, SourceFormat, ingest_file};
use kith_agent::outbox::{DIRECTIVES, DeliveryOutcome, Outbox};
use kith_core::identity::AuthorityCode;
use kith_core::tls::TlsFiles;
use kith_proto::v1 as pb;

const AUTHORITY: &str = "E08000003";

fn authority() -> AuthorityCode {
    AuthorityCode::new(AUTHORITY).unwrap()
}

fn record_line(id: &str) -> String {
    format!(
        r#"{{"record_id":"{id}","version":1,"subject":{{"nhs_number":"9434765919"}},"relationship_type":"child_in_need","sensitivity":"normal","period":{{"start":"2025-01-01"}},"key_worker":{{"name":"J. Smith","phone":"0161 000 0000"}},"lawful_basis":{{"article6":"public_task"}},"permitted_purposes":["safeguarding","direct_care"],"residency":"source_only"}}"#
    )
}

/// A valid directive line; `extra` is spliced in before the closing brace.
fn directive_line(id: &str, record: &str, kind: &str, extra: &str) -> String {
    format!(
        r#"{{"directive_id":"{id}","version":1,"record_id":"{record}","kind":"{kind}","period":{{"start":"2025-01-01"}},"grantor":"the person","recorded_at":"2025-06-01T09:00:00Z"{extra}}}"#
    )
}

async fn outbox(dir: &Path) -> Outbox {
    Outbox::open(&dir.join("outbox.db")).await.unwrap()
}

#[tokio::test]
async fn a_directives_file_is_checked_line_by_line_and_queued() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let file = dir.path().join("today.directives.jsonl");
    assert_eq!(SourceFormat::of(&file), Some(SourceFormat::DirectiveLines));
    assert_eq!(
        SourceFormat::of(Path::new("today.jsonl")),
        Some(SourceFormat::JsonLines)
    );
    let body = [
        directive_line("obj-1", "cin-1", "objection", ""),
        directive_line("bad-kind", "cin-1", "veto", ""),
        directive_line(
            "bad-fields",
            "cin 1",
            "consent",
            r#","grantor":" ","recipient_kinds":["bank"]"#,
        )
        .replacen(r#","grantor":"the person""#, "", 1),
        directive_line(
            "other-custodian",
            "cin-1",
            "consent",
            r#","custodian":"W06000015""#,
        ),
        r#"{"directive_id":"broken","#.to_string(),
        directive_line("obj-1", "cin-1", "objection", r#","note":"changed""#),
    ]
    .join("\n");
    std::fs::write(&file, body).unwrap();
    let report = ingest_file(&file, &authority(), &outbox).await.unwrap();
    assert_eq!(report.format, Some(SourceFormat::DirectiveLines));
    assert_eq!(
        (report.records_read, report.accepted, report.enqueued),
        (6, 1, 1)
    );
    let refused: Vec<(usize, Option<&str>, Vec<&str>)> = report
        .rejected
        .iter()
        .map(|l| {
            (
                l.line,
                l.directive_id.as_deref(),
                l.errors.iter().map(|e| e.field.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            (2, Some("bad-kind"), vec!["kind"]),
            (
                3,
                Some("bad-fields"),
                vec!["record_id", "grantor", "recipient_kinds[0]"]
            ),
            (4, Some("other-custodian"), vec!["custodian"]),
            (5, None, vec!["(line)"]),
            (6, Some("obj-1"), vec!["version"]),
        ]
    );
    let conflict = &report.rejected[4].errors[0].reason;
    assert_eq!(
        conflict,
        "version 1 of this directive was already taken with different content; publish version 2"
    );
    assert!(
        report.rejected[1].errors[2]
            .reason
            .contains("not an organisation kind"),
        "{:?}",
        report.rejected[1]
    );
    let text = report.render();
    assert!(
        text.contains("line 2 (directive bad-kind, record cin-1): kind: unknown directive kind"),
        "{text}"
    );

    // The custodian was filled in; the same file again only repeats.
    let queued = outbox.next_directive_batch(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].directive.custodian, AUTHORITY);
    let again = ingest_file(&file, &authority(), &outbox).await.unwrap();
    assert_eq!((again.enqueued, again.duplicates), (0, 1));
    assert_eq!(outbox.stats().await.unwrap().directives.pending, 1);
}

#[tokio::test]
async fn a_directive_waits_for_the_records_queued_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("drop");
    std::fs::create_dir_all(&drop_dir).unwrap();
    let outbox = outbox(dir.path()).await;
    // Dropped together; the directives file sorts first by name.
    std::fs::write(
        drop_dir.join("a.directives.jsonl"),
        directive_line("obj-1", "cin-2", "objection", ""),
    )
    .unwrap();
    std::fs::write(
        drop_dir.join("b.jsonl"),
        [record_line("cin-1"), record_line("cin-2")].join("\n"),
    )
    .unwrap();
    let mut watcher = DropWatcher::new(&drop_dir, authority(), outbox.clone());
    watcher.poll_once().await.unwrap();
    let reports = watcher.poll_once().await.unwrap();
    let order: Vec<_> = reports.iter().map(|r| r.format).collect();
    assert_eq!(
        order,
        [
            Some(SourceFormat::JsonLines),
            Some(SourceFormat::DirectiveLines)
        ],
        "records are taken first"
    );

    // Nothing to send while either record is pending.
    assert!(outbox.next_directive_batch(10).await.unwrap().is_empty());
    let records = outbox.next_batch(10).await.unwrap();
    let id = |r: &str| records.iter().find(|e| e.record.record_id == r).unwrap().id;
    outbox
        .mark_delivered(&[id("cin-2")], DeliveryOutcome::Accepted)
        .await
        .unwrap();
    assert!(
        outbox.next_directive_batch(10).await.unwrap().is_empty(),
        "cin-1 was queued before the directive and is still pending"
    );
    outbox
        .mark_rejected(id("cin-1"), "service: refused")
        .await
        .unwrap();
    let ready = outbox.next_directive_batch(10).await.unwrap();
    assert_eq!(ready.len(), 1);

    // A later version of the governed record, queued after the directive,
    // holds it back too: the hub must hold the record first.
    let later = record_line("cin-2").replace(r#""version":1"#, r#""version":2"#);
    let file = dir.path().join("v2.jsonl");
    std::fs::write(&file, later).unwrap();
    ingest_file(&file, &authority(), &outbox).await.unwrap();
    assert!(outbox.next_directive_batch(10).await.unwrap().is_empty());

    // The hub's refusal is kept for status, with its reason.
    outbox
        .mark_rejected_in(
            DIRECTIVES,
            ready[0].id,
            "record_id: the hub holds no record cin-2",
        )
        .await
        .unwrap();
    let rejected = outbox.rejected_directives(10).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        (
            rejected[0].directive_id.as_str(),
            rejected[0].record_id.as_str()
        ),
        ("obj-1", "cin-2")
    );
    assert!(rejected[0].reason.contains("holds no record"));
    assert_eq!(outbox.stats().await.unwrap().directives.rejected, 1);
}

fn policies_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn detail_request(requester: &str, kind: &str, purpose: pb::Purpose) -> pb::DetailRequest {
    pb::DetailRequest {
        request_id: "req-1".into(),
        record_id: "cin-1".into(),
        version: 1,
        requester_authority: requester.into(),
        requester_kind: kind.into(),
        requester_jurisdiction: "england".into(),
        acting_user: Some(pb::ActingUser {
            user_id: "sw-3".into(),
            role: "social_worker".into(),
            ..Default::default()
        }),
        purpose: purpose as i32,
        traceparent: String::new(),
    }
}

fn given(response: &pb::DetailResponse) -> Result<(), String> {
    match &response.result {
        Some(pb::detail_response::Result::Record(_)) => Ok(()),
        Some(pb::detail_response::Result::Refused(why)) => Err(why.clone()),
        None => Err("no answer".into()),
    }
}

#[tokio::test]
async fn the_agent_honours_an_objection_it_knows_of() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let records = dir.path().join("r.jsonl");
    std::fs::write(&records, record_line("cin-1")).unwrap();
    ingest_file(&records, &authority(), &outbox).await.unwrap();

    let mut config = AgentConfig::new(
        AUTHORITY,
        vec!["https://127.0.0.1:1".into()],
        TlsFiles {
            ca: "ca.pem".into(),
            cert: "c.pem".into(),
            key: "c.key".into(),
        },
        dir.path(),
        dir.path().join("drop"),
    );
    config.policy = Some(PolicySection {
        dir: policies_dir(),
        kind: "council".into(),
        jurisdiction: "england".into(),
    });
    let responder = DetailResponder::new(&config, outbox.clone()).unwrap();
    let council = || detail_request("E08000007", "council", pb::Purpose::Safeguarding);
    assert_eq!(
        given(&responder.answer(council()).await),
        Ok(()),
        "no directive yet"
    );

    // An objection scoped to the police does not touch a council's request.
    let directives = dir.path().join("d.directives.jsonl");
    std::fs::write(
        &directives,
        directive_line(
            "obj-police",
            "cin-1",
            "objection",
            r#","recipient_kinds":["police"]"#,
        ),
    )
    .unwrap();
    ingest_file(&directives, &authority(), &outbox)
        .await
        .unwrap();
    assert_eq!(given(&responder.answer(council()).await), Ok(()));

    // One covering everyone is honoured, pending at the hub or not.
    std::fs::write(
        &directives,
        directive_line("obj-all", "cin-1", "objection", ""),
    )
    .unwrap();
    ingest_file(&directives, &authority(), &outbox)
        .await
        .unwrap();
    let why = given(&responder.answer(council()).await).unwrap_err();
    assert!(why.contains("withheld"), "{why}");

    // Withdrawn by a new version: detail again.
    std::fs::write(
        &directives,
        directive_line("obj-all", "cin-1", "objection", r#","status":"inactive""#)
            .replace(r#""version":1"#, r#""version":2"#),
    )
    .unwrap();
    ingest_file(&directives, &authority(), &outbox)
        .await
        .unwrap();
    assert_eq!(given(&responder.answer(council()).await), Ok(()));
}
