//! Source files: good and bad lines, CSV, refused files, the drop folder.

use std::path::Path;

use kith_agent::ingest::{
    DropWatcher, IngestReport, SourceFormat, ingest_file, parse_directive_source, parse_source,
};
use kith_agent::outbox::Outbox;
use kith_core::identity::AuthorityCode;

const AUTHORITY: &str = "E08000003";

fn authority() -> AuthorityCode {
    AuthorityCode::new(AUTHORITY).unwrap()
}

/// A valid JSON line; `edit` rewrites it.
fn line(id: &str, edit: impl Fn(String) -> String) -> String {
    edit(format!(
        r#"{{"record_id":"{id}","version":1,"subject":{{"nhs_number":"9434765919"}},"relationship_type":"adult_social_care","sensitivity":"normal","period":{{"start":"2025-01-01"}},"key_worker":{{"name":"J. Smith","phone":"0161 000 0000"}},"lawful_basis":{{"article6":"public_task","article9":"health_or_social_care"}},"permitted_purposes":["direct_care","safeguarding"],"residency":"england"}}"#
    ))
}

fn same(s: String) -> String {
    s
}

fn jsonl_with_good_and_bad_lines() -> String {
    [
        line("good-1", same),
        line("bad-nhs", |s| s.replace("9434765919", "9434765918")),
        line("bad-type", |s| {
            s.replace("adult_social_care", "gardening_club")
        }),
        line("bad-period", |s| {
            s.replace(
                r#""start":"2025-01-01""#,
                r#""start":"2025-01-01","end":"2024-12-31""#,
            )
        }),
        line("bad-custodian", |s| {
            s.replace(r#""version":1,"#, r#""version":1,"custodian":"W06000015","#)
        }),
        r#"{"record_id":"broken", "version": 1, "subject": {"#.to_string(),
        String::new(),
        line("good-2", |s| {
            s.replace(
                r#""version":1,"#,
                &format!(r#""version":1,"custodian":"{AUTHORITY}","#),
            )
        }),
    ]
    .join("\n")
        + "\n"
}

async fn outbox(dir: &Path) -> Outbox {
    Outbox::open(&dir.join("outbox.db")).await.unwrap()
}

fn fields_of(report: &IngestReport, line: usize) -> Vec<String> {
    report
        .rejected
        .iter()
        .find(|l| l.line == line)
        .unwrap_or_else(|| panic!("line {line} not reported: {report:#?}"))
        .errors
        .iter()
        .map(|e| e.field.clone())
        .collect()
}

#[tokio::test]
async fn jsonl_good_lines_are_queued_and_bad_lines_reported_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let file = dir.path().join("batch.jsonl");
    std::fs::write(&file, jsonl_with_good_and_bad_lines()).unwrap();

    let report = ingest_file(&file, &authority(), &outbox).await.unwrap();
    assert_eq!(report.format, Some(SourceFormat::JsonLines));
    assert_eq!(report.records_read, 7, "the blank line is not a record");
    assert_eq!((report.accepted, report.enqueued), (2, 2));
    let lines: Vec<usize> = report.rejected.iter().map(|l| l.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6]);
    assert_eq!(fields_of(&report, 2), ["subject.nhs_number"]);
    assert_eq!(fields_of(&report, 3), ["relationship_type"]);
    assert_eq!(fields_of(&report, 4), ["period.end"]);
    assert_eq!(fields_of(&report, 5), ["custodian"]);
    assert_eq!(fields_of(&report, 6), ["(line)"]);
    let ids: Vec<Option<&str>> = report
        .rejected
        .iter()
        .map(|l| l.record_id.as_deref())
        .collect();
    assert_eq!(
        ids,
        [
            Some("bad-nhs"),
            Some("bad-type"),
            Some("bad-period"),
            Some("bad-custodian"),
            None
        ]
    );
    let nhs_reason = &report.rejected[0].errors[0].reason;
    assert!(nhs_reason.contains("check digit"), "{nhs_reason}");
    assert!(
        report.rejected[1].errors[0]
            .reason
            .contains("gardening_club")
    );

    let queued = outbox.next_batch(10).await.unwrap();
    let ids: Vec<&str> = queued.iter().map(|e| e.record.record_id.as_str()).collect();
    assert_eq!(ids, ["good-1", "good-2"]);
    for e in &queued {
        assert_eq!(
            e.record.custodian, AUTHORITY,
            "a missing custodian is the agent's authority"
        );
        assert_eq!(
            e.record.provenance.content_hash,
            e.record.content_hash(),
            "records are sealed"
        );
        assert_eq!(e.record.provenance.content_hash.len(), 64);
    }
    // The file given on the command line stays where it is.
    assert!(file.exists());

    // Ingesting the same file again queues nothing new.
    let again = ingest_file(&file, &authority(), &outbox).await.unwrap();
    assert_eq!((again.enqueued, again.duplicates), (0, 2));
    assert_eq!(outbox.stats().await.unwrap().pending, 2);
}

