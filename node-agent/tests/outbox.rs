//! The durable outbox: idempotent enqueue, order, marking, stats, durability.

use chrono::NaiveDate;
use kith_agent::outbox::{DeliveryOutcome, EntryState, Outbox};
use kith_core::Record;

fn record(id: &str, version: u64) -> Record {
    let json = format!(
        r#"{{"record_id":"{id}","version":{version},"custodian":"E08000003",
            "subject":{{"nhs_number":"9434765919"}},"relationship_type":"adult_social_care","sensitivity":"normal",
            "period":{{"start":"2025-01-01"}},"key_worker":{{"name":"J. Smith","phone":"0161 000 0000"}},
            "lawful_basis":{{"article6":"public_task"}},"permitted_purposes":["direct_care"],
            "residency":"england"}}"#
    );
    let mut r: Record = serde_json::from_str(&json).unwrap();
    r.validate(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap())
        .unwrap();
    r.seal();
    r
}

async fn open(dir: &tempfile::TempDir) -> Outbox {
    Outbox::open(&dir.path().join("outbox.db")).await.unwrap()
}

#[tokio::test]
async fn enqueue_is_idempotent_on_id_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir).await;
    let first = outbox
        .enqueue(&[record("a", 1), record("b", 1)])
        .await
        .unwrap();
    assert_eq!((first.enqueued, first.duplicates), (2, 0));
    // The same id and version again, in a batch with a new version of "a".
    let again = outbox
        .enqueue(&[record("a", 1), record("a", 2), record("a", 1)])
        .await
        .unwrap();
    assert_eq!((again.enqueued, again.duplicates), (1, 2));
    assert_eq!(outbox.stats().await.unwrap().pending, 3);
    let versions: Vec<u64> = outbox
        .entries_for("a")
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, [1, 2]);
}

#[tokio::test]
async fn batches_come_oldest_first_and_respect_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir).await;
    let records: Vec<Record> = (0..1200).map(|i| record(&format!("r-{i:04}"), 1)).collect();
    // More than one insert chunk, in one call.
    assert_eq!(outbox.enqueue(&records).await.unwrap().enqueued, 1200);
    outbox.enqueue(&[record("late", 1)]).await.unwrap();
    let batch = outbox.next_batch(5).await.unwrap();
    let ids: Vec<&str> = batch.iter().map(|e| e.record.record_id.as_str()).collect();
    assert_eq!(ids, ["r-0000", "r-0001", "r-0002", "r-0003", "r-0004"]);
    assert_eq!(
        batch[0].record, records[0],
        "the stored record reads back unchanged"
    );
    let all = outbox.next_batch(5000).await.unwrap();
    assert_eq!(all.len(), 1201);
    assert_eq!(all.last().unwrap().record.record_id, "late");
}

#[tokio::test]
async fn delivered_and_rejected_rows_leave_the_queue_but_not_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir).await;
    outbox
        .enqueue(&[
            record("a", 1),
            record("b", 1),
            record("c", 1),
            record("d", 1),
        ])
        .await
        .unwrap();
    let batch = outbox.next_batch(10).await.unwrap();
    let id = |rid: &str| batch.iter().find(|e| e.record.record_id == rid).unwrap().id;
    outbox
        .mark_delivered(&[id("a"), id("b")], DeliveryOutcome::Accepted)
        .await
        .unwrap();
    outbox
        .mark_delivered(&[id("c")], DeliveryOutcome::Stale)
        .await
        .unwrap();
    outbox
        .mark_rejected(id("d"), "subject.nhs_number: check digit does not match")
        .await
        .unwrap();
    assert!(outbox.next_batch(10).await.unwrap().is_empty());

    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered, stats.rejected), (0, 3, 1));
    assert!(stats.last_delivery_at.is_some());
    let c = &outbox.entries_for("c").await.unwrap()[0];
    assert_eq!(
        (c.state, c.outcome.as_deref()),
        (EntryState::Delivered, Some("stale"))
    );
    let rejected = outbox.recent_rejections(10).await.unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].record_id, "d");
    assert!(
        rejected[0]
            .reject_reason
            .as_deref()
            .unwrap()
            .contains("check digit")
    );

    // A rejected row is not revived by being marked delivered later.
    outbox
        .mark_delivered(&[id("d")], DeliveryOutcome::Accepted)
        .await
        .unwrap();
    assert_eq!(
        outbox.entries_for("d").await.unwrap()[0].state,
        EntryState::Rejected
    );
    // Re-enqueueing a delivered record does not queue it again.
    assert_eq!(
        outbox.enqueue(&[record("a", 1)]).await.unwrap().duplicates,
        1
    );
    assert_eq!(outbox.stats().await.unwrap().pending, 0);
}

