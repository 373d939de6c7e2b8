//! The drop folder's bulk form of subscriptions (issue #17): a source
//! system drops `*.subscriptions.jsonl` (one subscription a line, the shape
//! of [`SubscriptionLine`]) to subscribe every open case.
//!
//! Unlike records, subscriptions are not queued in the outbox: each line is
//! a call the hub decides at once (by policy, needing this authority's own
//! current record for the person), so the answer is the report. A file is
//! taken once its size and modification time have not changed for one poll
//! interval; every line is sent, a bad line never stops the rest; the report
//! (`done/<name>.report.json`: accepted and refused lines with the hub's
//! reasons) is written (temporary file, fsync, rename) before the file moves
//! beside it. While the hub cannot be reached the file stays where it is and
//! is tried again at the next poll; lines accepted by an interrupted try are
//! then refused as duplicates, naming the subscription held, so nothing is
//! lost or doubled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::Utc;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::AgentConfig;
use crate::ingest::DONE_DIR;
use crate::subscriptions::{BulkReport, SubscriptionError, subscribe_lines};

/// The name ending of a file of subscriptions.
pub const SUBSCRIPTIONS_SUFFIX: &str = ".subscriptions.jsonl";

/// Largest subscriptions file taken, in bytes; a larger one is refused whole.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Whether `path` names a subscriptions file.
pub fn is_subscriptions_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.to_ascii_lowercase().ends_with(SUBSCRIPTIONS_SUFFIX))
}

/// The report written beside a taken file.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionsFileReport {
    pub file: PathBuf,
    #[serde(flatten)]
    pub report: BulkReport,
    /// Set when the whole file was refused (too large, not UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_error: Option<String>,
    pub moved_to: PathBuf,
    pub finished_at: chrono::DateTime<Utc>,
}

/// Watches the drop folder for subscriptions files.
pub struct SubscriptionDrops {
    config: AgentConfig,
    seen: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

impl SubscriptionDrops {
    pub fn new(config: AgentConfig) -> Self {
        Self {
            config,
            seen: HashMap::new(),
        }
    }

    /// Scans once; takes every subscriptions file unchanged since the last
    /// scan. Returns the reports written.
    pub async fn poll_once(&mut self) -> std::io::Result<Vec<SubscriptionsFileReport>> {
        let drop_dir = self.config.drop_dir.clone();
        tokio::fs::create_dir_all(&drop_dir).await?;
        let mut entries = tokio::fs::read_dir(&drop_dir).await?;
        let mut now_seen = HashMap::new();
        let mut ready = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') || !is_subscriptions_file(&path)
            {
                continue;
            }
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let fingerprint = (meta.len(), meta.modified().ok());
            if self.seen.get(&path) == Some(&fingerprint) {
                ready.push((path.clone(), meta.len()));
            }
            now_seen.insert(path, fingerprint);
        }
        ready.sort();
        let mut reports = Vec::new();
        for (path, len) in ready {
            match self.take(&path, len).await {
                Ok(report) => {
                    now_seen.remove(&path);
                    reports.push(report);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "subscriptions file not taken; will try again")
                }
            }
        }
        self.seen = now_seen;
        Ok(reports)
    }

    async fn take(&self, path: &Path, len: u64) -> Result<SubscriptionsFileReport, TakeError> {
        let (report, file_error) = if len > MAX_FILE_BYTES {
            (
                BulkReport::default(),
                Some(format!("{len} bytes; at most {MAX_FILE_BYTES}")),
            )
        } else {
            let bytes = tokio::fs::read(path).await?;
            match String::from_utf8(bytes) {
                Err(_) => (BulkReport::default(), Some("not UTF-8".to_string())),
                Ok(text) => (subscribe_lines(&self.config, &text).await?, None),
            }
        };
        let done = self.config.drop_dir.join(DONE_DIR);
        tokio::fs::create_dir_all(&done).await?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let moved_to = done.join(format!("{stamp}.{name}"));
        let report = SubscriptionsFileReport {
            file: path.to_path_buf(),
            report,
            file_error,
            moved_to: moved_to.clone(),
            finished_at: Utc::now(),
        };
        let report_path = done.join(format!("{stamp}.{name}.report.json"));
        let temp = done.join(format!(".{stamp}.{name}.report.json.partial"));
        {
            use tokio::io::AsyncWriteExt as _;
            let mut f = tokio::fs::File::create(&temp).await?;
            f.write_all(&serde_json::to_vec_pretty(&report).expect("reports serialise"))
                .await?;
            f.sync_all().await?;
        }
        tokio::fs::rename(&temp, &report_path).await?;
        tokio::fs::rename(path, &moved_to).await?;
        #[cfg(unix)]
        {
            tokio::fs::File::open(&done).await?.sync_all().await?;
            tokio::fs::File::open(&self.config.drop_dir)
                .await?
                .sync_all()
                .await?;
        }
        tracing::info!(
            file = %path.display(),
            accepted = report.report.accepted,
            rejected = report.report.rejected,
            "subscriptions file taken"
        );
        Ok(report)
    }

    /// Polls every `interval` until `shutdown` turns true.
    pub async fn run(mut self, interval: std::time::Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.poll_once().await {
                tracing::error!(error = %e, "drop folder scan for subscriptions failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = crate::agent::stopped(&mut shutdown) => break,
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum TakeError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Hub(#[from] SubscriptionError),
}