const CSV_HEADER: &str = "record_id,version,nhs_number,local_id_system,local_id_value,given_name,family_name,date_of_birth,postcode,relationship_type,service,period_start,period_end,key_worker_name,key_worker_role,key_worker_phone,key_worker_email,out_of_hours_phone,sensitivity,lawful_basis_article6,lawful_basis_article9,statute,permitted_purposes,residency,source_system,retain_until";

fn csv_row(id: &str, nhs: &str, kind: &str, start: &str, end: &str) -> String {
    format!(
        "{id},2,{nhs},mosaic,M-{id},Zoë,O'Brien,1950-03-01,M1 1AE,{kind},\"Adult Social Care, North\",{start},{end},J. Smith,Social worker,0161 000 0000,,0161 999 9999,normal,public_task,health_or_social_care,Care Act 2014,direct_care;safeguarding,england,mosaic,2040-01-01"
    )
}

#[tokio::test]
async fn csv_rows_map_to_records_and_bad_rows_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let file = dir.path().join("export.csv");
    let text = [
        CSV_HEADER.to_string(),
        csv_row("c-1", "9434765919", "adult_social_care", "2024-03-01", ""),
        csv_row("c-2", "9434765918", "adult_social_care", "2024-03-01", ""),
        csv_row("c-3", "9434765919", "knitting", "2024-03-01", ""),
        csv_row(
            "c-4",
            "9434765919",
            "mental_health",
            "2024-03-01",
            "2024-01-01",
        ),
        "c-5,1,too,few,fields".to_string(),
        csv_row("c-6", "", "housing_support", "not-a-date", ""),
    ]
    .join("\r\n");
    std::fs::write(&file, text).unwrap();

    let report = ingest_file(&file, &authority(), &outbox).await.unwrap();
    assert_eq!(report.format, Some(SourceFormat::Csv));
    assert_eq!((report.records_read, report.accepted), (6, 1));
    let lines: Vec<usize> = report.rejected.iter().map(|l| l.line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7]);
    assert_eq!(fields_of(&report, 3), ["subject.nhs_number"]);
    assert_eq!(fields_of(&report, 4), ["relationship_type"]);
    assert_eq!(fields_of(&report, 5), ["period.end"]);
    assert_eq!(fields_of(&report, 6), ["(row)"]);
    assert_eq!(fields_of(&report, 7), ["period.start"]);
    assert_eq!(report.rejected[0].record_id.as_deref(), Some("c-2"));

    let queued = outbox.next_batch(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let r = &queued[0].record;
    assert_eq!(
        (r.record_id.as_str(), r.version, r.custodian.as_str()),
        ("c-1", 2, AUTHORITY)
    );
    assert_eq!(r.service, "Adult Social Care, North");
    assert_eq!(r.subject.local_ids[0].value, "M-c-1");
    assert_eq!(r.subject.demographics.as_ref().unwrap().given_name, "Zoë");
    assert_eq!(r.out_of_hours.phone, "0161 999 9999");
    assert_eq!(r.permitted_purposes.len(), 2);
    assert_eq!(r.retain_until.unwrap().to_string(), "2040-01-01");
    assert_eq!(r.provenance.source_system, "mosaic");
    assert_eq!(r.provenance.content_hash, r.content_hash());
}