#[tokio::test]
async fn stats_keep_the_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir).await;
    let empty = outbox.stats().await.unwrap();
    assert_eq!(
        (
            empty.pending,
            empty.last_error.clone(),
            empty.last_delivery_at
        ),
        (0, None, None)
    );
    outbox
        .record_attempt_error("hub unreachable")
        .await
        .unwrap();
    outbox
        .record_attempt_error("deadline exceeded")
        .await
        .unwrap();
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.last_error.as_deref(), Some("deadline exceeded"));
    assert!(stats.last_error_at.is_some());
}

#[tokio::test]
async fn records_survive_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let outbox = open(&dir).await;
        outbox
            .enqueue(&[record("a", 1), record("b", 1)])
            .await
            .unwrap();
        let a = outbox.next_batch(1).await.unwrap()[0].id;
        outbox
            .mark_delivered(&[a], DeliveryOutcome::Accepted)
            .await
            .unwrap();
        outbox.close().await;
    }
    let outbox = open(&dir).await; // migrations run again, harmlessly
    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered), (1, 1));
    let pending = outbox.next_batch(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].record, record("b", 1));
}

#[tokio::test]
async fn the_database_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir).await;
    outbox.enqueue(&[record("a", 1)]).await.unwrap();
    assert!(
        dir.path().join("outbox.db-wal").exists(),
        "WAL file expected beside the database"
    );
}

#[tokio::test]
async fn a_changed_record_under_a_taken_version_is_a_conflict_not_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir).await;
    outbox.enqueue(&[record("a", 1)]).await.unwrap();
    let changed = |id: &str| {
        let mut r = record(id, 1);
        r.service = "Adult Social Care, corrected".into();
        r.seal();
        r
    };
    assert_ne!(
        changed("a").provenance.content_hash,
        record("a", 1).provenance.content_hash
    );
    let summary = outbox
        .enqueue(&[
            record("a", 1), // the same again: harmless
            changed("a"),   // same id and version, other content: refused
            record("b", 1), // new
            changed("b"),   // conflicts with the line before it
            record("b", 1), // the same as the queued b: harmless
        ])
        .await
        .unwrap();
    assert_eq!((summary.enqueued, summary.duplicates), (1, 2));
    let conflicts: Vec<(usize, &str, u64)> = summary
        .conflicts
        .iter()
        .map(|c| (c.index, c.id.as_str(), c.version))
        .collect();
    assert_eq!(conflicts, [(1, "a", 1), (3, "b", 1)]);
    assert_eq!(
        summary.conflicts[0].reason(),
        "version 1 of this record was already taken with different content; publish version 2"
    );
    // The first content stays queued; the correction was not written.
    let batch = outbox.next_batch(10).await.unwrap();
    assert_eq!(batch.len(), 2);
    assert!(
        batch
            .iter()
            .all(|e| e.record.service != "Adult Social Care, corrected")
    );
    // A delivered row conflicts just the same.
    outbox
        .mark_delivered(&[batch[0].id], DeliveryOutcome::Accepted)
        .await
        .unwrap();
    let again = outbox.enqueue(&[changed("a")]).await.unwrap();
    assert_eq!((again.enqueued, again.conflicts.len()), (0, 1));
}

#[tokio::test]
async fn a_success_clears_the_current_error_and_keeps_it_as_previous() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open(&dir).await;
    outbox
        .enqueue(&[record("a", 1), record("b", 1)])
        .await
        .unwrap();
    outbox
        .record_attempt_error("hub unreachable")
        .await
        .unwrap();
    let a = outbox.next_batch(1).await.unwrap()[0].id;
    outbox
        .mark_delivered(&[a], DeliveryOutcome::Accepted)
        .await
        .unwrap();
    let stats = outbox.stats().await.unwrap();
    assert_eq!(
        stats.last_error, None,
        "a delivery clears the current error"
    );
    assert_eq!(stats.last_error_at, None);
    assert_eq!(stats.previous_error.as_deref(), Some("hub unreachable"));
    assert!(stats.previous_error_at.is_some());

    // A new failure is current again; a successful call with nothing
    // delivered (say every record rejected) clears it too.
    outbox
        .record_attempt_error("deadline exceeded")
        .await
        .unwrap();
    assert_eq!(
        outbox.stats().await.unwrap().last_error.as_deref(),
        Some("deadline exceeded")
    );
    outbox.record_attempt_success().await.unwrap();
    let stats = outbox.stats().await.unwrap();
    assert_eq!(stats.last_error, None);
    assert_eq!(stats.previous_error.as_deref(), Some("deadline exceeded"));
    // With nothing current, a success changes nothing.
    outbox.record_attempt_success().await.unwrap();
    assert_eq!(
        outbox.stats().await.unwrap().previous_error.as_deref(),
        Some("deadline exceeded")
    );
}
