//! The auditor's commands against a real hub over mutual TLS: verifying the
//! signed log and naming a tampered entry, consistency across hub restarts,
//! audit scope by policy, exports any RFC 9162 implementation can check, and
//! subject access reports.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kith_agent::AgentConfig;
use kith_agent::audit::{
    self, Auditor, ExportFormat, ExportOptions, Problem, SearchFilter, VerifyOptions,
};
use kith_tests::v1 as pb;
use kith_tests::*;

const WAIT: Duration = Duration::from_secs(10);

struct World {
    t: TestDir,
    hub: kith_hub::server::RunningHub,
    nhs: String,
}

async fn publish(w: &World, custodian: &str, record: pb::RelationshipRecord) {
    let mut c = records_client(
        channel(w.hub.addr(), &w.t.agent_tls(custodian))
            .await
            .unwrap(),
    );
    let results = c
        .publish_records(pb::PublishRecordsRequest {
            records: vec![record],
        })
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
}

/// Asks about the world's person; returns the query's audit index.
async fn ask(w: &World, authority: &str, purpose: pb::Purpose, role: &str) -> u64 {
    let mut q = query_client(
        channel(w.hub.addr(), &w.t.agent_tls(authority))
            .await
            .unwrap(),
    );
    q.query(query_request(&w.nhs, purpose, role))
        .await
        .unwrap()
        .into_inner()
        .audit_index
}

/// A hub with a council's child protection plan and a trust's mental health
/// record about one person, and three queries about them.
async fn world() -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let w = World {
        t,
        hub,
        nhs: test_nhs_number(77),
    };
    let cpp = record_wire(
        COUNCIL_A,
        "cpp-1",
        1,
        &w.nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care", "emergency"],
    );
    publish(&w, COUNCIL_A, cpp).await;
    let mut mh = record_wire(
        TRUST_C,
        "mh-1",
        1,
        &w.nhs,
        "mental_health",
        &["direct_care", "care_planning"],
    );
    mh.provenance.as_mut().unwrap().content_hash.clear();
    publish(&w, TRUST_C, mh).await;
    ask(&w, COUNCIL_B, pb::Purpose::Safeguarding, "social_worker").await;
    ask(&w, TRUST_C, pb::Purpose::Safeguarding, "ed_clinician").await;
    let last = ask(&w, POLICE_D, pb::Purpose::CarePlanning, "police_officer").await;
    wait_for_checkpoint(&w, last + 1).await;
    w
}

/// An agent config for `authority` that trusts the log's published key.
fn auditor_config(w: &World, authority: &str) -> AgentConfig {
    let mut config = w.t.agent_config(authority, w.hub.addr());
    config.audit.vkey = Some(w.t.log_vkey());
    config
}

fn federation_auditor() -> Auditor {
    Auditor::new("fa-1", "federation_auditor")
}

fn state_file(w: &World) -> PathBuf {
    w.t.path().join("auditor").join("audit-state.json")
}

fn options(w: &World) -> VerifyOptions {
    VerifyOptions {
        vkey: None,
        state: Some(state_file(w)),
    }
}

/// Waits until a signed checkpoint covers at least `size` entries.
async fn wait_for_checkpoint(w: &World, size: u64) {
    let config = auditor_config(w, OVERSIGHT);
    let covered = eventually(WAIT, || {
        let config = config.clone();
        async move {
            audit::checkpoint(&config, federation_auditor(), None)
                .await
                .is_ok_and(|c| c.tree_size >= size)
        }
    })
    .await;
    assert!(covered, "no checkpoint covering {size} entries");
}