#[tokio::test]
async fn an_unknown_csv_column_refuses_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let file = dir.path().join("odd.csv");
    let header = CSV_HEADER.replace("postcode", "post_code");
    std::fs::write(
        &file,
        format!(
            "{header}\n{}\n",
            csv_row("c-1", "9434765919", "adult_social_care", "2024-03-01", "")
        ),
    )
    .unwrap();
    let report = ingest_file(&file, &authority(), &outbox).await.unwrap();
    let error = report.file_error.as_deref().expect("file refused");
    assert!(error.contains("post_code"), "{error}");
    assert_eq!(report.accepted, 0);
    assert_eq!(
        outbox.stats().await.unwrap().pending,
        0,
        "nothing from a refused file is queued"
    );
}

#[tokio::test]
async fn empty_and_non_utf8_files_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n  \n").unwrap();
    let report = ingest_file(&empty, &authority(), &outbox).await.unwrap();
    assert_eq!(report.file_error.as_deref(), Some("file is empty"));

    let latin1 = dir.path().join("latin1.csv");
    let mut bytes = format!("{CSV_HEADER}\n").into_bytes();
    bytes.extend_from_slice(b"c-1,1,,mosaic,1,Zo\xeb,O'Brien");
    std::fs::write(&latin1, bytes).unwrap();
    let report = ingest_file(&latin1, &authority(), &outbox).await.unwrap();
    let error = report.file_error.as_deref().expect("file refused");
    assert!(
        error.contains("UTF-8") && error.contains("line 2"),
        "{error}"
    );
    assert_eq!(outbox.stats().await.unwrap().pending, 0);

    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "hello").unwrap();
    assert!(ingest_file(&other, &authority(), &outbox).await.is_err());
}

#[tokio::test]
async fn the_drop_folder_takes_finished_files_and_moves_them_to_done() {
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("drop");
    std::fs::create_dir_all(&drop_dir).unwrap();
    let outbox = outbox(dir.path()).await;
    let mut watcher = DropWatcher::new(&drop_dir, authority(), outbox.clone());

    std::fs::write(
        drop_dir.join("batch.jsonl"),
        jsonl_with_good_and_bad_lines(),
    )
    .unwrap();
    std::fs::write(drop_dir.join("partial.jsonl.part"), line("tmp", same)).unwrap();
    std::fs::write(drop_dir.join(".hidden.jsonl"), line("hidden", same)).unwrap();

    // First sight: the size has not yet been stable for a poll.
    assert!(watcher.poll_once().await.unwrap().is_empty());
    assert_eq!(outbox.stats().await.unwrap().pending, 0);

    let reports = watcher.poll_once().await.unwrap();
    assert_eq!(reports.len(), 1, "only the finished *.jsonl is taken");
    let report = &reports[0];
    assert_eq!(report.enqueued, 2);
    assert!(!drop_dir.join("batch.jsonl").exists());
    let moved = drop_dir.join("done/batch.jsonl");
    assert_eq!(report.moved_to.as_deref(), Some(moved.as_path()));
    assert!(moved.exists());
    assert!(
        drop_dir.join("partial.jsonl.part").exists(),
        "temporary names are left alone"
    );
    assert!(drop_dir.join(".hidden.jsonl").exists());

    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(drop_dir.join("done/batch.jsonl.report.json")).unwrap(),
    )
    .unwrap();
    let rejected = written["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 5);
    assert_eq!(rejected[0]["line"], 2);
    assert_eq!(rejected[0]["record_id"], "bad-nhs");
    assert_eq!(rejected[0]["errors"][0]["field"], "subject.nhs_number");

    // A second file of the same name gets a timestamp in done/.
    std::fs::write(drop_dir.join("batch.jsonl"), line("good-3", same)).unwrap();
    watcher.poll_once().await.unwrap();
    let reports = watcher.poll_once().await.unwrap();
    assert_eq!(reports.len(), 1);
    let second = reports[0].moved_to.clone().unwrap();
    assert_ne!(second, moved);
    assert!(second.exists() && moved.exists());
    assert!(
        second
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("batch.")
    );
    assert_eq!(outbox.stats().await.unwrap().pending, 3);
}

