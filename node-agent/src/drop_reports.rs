//! The drop folder's reports, read back for the operator: what happened to
//! each file a source system dropped, and every line refused with its
//! reasons.
//!
//! `ingest` writes one `done/<file>.report.json` per file it takes (see the
//! drop folder contract there). This reads the most recent of them, newest
//! first by modification time, bounded in number and in bytes: a report is
//! as long as its refused lines, and a file of a million bad lines must not
//! fill the operator page or the agent's memory. It only reads; it never
//! moves or deletes anything.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::ingest::{DONE_DIR, IngestReport, REPORT_SUFFIX};

/// How many reports the operator page shows.
pub const REPORTS_SHOWN: usize = 20;

/// The largest report read; a larger one is listed as too large to show.
pub const MAX_REPORT_BYTES: u64 = 2 * 1024 * 1024;

/// One report, read or not.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFile {
    /// The report's path.
    pub path: PathBuf,
    pub modified: Option<SystemTime>,
    /// The report, or why it could not be read.
    pub report: Result<IngestReport, String>,
}

/// The reports found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentReports {
    /// Newest first, at most the number asked for.
    pub shown: Vec<ReportFile>,
    /// Reports in `done/` beyond those.
    pub older: usize,
}

/// The `limit` most recent reports in `drop_dir/done/`. No `done/` yet is
/// no reports.
pub fn recent_reports(drop_dir: &Path, limit: usize) -> std::io::Result<RecentReports> {
    let done = drop_dir.join(DONE_DIR);
    let listing = match std::fs::read_dir(&done) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RecentReports::default()),
        Err(e) => return Err(e),
    };
    let mut found: Vec<(Option<SystemTime>, PathBuf)> = Vec::new();
    for entry in listing {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(REPORT_SUFFIX) {
            continue;
        }
        let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
        found.push((modified, entry.path()));
    }
    // Newest first; the same time by name, so the order is stable.
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let older = found.len().saturating_sub(limit);
    let shown = found
        .into_iter()
        .take(limit)
        .map(|(modified, path)| ReportFile {
            report: read_report(&path),
            path,
            modified,
        })
        .collect();
    Ok(RecentReports { shown, older })
}

fn read_report(path: &Path) -> Result<IngestReport, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_REPORT_BYTES {
        return Err(format!(
            "the report is {size} bytes, more than the {MAX_REPORT_BYTES} shown here: read it on the agent's host"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not a report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_newest_reports_come_first_bounded_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            recent_reports(dir.path(), 5).unwrap(),
            RecentReports::default()
        );
        let outbox = crate::Outbox::open(&dir.path().join("o.db")).await.unwrap();
        let drop = dir.path().join("drop");
        let done = drop.join(DONE_DIR);
        std::fs::create_dir_all(&done).unwrap();
        let source = dir.path().join("a.jsonl");
        std::fs::write(&source, "{not json}\n").unwrap();
        let report = crate::ingest_file(
            &source,
            &kith_core::AuthorityCode::new("E08000003").unwrap(),
            &outbox,
        )
        .await
        .unwrap();
        assert_eq!(report.rejected.len(), 1);
        let json = serde_json::to_vec(&report).unwrap();
        for (i, name) in ["old", "mid", "new"].iter().enumerate() {
            let p = done.join(format!("{name}.jsonl{REPORT_SUFFIX}"));
            std::fs::write(&p, &json).unwrap();
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        std::fs::write(done.join("junk.csv.report.json"), "nope").unwrap();
        std::fs::write(done.join(".tmp.report.json"), "ignored").unwrap();
        std::fs::write(done.join("new.jsonl"), "not a report").unwrap();
        let r = recent_reports(&drop, 3).unwrap();
        assert_eq!(r.older, 1);
        let names: Vec<_> = r
            .shown
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        // The junk one was written last (now), so it is newest.
        assert_eq!(
            names,
            [
                "junk.csv.report.json",
                "new.jsonl.report.json",
                "mid.jsonl.report.json"
            ]
        );
        assert!(
            r.shown[0]
                .report
                .as_ref()
                .unwrap_err()
                .starts_with("not a report")
        );
        assert_eq!(r.shown[1].report.as_ref().unwrap().rejected.len(), 1);
        outbox.close().await;
    }
}