async fn verify(w: &World, authority: &str, auditor: Auditor) -> audit::VerifyReport {
    audit::verify(
        &auditor_config(w, authority),
        auditor,
        &options(w),
        &mut |_, _| {},
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_federation_auditor_verifies_the_signed_log_and_saves_the_checkpoint() {
    let w = world().await;
    let report = verify(&w, OVERSIGHT, federation_auditor()).await;
    assert!(report.ok(), "{}", report.render());
    assert_eq!(report.entries, report.checkpoint.tree_size);
    assert!(report.entries >= 5, "two publishes and three queries");
    assert_eq!(report.withheld, 0, "a federation auditor reads every entry");
    assert_eq!(
        report.checkpoint.key,
        audit::KeySource::File(w.t.log_vkey())
    );
    assert_eq!(report.saved_to.as_deref(), Some(state_file(&w).as_path()));
    assert!(report.consistent_with.is_none(), "nothing saved before");
    let text = report.render();
    assert!(
        text.starts_with(&format!("verified {} entries", report.entries)),
        "{text}"
    );

    // The verify itself was audited; the next checkpoint extends the saved one.
    wait_for_checkpoint(&w, report.entries + 1).await;
    let again = verify(&w, OVERSIGHT, federation_auditor()).await;
    assert!(again.ok(), "{}", again.render());
    assert_eq!(
        again.consistent_with.as_ref().map(|s| s.tree_size),
        Some(report.entries)
    );
    assert!(
        again
            .render()
            .contains("consistent with the checkpoint saved at")
    );

    // The printed checkpoint is the note the key verifies.
    let cp = audit::checkpoint(&auditor_config(&w, OVERSIGHT), federation_auditor(), None)
        .await
        .unwrap();
    assert!(
        cp.note.starts_with("kith.localhost/audit-log\n"),
        "{}",
        cp.note
    );
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn verify_names_exactly_the_entry_changed_in_the_database() {
    let w = world().await;
    let first = verify(&w, OVERSIGHT, federation_auditor()).await;
    assert!(first.ok(), "{}", first.render());
    let saved = std::fs::read_to_string(state_file(&w)).unwrap();

    // Someone with database access edits one byte of one entry.
    let db = HubDb::connect(&w.t).await;
    db.execute(
        "DROP TRIGGER audit_log_is_append_only_update",
        "DROP TRIGGER audit_log_is_append_only_update ON audit_log",
    )
    .await;
    let target: i64 = 2;
    let mut bytes = db.audit_entry(target).await;
    // A digit of the timestamp: still valid JSON, one byte different.
    let at = bytes
        .windows(6)
        .position(|w| w == b"\"at\":\"")
        .expect("an at field")
        + 6;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    db.rewrite_audit_entry(target, &bytes, None).await;

    let report = verify(&w, OVERSIGHT, federation_auditor()).await;
    assert!(!report.ok());
    assert_eq!(
        report.problems,
        [Problem::ContentChanged {
            first: target as u64,
            last: target as u64
        }],
        "{}",
        report.render()
    );
    let text = report.render();
    assert!(
        text.contains(&format!(
            "entry {target}: its content no longer matches the leaf hash logged for it"
        )),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(state_file(&w)).unwrap(),
        saved,
        "a failed verify saves nothing"
    );

    // A careful forger also rewrites the leaf hash: the content matches it,
    // but the signed tree does not, and the inclusion proofs name the entry.
    let forged_index: i64 = 3;
    let mut forged = db.audit_entry(forged_index).await;
    let at = forged.windows(6).position(|w| w == b"\"at\":\"").unwrap() + 6;
    forged[at] = if forged[at] == b'1' { b'2' } else { b'1' };
    db.rewrite_audit_entry(forged_index, &forged, Some(kith_tlog::leaf_hash(&forged)))
        .await;
    let report = verify(&w, OVERSIGHT, federation_auditor()).await;
    assert_eq!(
        report.problems,
        [
            Problem::ContentChanged {
                first: target as u64,
                last: target as u64
            },
            Problem::NotInCheckpoint {
                first: forged_index as u64,
                last: forged_index as u64
            }
        ],
        "{}",
        report.render()
    );
    db.close().await;
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn checkpoints_stay_consistent_across_a_hub_restart() {
    let mut w = world().await;
    let before = verify(&w, OVERSIGHT, federation_auditor()).await;
    assert!(before.ok(), "{}", before.render());

    w.hub.shutdown().await.unwrap();
    w.hub = w.t.start_hub().await;
    let last = ask(&w, COUNCIL_B, pb::Purpose::Safeguarding, "social_worker").await;
    ask(&w, TRUST_C, pb::Purpose::DirectCare, "ed_clinician").await;
    wait_for_checkpoint(&w, last + 2).await;

    let after = verify(&w, OVERSIGHT, federation_auditor()).await;
    assert!(after.ok(), "{}", after.render());
    let saved = after
        .consistent_with
        .as_ref()
        .expect("checked against the saved checkpoint");
    assert_eq!(saved.tree_size, before.checkpoint.tree_size);
    assert_eq!(saved.root_hash, hex_of(&before.checkpoint.root_hash));
    assert!(after.checkpoint.tree_size > before.checkpoint.tree_size);
    w.hub.shutdown().await.unwrap();
}

fn hex_of(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_council_auditor_reads_its_own_entries_and_a_social_worker_is_refused() {
    let w = world().await;
    // Another council asks about a person only council A holds a record on.
    let other = test_nhs_number(78);
    publish(
        &w,
        COUNCIL_A,
        record_wire(
            COUNCIL_A,
            "cin-9",
            1,
            &other,
            "child_in_need",
            &["safeguarding"],
        ),
    )
    .await;
    let mut q = query_client(
        channel(w.hub.addr(), &w.t.agent_tls(COUNCIL_B))
            .await
            .unwrap(),
    );
    let last = q
        .query(query_request(
            &other,
            pb::Purpose::Safeguarding,
            "social_worker",
        ))
        .await
        .unwrap()
        .into_inner()
        .audit_index;
    wait_for_checkpoint(&w, last + 1).await;
    let config = auditor_config(&w, COUNCIL_A);
    let (cp, entries) = audit::client::read_log(
        &config,
        Auditor::new("dpo-a", "auditor"),
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(
        entries.len() as u64,
        cp.tree_size,
        "every leaf, visible or not"
    );
    let mut saw_other_query = false;
    let mut saw_share_of_mixed_query = false;
    for e in &entries {
        match e.view() {
            Some(v) => {
                assert!(
                    v.authority == COUNCIL_A
                        || (!v.records.is_empty()
                            && v.records.iter().all(|r| r.custodian == COUNCIL_A)),
                    "entry {} is not council A's alone: {v:?}",
                    e.index
                );
                // B's query that also found the trust's record would tell
                // council A what the trust holds: the whole entry is
                // withheld, and A sees its own share as an `access` entry.
                if v.authority == COUNCIL_B && v.subject.as_deref() == Some(w.nhs.as_str()) {
                    assert_eq!(v.kind, "access", "entry {}: {v:?}", e.index);
                    saw_share_of_mixed_query = true;
                }
                saw_other_query |= v.kind == "query" && v.authority == COUNCIL_B;
            }
            None => assert!(e.entry.is_none(), "withheld entries carry no bytes"),
        }
    }
    assert!(
        saw_other_query,
        "another council's query naming only our record is ours to audit"
    );
    assert!(
        saw_share_of_mixed_query,
        "every access to our records is ours to audit, even within a query that reached others"
    );
    assert!(
        entries.iter().any(|e| e.entry.is_none()),
        "the trust's publish is withheld"
    );

    // With hashes alone for the rest, the council's auditor still verifies
    // the whole tree.
    let report = verify(&w, COUNCIL_A, Auditor::new("dpo-a", "auditor")).await;
    assert!(report.ok(), "{}", report.render());
    assert!(report.withheld > 0);

    let err = audit::verify(
        &config,
        Auditor::new("sw-1", "social_worker"),
        &VerifyOptions::default(),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::PermissionDenied), "{err}");
    assert!(err.to_string().contains("GetEntries"), "{err}");

    // A federation auditor's role at a council is not a federation auditor.
    let err = audit::client::read_log(
        &config,
        Auditor::new("x", "federation_auditor"),
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::PermissionDenied), "{err}");
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_jsonl_export_recomputes_the_signed_root_independently() {
    let w = world().await;
    let config = auditor_config(&w, OVERSIGHT);
    let mut out = Vec::new();
    let summary = audit::export(
        &config,
        federation_auditor(),
        &ExportOptions::default(),
        &mut out,
        &mut |_, _| {},
    )
    .await
    .unwrap();

    // Independently: the note, with the published key; the root, from the
    // exported bytes alone.
    let vkey = std::fs::read_to_string(w.t.log_vkey()).unwrap();
    let verifier = kith_tlog::NoteVerifier::from_vkey(vkey.trim()).unwrap();
    let checkpoint = kith_tlog::open_checkpoint(&summary.checkpoint.note, &verifier).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut leaves = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["index"], i as u64);
        let bytes = STANDARD
            .decode(v["entry_base64"].as_str().expect("visible"))
            .unwrap();
        let leaf = kith_tlog::leaf_hash(&bytes);
        assert_eq!(v["leaf_hash"], hex_of(&leaf));
        assert!(v["entry"]["kind"].is_string());
        leaves.push(leaf);
    }
    assert_eq!(leaves.len() as u64, checkpoint.size());
    assert_eq!(&kith_tlog::root_of(&leaves), checkpoint.root_hash());

    // FHIR AuditEvents for the same entries.
    let mut fhir = Vec::new();
    let all = audit::export(
        &config,
        federation_auditor(),
        &ExportOptions {
            format: ExportFormat::Fhir,
            ..Default::default()
        },
        &mut fhir,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(all.written, all.to);
    let events: Vec<serde_json::Value> = String::from_utf8(fhir)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let query = events
        .iter()
        .find(|e| {
            e["type"]["code"] == "110112"
                && e["agent"][0]["who"]["identifier"]["value"] == COUNCIL_B
        })
        .expect("the council's query");
    assert_eq!(query["resourceType"], "AuditEvent");
    assert_eq!(query["action"], "E");
    assert_eq!(query["outcome"], "0");
    assert_eq!(query["agent"][0]["altId"], "u-1001");
    assert_eq!(
        query["agent"][0]["role"][0]["coding"][0]["code"],
        "social_worker"
    );
    assert_eq!(
        query["purposeOfEvent"][0]["coding"][0]["code"],
        "safeguarding"
    );
    assert_eq!(query["entity"][0]["what"]["identifier"]["value"], w.nhs);
    let publish = events
        .iter()
        .find(|e| e["type"]["code"] == "110110")
        .expect("a publish");
    assert_eq!(publish["action"], "C");

    // A range of indexes, end exclusive.
    let mut part = Vec::new();
    let range = audit::export(
        &config,
        federation_auditor(),
        &ExportOptions {
            from: Some(1),
            to: Some(4),
            ..Default::default()
        },
        &mut part,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!((range.from, range.to, range.written), (1, 4, 3));
    assert!(
        String::from_utf8(part)
            .unwrap()
            .starts_with(r#"{"index":1,"#)
    );
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_subject_report_lists_every_query_about_the_person_with_purpose_and_levels() {
    let w = world().await;
    let config = auditor_config(&w, OVERSIGHT);
    let (_, report) =
        audit::subject_report(&config, federation_auditor(), &w.nhs, None, &mut |_, _| {})
            .await
            .unwrap();
    let who: Vec<(&str, &str, &str)> = report
        .accesses
        .iter()
        .map(|a| (a.authority.as_str(), a.role.as_str(), a.purpose.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            (COUNCIL_B, "social_worker", "safeguarding"),
            (TRUST_C, "ed_clinician", "safeguarding"),
            (POLICE_D, "police_officer", "care_planning"),
        ]
    );
    let b = &report.accesses[0];
    let levels: Vec<(&str, &str)> = b
        .records
        .iter()
        .map(|r| (r.record_id.as_str(), r.decision.as_str()))
        .collect();
    assert_eq!(levels, [("cpp-1", "detail"), ("mh-1", "withheld")]);
    assert_eq!(b.agreements, ["children-safeguarding"]);
    let table = report.render_table();
    assert!(table.contains("E08000003/cpp-1: detail"), "{table}");
    assert!(table.contains("children-safeguarding"), "{table}");

    // The same through search, narrowed by authority.
    let (_, found) = audit::search(
        &config,
        federation_auditor(),
        &SearchFilter {
            subject: Some(w.nhs.clone()),
            authority: Some(COUNCIL_B.into()),
            kind: Some("query".into()),
            ..Default::default()
        },
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(found.hits.len(), 1);
    assert_eq!(found.hits[0].entry.user.as_deref(), Some("u-1001"));
    // Beside it, one `access` entry per custodian it reached.
    let (_, shares) = audit::search(
        &config,
        federation_auditor(),
        &SearchFilter {
            subject: Some(w.nhs.clone()),
            authority: Some(COUNCIL_B.into()),
            kind: Some("access".into()),
            ..Default::default()
        },
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let custodians: Vec<_> = shares
        .hits
        .iter()
        .map(|h| h.entry.records[0].custodian.as_str())
        .collect();
    assert_eq!(custodians, [COUNCIL_A, TRUST_C]);
    // Entries are served only up to the latest checkpoint: wait until one
    // covers the audit reads just made (without this the test relied on
    // calls being slow).
    let appended = w.hub.hub().store().audit_len().await.unwrap();
    wait_for_checkpoint(&w, appended).await;
    let (_, refused) = audit::search(
        &config,
        federation_auditor(),
        &SearchFilter {
            kind: Some("audit_read".into()),
            ..Default::default()
        },
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert!(
        !refused.hits.is_empty(),
        "audit reads are themselves audited"
    );
    w.hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_malformed_or_out_of_range_entries_request_is_audited_and_answered_clearly() {
    let w = world().await;
    let mut client = audit_client(
        channel(w.hub.addr(), &w.t.agent_tls(COUNCIL_A))
            .await
            .unwrap(),
    );
    for count in [0, 1001] {
        let err = client
            .get_entries(pb::GetEntriesRequest {
                acting_user: Some(acting_user("auditor")),
                start: 3,
                count,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("count"), "{}", err.message());
        assert!(err.message().contains("1 to 1000"), "{}", err.message());
    }
    let refused: Vec<_> = audit_entries(&w.hub)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "audit_read" && e["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    for e in &refused {
        assert_eq!(e["authority"], COUNCIL_A);
        assert_eq!(e["user"], "auditor-1");
        assert!(e["reason"].as_str().unwrap().contains("count"), "{e}");
    }

    // A start past any index a log can reach is an empty page, not a panic.
    let page = client
        .get_entries(pb::GetEntriesRequest {
            acting_user: Some(acting_user("auditor")),
            start: u64::MAX,
            count: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.entries.is_empty());
    w.hub.shutdown().await.unwrap();
}