#[tokio::test]
async fn a_file_still_growing_is_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let mut watcher = DropWatcher::new(dir.path(), authority(), outbox.clone());
    let file = dir.path().join("slow.jsonl");
    std::fs::write(&file, line("a", same) + "\n").unwrap();
    assert!(watcher.poll_once().await.unwrap().is_empty());
    std::fs::write(&file, line("a", same) + "\n" + &line("b", same) + "\n").unwrap();
    assert!(
        watcher.poll_once().await.unwrap().is_empty(),
        "it grew since the last poll"
    );
    let reports = watcher.poll_once().await.unwrap();
    assert_eq!(reports[0].enqueued, 2);
}

#[tokio::test]
async fn refused_files_are_moved_and_reported_too() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let mut watcher = DropWatcher::new(dir.path(), authority(), outbox.clone());
    std::fs::write(dir.path().join("empty.csv"), "").unwrap();
    watcher.poll_once().await.unwrap();
    let reports = watcher.poll_once().await.unwrap();
    assert_eq!(reports[0].file_error.as_deref(), Some("file is empty"));
    assert!(dir.path().join("done/empty.csv").exists());
    assert!(dir.path().join("done/empty.csv.report.json").exists());
    assert!(
        watcher.poll_once().await.unwrap().is_empty(),
        "not taken twice"
    );
}

#[tokio::test]
async fn a_corrected_line_under_a_taken_version_is_rejected_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, line("r-1", same) + "\n").unwrap();
    assert!(
        ingest_file(&first, &authority(), &outbox)
            .await
            .unwrap()
            .is_clean()
    );

    let corrected = |s: String| s.replace("J. Smith", "K. Jones");
    let second = dir.path().join("second.jsonl");
    std::fs::write(
        &second,
        [
            line("r-1", corrected), // same id and version, new content
            line("r-2", same),
            line("r-1", same),      // an identical re-send: harmless
            line("r-2", corrected), // conflicts with line 2 of this file
        ]
        .join("\n"),
    )
    .unwrap();
    let report = ingest_file(&second, &authority(), &outbox).await.unwrap();
    assert!(!report.is_clean(), "{report:#?}");
    assert_eq!(report.records_read, 4);
    assert_eq!(
        (report.accepted, report.enqueued, report.duplicates),
        (2, 1, 1)
    );
    let lines: Vec<usize> = report.rejected.iter().map(|l| l.line).collect();
    assert_eq!(lines, [1, 4]);
    assert_eq!(fields_of(&report, 1), ["version"]);
    assert_eq!(report.rejected[0].record_id.as_deref(), Some("r-1"));
    assert_eq!(
        report.rejected[0].errors[0].reason,
        "version 1 of this record was already taken with different content; publish version 2"
    );
    assert!(
        report
            .render()
            .contains("line 1 (record r-1): version: version 1")
    );

    // The outbox still holds the first content of each.
    let queued = outbox.next_batch(10).await.unwrap();
    assert_eq!(queued.len(), 2);
    for e in &queued {
        assert_eq!(e.record.key_worker.name, "J. Smith");
    }
}

