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
                    assert_eq!(v.kind.as_str(), "access", "entry {}: {v:?}", e.index);
                    saw_share_of_mixed_query = true;
                }
                saw_other_query |= v.kind.as_str() == "query" && v.authority == COUNCIL_B;
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

#[tokio::test]
async fn a_thousand_refused_calls_from_a_non_member_make_a_handful_of_entries_counting_all_of_them()
{
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut outsider = audit_client(channel(hub.addr(), &t.agent_tls(OUTSIDER)).await.unwrap());
    for _ in 0..1000 {
        let err = outsider
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    }
    let refusals = |entries: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        entries
            .into_iter()
            .filter(|e| e["kind"] == "refusal")
            .collect()
    };
    let so_far = refusals(audit_entries(&hub).await);
    assert!(
        !so_far.is_empty() && so_far.len() <= 2,
        "the first refusal is written at once, the rest counted: {so_far:?}"
    );
    assert_eq!(so_far[0]["authority"], OUTSIDER);
    assert_eq!(so_far[0]["reason"], "not a member of the federation");
    // Shutting down writes what is still being counted.
    let core = hub.hub().clone();
    hub.shutdown().await.unwrap();
    let stored = core.store().audit_entries(0, 100_000).await.unwrap();
    let all = refusals(
        stored
            .iter()
            .map(|e| serde_json::from_slice(&e.entry).unwrap())
            .collect(),
    );
    assert!(all.len() <= 5, "{} refusal entries: {all:?}", all.len());
    let counted: u64 = all
        .iter()
        .map(|e| {
            assert_eq!(e["authority"], OUTSIDER);
            e["count"].as_u64().unwrap_or(1)
        })
        .sum();
    assert_eq!(counted, 1000, "{all:?}");
    eprintln!(
        "1,000 refused calls: {} refusal entries, counts {:?}",
        all.len(),
        all.iter()
            .map(|e| e["count"].as_u64().unwrap_or(1))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_auditor_verifies_and_exports_a_log_of_large_entries_paged_by_bytes() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    // 70 publishes of 500 records: about 67 KB an entry, more than 4 MiB
    // in the first 1,000 entries.
    let tls = t.agent_tls(COUNCIL_A);
    let mut c = records_client(channel(hub.addr(), &tls).await.unwrap());
    for batch in 0..70 {
        let records = (0..500)
            .map(|i| {
                record_wire(
                    COUNCIL_A,
                    &format!("cin-{batch}-{i}"),
                    1,
                    &test_nhs_number(1000 + i),
                    "child_in_need",
                    &["safeguarding"],
                )
            })
            .collect();
        let results = c
            .publish_records(pb::PublishRecordsRequest { records })
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(results.len(), 500);
    }
    let stored = hub.hub().store().audit_entries(0, 1000).await.unwrap();
    let bytes: usize = stored.iter().map(|e| e.entry.len()).sum();
    assert!(
        bytes > 4 * 1024 * 1024,
        "the log's first 1,000 entries hold {bytes} bytes: not enough to pass 4 MiB"
    );
    let w = World {
        t,
        hub,
        nhs: String::new(),
    };
    let size = w.hub.hub().store().audit_len().await.unwrap();
    wait_for_checkpoint(&w, size).await;

    // A client with tonic's default 4 MiB decode limit still reads a page:
    // the hub stops it by bytes, and the agent pages by what came back.
    let mut plain = audit_client(
        channel(w.hub.addr(), &w.t.agent_tls(OVERSIGHT))
            .await
            .unwrap(),
    );
    let page = plain
        .get_entries(pb::GetEntriesRequest {
            acting_user: Some(acting_user("federation_auditor")),
            start: 0,
            count: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !page.entries.is_empty() && page.entries.len() < 70,
        "{} entries in one page",
        page.entries.len()
    );
    let page_bytes: usize = page.entries.iter().map(|e| e.entry.len()).sum();
    assert!(page_bytes <= 2 * 1024 * 1024 + 70_000, "{page_bytes}");

    let started = std::time::Instant::now();
    let report = verify(&w, OVERSIGHT, federation_auditor()).await;
    let verified_in = started.elapsed();
    assert!(report.ok(), "{}", report.render());
    assert_eq!(report.entries, report.checkpoint.tree_size);
    eprintln!(
        "large-entry log: {size} entries, {bytes} entry bytes in the first 1,000; \
         one GetEntries(count 1000) page: {} entries, {page_bytes} entry bytes; \
         audit verify: {} entries in {verified_in:.2?}",
        page.entries.len(),
        report.entries
    );
    let mut out = Vec::new();
    let summary = audit::export(
        &auditor_config(&w, OVERSIGHT),
        federation_auditor(),
        &ExportOptions::default(),
        &mut out,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.written, summary.to - summary.from, "{summary:?}");
    assert!(summary.written >= report.entries, "{summary:?}");
    assert!(out.len() > 4 * 1024 * 1024);
    w.hub.shutdown().await.unwrap();
}

/// What one authority's users were shown: (custodian, record id) of detail
/// and summary answers, and the custodians of withheld ones (a withheld
/// answer names no record).
#[derive(Debug, Default)]
struct Shown {
    ids: std::collections::HashSet<(String, String)>,
    withheld_by: std::collections::HashSet<String>,
}

fn note_shown(
    shown: &mut std::collections::HashMap<String, Shown>,
    authority: &str,
    answer: &pb::QueryResponse,
) {
    let s = shown.entry(authority.to_string()).or_default();
    let disclosed = answer
        .records
        .iter()
        .chain(answer.candidates.iter().filter_map(|c| c.record.as_ref()));
    for d in disclosed {
        let r = d.record.as_ref().expect("a disclosed record");
        if d.level == pb::DisclosureLevel::Withheld as i32 {
            s.withheld_by.insert(r.custodian.clone());
        } else {
            s.ids.insert((r.custodian.clone(), r.record_id.clone()));
        }
    }
}

/// The (custodian, record id, decision) an entry names, in `records` and
/// `matches` (decision empty for a match).
fn named(entry: &serde_json::Value) -> Vec<(String, String, String)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    ["records", "matches"]
        .iter()
        .flat_map(|f| entry[*f].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                text(&r["custodian"]),
                text(&r["record_id"]),
                text(&r["decision"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn no_auditor_reads_another_custodians_record_its_users_were_not_shown_in_any_kind_of_entry()
{
    use std::collections::{BTreeSet, HashMap};
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let addr = hub.addr();
    let nhs = test_nhs_number(31);
    let other = test_nhs_number(32);
    // Council A: a child protection plan about the person, and two records
    // about someone else to end and withdraw.
    publish_accepted(
        addr,
        &t.agent_tls(COUNCIL_A),
        vec![
            record_wire(
                COUNCIL_A,
                "cpp-1",
                1,
                &nhs,
                "child_protection_plan",
                &["safeguarding", "direct_care", "emergency"],
            ),
            record_wire(
                COUNCIL_A,
                "cin-2",
                1,
                &other,
                "child_in_need",
                &["safeguarding"],
            ),
            record_wire(
                COUNCIL_A,
                "cin-3",
                1,
                &other,
                "child_in_need",
                &["safeguarding"],
            ),
        ],
    )
    .await;
    // Trust C: a mental health record (withheld from a council asking for
    // safeguarding), a sealed one (hidden from everyone) and one past its
    // retention date (dropped by every query, then purged).
    let trust = |id: &str| {
        let mut r = record_wire(
            TRUST_C,
            id,
            1,
            &nhs,
            "mental_health",
            &["direct_care", "care_planning"],
        );
        r.provenance.as_mut().unwrap().content_hash.clear();
        r
    };
    let mut sealed = trust("mh-sealed");
    sealed.sensitivity = pb::Sensitivity::Sealed as i32;
    let mut old = trust("mh-old");
    old.retain_until = "2025-06-01".into();
    publish_accepted(
        addr,
        &t.agent_tls(TRUST_C),
        vec![trust("mh-1"), sealed, old],
    )
    .await;

    let mut shown: HashMap<String, Shown> = HashMap::new();
    // Council B by NHS number, and by demographics (the matches name every
    // record of the person the store still holds: the sealed too; the
    // expired one is not read).
    let b = t.agent_tls(COUNCIL_B);
    let answer = ask_as(
        addr,
        &b,
        query_request(&nhs, pb::Purpose::Safeguarding, "social_worker"),
    )
    .await
    .unwrap();
    note_shown(&mut shown, COUNCIL_B, &answer);
    let mut by_demographics = query_request("", pb::Purpose::Safeguarding, "social_worker");
    by_demographics.subject = Some(pb::Subject {
        demographics: Some(pb::Demographics {
            given_name: "Amelia".into(),
            family_name: "O'Brien".into(),
            date_of_birth: "2015-04-12".into(),
            postcode: "M14 5RT".into(),
        }),
        ..Default::default()
    });
    let answer = ask_as(addr, &b, by_demographics).await.unwrap();
    assert!(!answer.records.is_empty() || !answer.candidates.is_empty());
    note_shown(&mut shown, COUNCIL_B, &answer);
    // The trust's ED clinician (its own records, and the council's plan).
    let answer = ask_as(
        addr,
        &t.agent_tls(TRUST_C),
        query_request(&nhs, pb::Purpose::DirectCare, "ed_clinician"),
    )
    .await
    .unwrap();
    note_shown(&mut shown, TRUST_C, &answer);
    // Police break glass, then its review (refused for the officer,
    // recorded by the force's auditor).
    let mut emergency = query_request(&nhs, pb::Purpose::Emergency, "police_officer");
    emergency.break_glass = Some(pb::BreakGlass {
        reason_code: "life_threatening".into(),
        justification: "Person in crisis on a bridge; need the crisis team's number now".into(),
    });
    let answer = ask_as(addr, &t.agent_tls(POLICE_D), emergency)
        .await
        .unwrap();
    note_shown(&mut shown, POLICE_D, &answer);
    let mut police_audit = audit_client(channel(addr, &t.agent_tls(POLICE_D)).await.unwrap());
    let review = |role: &str| pb::ReviewBreakGlassRequest {
        acting_user: Some(acting_user(role)),
        query_id: answer.query_id.clone(),
        outcome: pb::BreakGlassReviewOutcome::Appropriate as i32,
        note: "Crisis call log confirms the emergency".into(),
    };
    police_audit
        .review_break_glass(review("police_officer"))
        .await
        .unwrap_err();
    police_audit
        .review_break_glass(review("auditor"))
        .await
        .unwrap();
    // The council is told of the break glass and acknowledges it.
    let mut link = LinkProbe::open(addr, &t.agent_tls(COUNCIL_A)).await;
    let told = link
        .next_notification(WAIT)
        .await
        .expect("a break-glass notification");
    link.ack(&told.notification_id).await;
    let delivered = eventually(WAIT, || async {
        audit_entries(&hub)
            .await
            .iter()
            .any(|e| e["kind"] == "notification_delivered")
    })
    .await;
    assert!(delivered, "the acknowledgement is audited");
    // Council A's directive, end and withdrawal; a non-member's refusal; the
    // retention purge.
    let mut a = records_client(channel(addr, &t.agent_tls(COUNCIL_A)).await.unwrap());
    a.publish_directives(pb::PublishDirectivesRequest {
        directives: vec![directive_wire(
            COUNCIL_A,
            "d-1",
            1,
            "cpp-1",
            pb::DirectiveKind::Consent,
            pb::DirectiveStatus::Active,
        )],
    })
    .await
    .unwrap();
    let at = |id: &str| {
        Some(pb::RecordRef {
            custodian: COUNCIL_A.into(),
            record_id: id.into(),
        })
    };
    a.end_record(pb::EndRecordRequest {
        record: at("cin-2"),
        end: "2026-01-01".into(),
    })
    .await
    .unwrap();
    a.withdraw_record(pb::WithdrawRecordRequest {
        record: at("cin-3"),
        reason: pb::WithdrawReason::EnteredInError as i32,
    })
    .await
    .unwrap();
    audit_client(channel(addr, &t.agent_tls(OUTSIDER)).await.unwrap())
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .unwrap_err();
    let purged = hub
        .hub()
        .purge_expired(chrono::Utc::now().date_naive())
        .await
        .unwrap();
    assert_eq!(purged, 1);

    let w = World { t, hub, nhs };
    // Every auditor reads once (audit reads), then again to check.
    for authority in [COUNCIL_A, COUNCIL_B, TRUST_C, POLICE_D] {
        audit::client::read_log(
            &auditor_config(&w, authority),
            Auditor::new("dpo", "auditor"),
            None,
            &mut |_, _| {},
        )
        .await
        .unwrap();
    }
    let size = w.hub.hub().store().audit_len().await.unwrap();
    wait_for_checkpoint(&w, size).await;
    let parse = |e: &audit::LogEntry| -> Option<serde_json::Value> {
        e.entry.as_ref().map(|b| serde_json::from_slice(b).unwrap())
    };
    let (_, everything) = audit::client::read_log(
        &auditor_config(&w, OVERSIGHT),
        federation_auditor(),
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let everything: Vec<serde_json::Value> = everything.iter().filter_map(parse).collect();
    let kinds: BTreeSet<&str> = everything
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "publish",
        "end",
        "withdraw",
        "directive",
        "query",
        "access",
        "refusal",
        "break_glass_review",
        "notification_delivered",
        "policy_load",
        "audit_read",
        "purge",
    ] {
        assert!(kinds.contains(kind), "no {kind} entry in {kinds:?}");
    }
    // Every record each query reached, by query id, from the whole log.
    let mut reached: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
    for e in everything
        .iter()
        .filter(|e| e["kind"] == "query" || e["kind"] == "access")
    {
        let id = e["query_id"].as_str().unwrap().to_string();
        let querier = e["authority"].as_str().unwrap();
        for (c, r, _) in named(e) {
            if c != querier {
                reached.entry(id.clone()).or_default().insert((c, r));
            }
        }
    }
    let mut checked = 0;
    for authority in [COUNCIL_A, COUNCIL_B, TRUST_C, POLICE_D] {
        let (_, entries) = audit::client::read_log(
            &auditor_config(&w, authority),
            Auditor::new("dpo", "auditor"),
            None,
            &mut |_, _| {},
        )
        .await
        .unwrap();
        let nothing = Shown::default();
        let mine = shown.get(authority).unwrap_or(&nothing);
        let mut seen: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
        for e in entries.iter().filter_map(parse) {
            for (c, r, decision) in named(&e) {
                if c == authority {
                    continue;
                }
                checked += 1;
                let was_shown = mine.ids.contains(&(c.clone(), r.clone()))
                    || (mine.withheld_by.contains(&c)
                        && (decision == "withheld" || decision.is_empty()));
                assert!(
                    was_shown,
                    "{authority}'s auditor reads {c}/{r} ({decision:?}), which {authority}'s users were not shown, in {e}"
                );
            }
            if let Some(id) = e["query_id"].as_str() {
                for (c, r, _) in named(&e) {
                    if c == authority {
                        seen.entry(id.to_string()).or_default().insert((c, r));
                    }
                }
            }
        }
        // Every access to this authority's records by another, seen.
        for (id, records) in &reached {
            let theirs: BTreeSet<_> = records.iter().filter(|(c, _)| c == authority).collect();
            let got = seen.get(id).cloned().unwrap_or_default();
            for r in theirs {
                assert!(
                    got.contains(r),
                    "{authority}'s auditor does not see query {id} reach {r:?}"
                );
            }
        }
    }
    assert!(checked > 0, "some entries name other custodians' records");
    // The hidden record was reached, and only its custodian's auditor
    // reads that.
    assert!(
        reached
            .values()
            .any(|r| r.contains(&(TRUST_C.to_string(), "mh-sealed".to_string())))
    );
    // The expired record is never read at all: the store leaves out what is
    // past its retention (so it cannot be named, matched or counted against
    // a block), and no entry of any kind names it.
    assert!(
        !reached
            .values()
            .any(|r| r.contains(&(TRUST_C.to_string(), "mh-old".to_string())))
    );
    w.hub.shutdown().await.unwrap();
}
