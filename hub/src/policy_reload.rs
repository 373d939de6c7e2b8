//! Changing the policy set without a release: reload on file change and on
//! SIGHUP, whole or not at all.
//!
//! A new set is loaded and validated in full before it replaces the one
//! serving; an invalid set is rejected, logged and audited, and the previous
//! set keeps serving. Every load is an audit entry, written before the new
//! set serves: an accepted one names the set's fingerprint (SHA-256 over its
//! files), so an auditor can tell which rules were in force for any
//! decision; a rejected one names the error.

use crate::health::Condition;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kith_policy::PolicySet;
use tokio::sync::watch;

use crate::audit::{AuditEntry, AuditKind};
use crate::hub::{Hub, now};

/// The authority recorded on entries the hub makes on its own behalf.
pub const HUB_ACTOR: &str = "kith-hub";

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new set is serving.
    Loaded { fingerprint: String },
    /// The files are unchanged: nothing to do.
    Unchanged,
    /// The new set is invalid; the previous one keeps serving.
    Rejected { error: String },
}

impl Hub {
    /// Loads the set in `dir` and, if it is valid and different, puts it in
    /// service once its load is audited (a load that cannot be audited does
    /// not happen: the previous set keeps serving). A rejected set is
    /// audited with its error.
    pub async fn reload_policies(&self, dir: &Path) -> ReloadOutcome {
        let mut entry = AuditEntry::new(AuditKind::PolicyLoad, HUB_ACTOR, now());
        match PolicySet::load(dir) {
            Ok(set) if set.fingerprint() == self.policies().fingerprint() => {
                crate::metrics::policy_reload("unchanged");
                self.conditions.set(Condition::PolicyLoaded, true);
                ReloadOutcome::Unchanged
            }
            Ok(set) => {
                let fingerprint = set.fingerprint().to_string();
                entry.reason = format!("policy set {fingerprint} loaded");
                if let Err(e) = self.audit.append(entry).await {
                    crate::metrics::policy_reload("rejected");
                    self.conditions.set(Condition::PolicyLoaded, false);
                    tracing::error!(error = %e, "could not audit a policy load; the previous set keeps serving");
                    return ReloadOutcome::Rejected {
                        error: format!("the load could not be audited: {e}"),
                    };
                }
                self.replace_policies(set);
                crate::metrics::policy_reload("loaded");
                self.conditions.set(Condition::PolicyLoaded, true);
                tracing::info!(%fingerprint, dir = %dir.display(), "policy set reloaded");
                ReloadOutcome::Loaded { fingerprint }
            }
            Err(e) => {
                crate::metrics::policy_reload("rejected");
                self.conditions.set(Condition::PolicyLoaded, false);
                tracing::error!(error = %e, dir = %dir.display(), "policy set rejected; the previous set keeps serving");
                entry.outcome = "rejected".into();
                entry.reason = format!("invalid policy set rejected: {e}");
                if let Err(e) = self.audit.append(entry).await {
                    tracing::error!(error = %e, "could not audit a rejected policy load");
                }
                ReloadOutcome::Rejected {
                    error: e.to_string(),
                }
            }
        }
    }

    /// Audits the set the hub started with.
    pub async fn audit_initial_policies(&self) -> Result<(), crate::error::HubError> {
        let mut entry = AuditEntry::new(AuditKind::PolicyLoad, HUB_ACTOR, now());
        entry.reason = format!(
            "policy set {} loaded at start",
            self.policies().fingerprint()
        );
        self.audit.append(entry).await.map(|_| ())
    }
}

/// A fingerprint of the folder's files (names, sizes, modification times),
/// cheap enough to poll.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) => out.push((path, m.len(), m.modified().ok())),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// Watches `dir` every `interval` and reloads when its files change; also
/// reloads whenever `poke` fires (SIGHUP). Ends when `stop` is set.
pub fn spawn_watcher(
    hub: Arc<Hub>,
    dir: PathBuf,
    interval: Duration,
    mut poke: tokio::sync::mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = snapshot(&dir);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tick.tick() => false,
                Some(()) = poke.recv() => true,
            };
            let now = snapshot(&dir);
            if forced || now != seen {
                seen = now;
                hub.reload_policies(&dir).await;
            }
        }
    })
}