#[tokio::test]
async fn json_errors_name_the_field_not_serdes_line_one() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(dir.path()).await;
    let file = dir.path().join("errors.jsonl");
    std::fs::write(
        &file,
        [
            line("good", same),
            line("bad-version", |s| {
                s.replace(r#""version":1"#, r#""version":"one""#)
            }),
            r#"{"record_id":"broken", "version": 1, "subject": {"#.to_string(),
            line("trailing", same) + " x",
        ]
        .join("\n"),
    )
    .unwrap();
    let report = ingest_file(&file, &authority(), &outbox).await.unwrap();
    let lines: Vec<usize> = report.rejected.iter().map(|l| l.line).collect();
    assert_eq!(lines, [2, 3, 4]);
    for l in &report.rejected {
        let reason = &l.errors[0].reason;
        assert!(
            !reason.contains("line "),
            "line {}: serde's own line number leaked: {reason}",
            l.line
        );
    }
    assert_eq!(fields_of(&report, 2), ["version"]);
    let version = &report.rejected[0].errors[0].reason;
    assert!(
        version.starts_with("invalid type: string \"one\""),
        "{version}"
    );
    assert!(!version.contains("column"), "{version}");
    let syntax = &report.rejected[1].errors[0].reason;
    assert!(
        syntax.starts_with("not valid JSON: EOF while parsing") && syntax.ends_with("(column 49)"),
        "{syntax}"
    );
    let trailing = &report.rejected[2].errors[0].reason;
    assert!(
        trailing.starts_with("text after the record at column "),
        "{trailing}"
    );
}

/// The files in `dir`, sorted by name.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Polls until the watcher has taken something (a file is taken once it
/// has stayed the same for one poll), at most a few polls.
async fn take_next(watcher: &mut DropWatcher) -> Vec<IngestReport> {
    for _ in 0..3 {
        let reports = watcher.poll_once().await.unwrap();
        if !reports.is_empty() {
            return reports;
        }
    }
    panic!("nothing was taken");
}

#[tokio::test]
async fn a_crash_at_each_step_of_a_take_is_recovered_at_the_next_start() {
    use kith_agent::ingest::{StopAfter, take_dropped_file_until};
    for stop in [StopAfter::Enqueue, StopAfter::Report] {
        let dir = tempfile::tempdir().unwrap();
        let drop_dir = dir.path().join("drop");
        std::fs::create_dir_all(&drop_dir).unwrap();
        let file = drop_dir.join("batch.jsonl");
        std::fs::write(&file, jsonl_with_good_and_bad_lines()).unwrap();

        // The agent is killed at `stop`.
        let first = outbox(dir.path()).await;
        let cut = take_dropped_file_until(&file, &authority(), &first, None, Some(stop))
            .await
            .unwrap();
        assert_eq!(cut.enqueued, 2, "{stop:?}");
        first.close().await;
        assert!(
            file.exists(),
            "{stop:?}: the file is still in the drop folder"
        );
        let done = drop_dir.join("done");
        match stop {
            StopAfter::Enqueue => assert!(!done.exists() || names_in(&done).is_empty()),
            StopAfter::Report => {
                assert_eq!(names_in(&done), ["batch.jsonl.report.json"]);
            }
        }

        // The next start: a new outbox handle and a new watcher.
        let outbox = outbox(dir.path()).await;
        let mut watcher = DropWatcher::new(&drop_dir, authority(), outbox.clone());
        let reports = take_next(&mut watcher).await;
        assert_eq!(reports.len(), 1);
        let report = &reports[0];
        assert!(!file.exists(), "{stop:?}");
        assert_eq!(
            names_in(&done),
            ["batch.jsonl", "batch.jsonl.report.json"],
            "{stop:?}: the file beside its report, no temporary file left"
        );
        let written: IngestReport =
            serde_json::from_slice(&std::fs::read(done.join("batch.jsonl.report.json")).unwrap())
                .unwrap();
        assert_eq!(written.rejected.len(), 5, "{stop:?}");
        assert_eq!(written.accepted, 2);
        match stop {
            // Taken again from the start: the lines were already queued.
            StopAfter::Enqueue => assert_eq!((written.enqueued, written.duplicates), (0, 2)),
            // Not read again: the report is the first take's.
            StopAfter::Report => {
                assert_eq!((written.enqueued, written.duplicates), (2, 0));
                assert_eq!(report.enqueued, 2);
            }
        }
        assert_eq!(
            written.content_sha256.as_deref().map(str::len),
            Some(64),
            "{stop:?}"
        );
        // Every valid line queued exactly once.
        let stats = outbox.stats().await.unwrap();
        assert_eq!(stats.pending, 2, "{stop:?}");
        for id in ["good-1", "good-2"] {
            assert_eq!(outbox.entries_for(id).await.unwrap().len(), 1, "{id}");
        }
        // A later poll takes nothing more.
        assert!(watcher.poll_once().await.unwrap().is_empty());
        assert!(watcher.poll_once().await.unwrap().is_empty());
        outbox.close().await;
    }
}

