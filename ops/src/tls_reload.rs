//! Certificate rotation without a restart: when to load the TLS files
//! again, and what happens to the configuration in use.
//!
//! The configuration a service handshakes with sits in a [`Reloadable`]:
//! every new handshake takes the current one, a handshake already done keeps
//! what it was made with, so a rotation drops no live connection. The
//! [`spawn`]ed task loads the files again on SIGHUP (or a
//! [`ReloadHandle::reload`]) and when they change on disk. A load that
//! fails ([`crate::tls_files::check`]) is logged with its reason and
//! counted, and the configuration in use keeps serving.
//!
//! Change detection polls the three files' size, modification time and
//! inode every `interval` (a few seconds) rather than using inotify (the
//! `notify` crate): three `stat` calls per interval are a bounded cost; it
//! sees a file replaced by rename and a Kubernetes secret volume's symlink
//! swap, which an inotify watch on the old inode misses; it works on
//! network file systems; and it is what the hub's policy reload does. A
//! change is acted on once the files have stayed the same for one whole
//! interval, so a certificate and key copied one after the other are loaded
//! together, not refused half-way.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::certificates::{CertificateExpiry, CertificateRole, WARN_BEFORE};
use crate::tls_files::TlsFileError;

/// The counter of reloads, by `outcome`: `ok` or the refusal's reason
/// ([`TlsFileError::outcome`]).
pub const RELOADS_COUNTER: &str = "kith_tls_reloads_total";

/// Describes [`RELOADS_COUNTER`] (HELP and TYPE lines).
pub fn describe() {
    metrics::describe_counter!(
        RELOADS_COUNTER,
        "TLS certificate, key and trust bundle loads after start, by outcome: ok, or why the files were refused (the loaded ones keep serving)."
    );
}

/// The configuration in use, shared by whoever handshakes and the reloader.
#[derive(Debug)]
pub struct Reloadable<T> {
    current: Arc<RwLock<Arc<T>>>,
}

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
        }
    }
}

impl<T> Reloadable<T> {
    pub fn new(value: T) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(value))),
        }
    }

    /// What a handshake starting now uses.
    pub fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, value: T) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}

/// A configuration built from checked files, with what is said about them.
#[derive(Debug)]
pub struct Loaded<T> {
    pub value: T,
    pub own_not_after: DateTime<Utc>,
    pub ca_not_after: DateTime<Utc>,
    /// The own certificate's serial (hex).
    pub serial: String,
}

/// What a reload did: the serial and expiry now in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub serial: String,
    pub own_not_after: DateTime<Utc>,
}

type Reply = oneshot::Sender<Result<Reloaded, TlsFileError>>;

/// Asks the reloader to load the files now.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Option<Reply>>,
}

impl ReloadHandle {
    /// Loads now and says how it went (tests, and anything that waits).
    /// `None` if the reloader has stopped.
    pub async fn reload(&self) -> Option<Result<Reloaded, TlsFileError>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Some(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Asks for a load without waiting (SIGHUP). A request already queued
    /// covers this one.
    pub fn poke(&self) {
        let _ = self.tx.try_send(None);
    }
}

/// Size, modification time and inode of each file (`None` if missing).
type Stamp = Vec<Option<(u64, Option<SystemTime>, u64)>>;

fn stamp(paths: &[PathBuf]) -> Stamp {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| {
                #[cfg(unix)]
                let ino = std::os::unix::fs::MetadataExt::ino(&m);
                #[cfg(not(unix))]
                let ino = 0;
                (m.len(), m.modified().ok(), ino)
            })
        })
        .collect()
}

/// What the reloader needs.
pub struct Reloader<T, F> {
    /// Names the service in log lines (`kith-hub`, `kith-agent`).
    pub service: &'static str,
    /// The files watched for changes.
    pub paths: Vec<PathBuf>,
    pub interval: Duration,
    pub target: Reloadable<T>,
    /// Reads, checks and builds; never touches `target` itself.
    pub load: F,
    /// Updated on each successful load (the expiry gauge).
    pub expiry: CertificateExpiry,
}

