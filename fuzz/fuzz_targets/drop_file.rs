//! Drop files, as an authority's source system writes them into the agent's
//! drop folder: CSV, JSON Lines records and JSON Lines directives.
//!
//! The first byte picks the format; the rest is the file's bytes, parsed by
//! `kith_agent::ingest::parse_source` (records) or `parse_directive_source`
//! (directives), the pure part of `kith-agent ingest` before the outbox.
//!
//! Checks: no panic; every line read is either accepted or refused
//! (`records_read == accepted + rejected`), a refused line names a field
//! and a line number within the file, a file refused whole accepts nothing,
//! every accepted record is sealed and valid, and the report renders.
#![no_main]

use std::path::Path;

use chrono::NaiveDate;
use kith_agent::ingest::{IngestReport, SourceFormat, parse_directive_source, parse_source};
use kith_core::AuthorityCode;
use libfuzzer_sys::fuzz_target;

fn check_report(report: &IngestReport, bytes: &[u8], accepted: usize) {
    assert_eq!(report.accepted, accepted);
    if report.file_error.is_some() {
        assert_eq!(accepted, 0, "a file refused whole still accepted lines");
    } else {
        assert_eq!(
            report.records_read,
            report.accepted + report.rejected.len(),
            "lines lost between read, accepted and refused"
        );
    }
    let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
    for refused in &report.rejected {
        assert!(!refused.errors.is_empty(), "a refused line with no reason");
        for e in &refused.errors {
            assert!(
                !e.field.is_empty(),
                "line {}: an error with no field: {e:?}",
                refused.line
            );
        }
        assert!(
            (1..=lines).contains(&refused.line),
            "refused line {} of a {lines}-line file",
            refused.line
        );
    }
    let _ = report.render();
    let _ = report.is_clean();
}

fuzz_target!(|data: &[u8]| {
    let Some((&format, bytes)) = data.split_first() else {
        return;
    };
    let authority = AuthorityCode::new("E08000003").expect("an authority code");
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
    match format % 3 {
        0 | 1 => {
            let (format, name) = if format % 3 == 0 {
                (SourceFormat::Csv, "extract.csv")
            } else {
                (SourceFormat::JsonLines, "extract.jsonl")
            };
            let (records, report) = parse_source(Path::new(name), format, bytes, &authority, today);
            check_report(&report, bytes, records.len());
            for r in &records {
                assert_eq!(r.custodian, authority.as_str());
                assert_eq!(
                    r.content_hash(),
                    r.provenance.content_hash,
                    "accepted but not sealed"
                );
                r.validate(today).expect("an accepted record is valid");
            }
        }
        _ => {
            let path = Path::new("consent.directives.jsonl");
            let (directives, report) = parse_directive_source(path, bytes, &authority);
            check_report(&report, bytes, directives.len());
            for d in &directives {
                assert_eq!(d.custodian, authority.as_str());
                d.validate().expect("an accepted directive is valid");
            }
        }
    }
});