#[tokio::test]
async fn an_interrupted_take_whose_file_changed_is_read_again_under_a_new_name() {
    use kith_agent::ingest::{StopAfter, take_dropped_file_until};
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("drop");
    std::fs::create_dir_all(&drop_dir).unwrap();
    let file = drop_dir.join("batch.jsonl");
    std::fs::write(&file, line("first", same) + "\n").unwrap();
    let outbox = outbox(dir.path()).await;
    take_dropped_file_until(&file, &authority(), &outbox, None, Some(StopAfter::Report))
        .await
        .unwrap();
    // The source system replaces the file before the agent comes back, and
    // a crash left a half-written temporary report.
    std::fs::write(&file, line("second", same) + "\n").unwrap();
    let done = drop_dir.join("done");
    std::fs::write(done.join(".other.jsonl.report.json.tmp"), "{\"fi").unwrap();

    let mut watcher = DropWatcher::new(&drop_dir, authority(), outbox.clone());
    let reports = take_next(&mut watcher).await;
    assert_eq!(reports[0].enqueued, 1, "the new content is read");
    let moved = reports[0].moved_to.clone().unwrap();
    assert_ne!(
        moved,
        done.join("batch.jsonl"),
        "the first take's name stays its"
    );
    assert!(moved.exists());
    assert!(!done.join(".other.jsonl.report.json.tmp").exists());
    assert!(done.join("batch.jsonl.report.json").exists());
    assert_eq!(outbox.entries_for("first").await.unwrap().len(), 1);
    assert_eq!(outbox.entries_for("second").await.unwrap().len(), 1);
    assert_eq!(outbox.stats().await.unwrap().pending, 2);
}

/// Found by the `drop_file` fuzz target: an empty key (`"": 1`) made an
/// error whose field was the empty string, so the report said `line 1: :
/// unknown field` with no field to look at. It is the line's fault.
#[test]
fn an_empty_key_is_refused_as_the_lines_fault_not_a_nameless_field() {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let record = line("e-1", |s| s.replacen('{', r#"{"":1,"#, 1));
    let (records, report) = parse_source(
        Path::new("x.jsonl"),
        SourceFormat::JsonLines,
        record.as_bytes(),
        &authority(),
        today,
    );
    assert!(records.is_empty());
    let directive = r#"{"directive_id":"d-1","version":1,"record_id":"j-1","kind":"objection","period":{"start":"2025-01-01"},"grantor":"the person","recorded_at":"2025-06-01T09:00:00Z","":1}"#;
    let (directives, directive_report) = parse_directive_source(
        Path::new("x.directives.jsonl"),
        directive.as_bytes(),
        &authority(),
    );
    assert!(directives.is_empty());
    for report in [report, directive_report] {
        assert_eq!(report.rejected.len(), 1);
        let errors = &report.rejected[0].errors;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "(line)", "{errors:?}");
        assert!(errors[0].reason.contains("unknown field"), "{errors:?}");
    }
}