impl<T, F> Reloader<T, F>
where
    T: Send + Sync + 'static,
    F: Fn() -> Result<Loaded<T>, TlsFileError> + Send + 'static,
{
    /// Starts watching; stops when `shutdown` turns true.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> (ReloadHandle, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Option<Reply>>(8);
        let task = tokio::spawn(async move {
            let mut seen = stamp(&self.paths);
            let mut changing: Option<Stamp> = None;
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let reply = tokio::select! {
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() { break }
                        continue;
                    }
                    asked = rx.recv() => match asked {
                        None => break,
                        Some(reply) => {
                            tracing::info!(service = self.service, "reloading the TLS certificate, key and trust bundle (asked)");
                            reply
                        }
                    },
                    _ = tick.tick() => {
                        let now = stamp(&self.paths);
                        if now == seen {
                            changing = None;
                            continue;
                        }
                        if changing.as_ref() != Some(&now) {
                            // Changed since the last look: wait until it
                            // has stayed the same for a whole interval.
                            changing = Some(now);
                            continue;
                        }
                        tracing::info!(service = self.service, "TLS files changed on disk; reloading them");
                        None
                    }
                };
                seen = stamp(&self.paths);
                changing = None;
                let outcome = self.load_once();
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
        });
        (ReloadHandle { tx }, task)
    }

    fn load_once(&self) -> Result<Reloaded, TlsFileError> {
        match (self.load)() {
            Ok(loaded) => {
                let done = Reloaded {
                    serial: loaded.serial.clone(),
                    own_not_after: loaded.own_not_after,
                };
                self.expiry.set(CertificateRole::Own, loaded.own_not_after);
                self.expiry.set(CertificateRole::Ca, loaded.ca_not_after);
                self.target.replace(loaded.value);
                metrics::counter!(RELOADS_COUNTER, "outcome" => "ok").increment(1);
                tracing::info!(
                    service = self.service,
                    serial = %done.serial,
                    not_after = %done.own_not_after,
                    "TLS files loaded; new handshakes use this certificate, live connections keep theirs"
                );
                warn_if_expiring(self.service, &self.expiry, Utc::now());
                Ok(done)
            }
            Err(e) => {
                metrics::counter!(RELOADS_COUNTER, "outcome" => e.outcome()).increment(1);
                tracing::error!(
                    service = self.service,
                    outcome = e.outcome(),
                    error = %e,
                    "TLS files refused; the certificate already loaded keeps serving"
                );
                Err(e)
            }
        }
    }
}

/// Logs a warning for each loaded certificate expiring within
/// [`WARN_BEFORE`] of `now`; the lines operators grep for besides the
/// metric and its alert.
pub fn warn_if_expiring(service: &'static str, expiry: &CertificateExpiry, now: DateTime<Utc>) {
    for (role, not_after) in expiry.expiring(now) {
        tracing::warn!(
            service,
            certificate = role.as_str(),
            %not_after,
            days_left = (not_after - now).num_days(),
            warn_days = WARN_BEFORE.num_days(),
            "certificate expires soon: rotate it (docs/operators.md, certificate rotation)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn loaded(serial: &str) -> Loaded<String> {
        Loaded {
            value: serial.to_string(),
            own_not_after: Utc::now() + chrono::Duration::days(90),
            ca_not_after: Utc::now() + chrono::Duration::days(900),
            serial: serial.to_string(),
        }
    }

    #[tokio::test]
    async fn a_refused_load_keeps_the_current_value_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "one").unwrap();
        let target = Reloadable::new("first".to_string());
        let expiry = CertificateExpiry::new();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let path = file.clone();
        let (stop_tx, stop) = watch::channel(false);
        let (handle, task) = Reloader {
            service: "test",
            paths: vec![file.clone()],
            interval: Duration::from_millis(20),
            target: target.clone(),
            load: move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let text = std::fs::read_to_string(&path).unwrap();
                if text.starts_with("bad") {
                    Err(TlsFileError::WrongIdentity {
                        path: path.clone(),
                        reason: "bad".into(),
                    })
                } else {
                    Ok(loaded(&text))
                }
            },
            expiry: expiry.clone(),
        }
        .spawn(stop);

        // Unchanged files are not reloaded by the poll.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        std::fs::write(&file, "bad file").unwrap();
        let refused = handle.reload().await.unwrap().unwrap_err();
        assert_eq!(refused.outcome(), "wrong_identity");
        assert_eq!(*target.current(), "first");
        // A refused load leaves the expiry gauge's dates alone.
        assert_eq!(expiry.get(CertificateRole::Own), None);

        // A change on disk is picked up without asking.
        std::fs::write(&file, "second, longer").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while *target.current() != "second, longer" {
            assert!(tokio::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ok = handle.reload().await.unwrap().unwrap();
        assert_eq!(ok.serial, "second, longer");
        // The gauge reads the dates of what is loaded now.
        assert_eq!(expiry.get(CertificateRole::Own), Some(ok.own_not_after));
        assert!(expiry.get(CertificateRole::Ca).is_some());

        stop_tx.send_replace(true);
        task.await.unwrap();
        assert!(handle.reload().await.is_none());
    }
}
