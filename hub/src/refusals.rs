//! Refusal entries from non-members, coalesced per peer.
//!
//! A caller whose certificate the federation's CA signed but which is not a
//! member is refused on every call, and each refusal is audited. Written
//! one by one, a misconfigured or hostile peer could grow the append-only
//! log without bound. So, per peer and window (60 s by default): the first
//! refusal is written at once; later ones within the window are counted and
//! written as one entry with `count` when the window closes (a sweeper
//! checks) or at the peer's next refusal after it, whichever comes first.
//! Nothing is lost: the counts of a peer's entries add up to its refusals.
//! At most [`MAX_PEERS`] peers are tracked; refusals from peers beyond that
//! share one window, written as entries by [`OVERFLOW_ACTOR`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::audit::{AuditEntry, AuditKind};
use crate::audit_writer::AuditWriter;

/// How long one peer's refusals are coalesced, unless configured otherwise.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Most peers tracked one by one.
pub const MAX_PEERS: usize = 10_000;

/// The authority named on entries that coalesce the refusals of peers
/// beyond [`MAX_PEERS`].
pub const OVERFLOW_ACTOR: &str = "kith-hub";

/// Why a non-member is refused (the entry's reason).
pub const REASON: &str = "not a member of the federation";

#[derive(Debug)]
struct Window {
    opened: Instant,
    /// Refusals counted since the entry that opened it.
    counted: u64,
}

#[derive(Debug)]
struct Inner {
    window: Duration,
    max_peers: usize,
    peers: HashMap<String, Window>,
    overflow: Option<Window>,
}

/// The coalescing state. Cheap to share.
#[derive(Debug)]
pub struct RefusalLog {
    inner: Mutex<Inner>,
}

fn entry(peer: &str, count: u64, overflow: bool) -> AuditEntry {
    let mut e = AuditEntry::new(AuditKind::Refusal, peer, chrono::Utc::now());
    e.outcome = "refused".into();
    e.reason = if overflow {
        format!("{REASON} (callers beyond the {MAX_PEERS} refused peers tracked one by one)")
    } else {
        REASON.into()
    };
    // One refusal: as before, no count.
    e.count = (count > 1).then_some(count);
    e
}

/// Notes one refusal in `slot`: the entry to write now, if any.
fn note_in(slot: &mut Option<Window>, window: Duration, at: Instant) -> Option<u64> {
    match slot {
        Some(w) if at.saturating_duration_since(w.opened) < window => {
            w.counted += 1;
            None
        }
        Some(w) => {
            // The window closed unswept: this entry carries its count too,
            // and opens the next window.
            let count = w.counted + 1;
            *w = Window {
                opened: at,
                counted: 0,
            };
            Some(count)
        }
        None => {
            *slot = Some(Window {
                opened: at,
                counted: 0,
            });
            Some(1)
        }
    }
}

impl RefusalLog {
    pub fn new(window: Duration, max_peers: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                window,
                max_peers,
                peers: HashMap::new(),
                overflow: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_window(&self, window: Duration) {
        self.lock().window = window;
    }

    pub fn window(&self) -> Duration {
        self.lock().window
    }

    /// Notes a refusal of `peer` at `at`: the entry to write now, if any.
    pub fn note(&self, peer: &str, at: Instant) -> Option<AuditEntry> {
        let mut inner = self.lock();
        let window = inner.window;
        let tracked = inner.peers.len();
        let max_peers = inner.max_peers;
        match inner.peers.get_mut(peer) {
            Some(w) if at.saturating_duration_since(w.opened) < window => {
                w.counted += 1;
                None
            }
            Some(w) => {
                // The window closed unswept: this entry carries its count
                // too, and opens the next window.
                let count = w.counted + 1;
                *w = Window {
                    opened: at,
                    counted: 0,
                };
                Some(entry(peer, count, false))
            }
            None if tracked < max_peers => {
                inner.peers.insert(
                    peer.to_string(),
                    Window {
                        opened: at,
                        counted: 0,
                    },
                );
                Some(entry(peer, 1, false))
            }
            None => {
                note_in(&mut inner.overflow, window, at).map(|c| entry(OVERFLOW_ACTOR, c, true))
            }
        }
    }

    /// The entries of windows closed by `at` (those that counted
    /// anything), forgetting every closed window. `all`: every window,
    /// closed or not (at shutdown).
    pub fn due(&self, at: Instant, all: bool) -> Vec<AuditEntry> {
        let mut inner = self.lock();
        let window = inner.window;
        let closed = |w: &Window| all || at.saturating_duration_since(w.opened) >= window;
        let mut out = Vec::new();
        inner.peers.retain(|peer, w| {
            if !closed(w) {
                return true;
            }
            if w.counted > 0 {
                out.push(entry(peer, w.counted, false));
            }
            false
        });
        if inner.overflow.as_ref().is_some_and(closed)
            && let Some(w) = inner.overflow.take()
            && w.counted > 0
        {
            out.push(entry(OVERFLOW_ACTOR, w.counted, true));
        }
        out
    }

    /// How many peers are tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().peers.len()
    }
}

/// Writes each closed window's count, until `log` is dropped.
pub(crate) fn spawn_sweeper(log: Weak<RefusalLog>, audit: AuditWriter) {
    tokio::spawn(async move {
        loop {
            let Some(tick) = log
                .upgrade()
                .map(|l| (l.window() / 2).clamp(Duration::from_millis(10), Duration::from_secs(1)))
            else {
                return;
            };
            tokio::time::sleep(tick).await;
            let Some(l) = log.upgrade() else { return };
            let due = l.due(Instant::now(), false);
            drop(l);
            if !due.is_empty() {
                let n: u64 = due.iter().map(|e| e.count.unwrap_or(1)).sum();
                if let Err(e) = audit.append_all(due).await {
                    tracing::error!(error = %e, refusals = n, "coalesced refusal entries could not be written");
                }
            }
        }
    });
}

/// A shared log and its sweeper.
pub(crate) fn start(window: Duration, audit: AuditWriter) -> Arc<RefusalLog> {
    let log = Arc::new(RefusalLog::new(window, MAX_PEERS));
    spawn_sweeper(Arc::downgrade(&log), audit);
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(entries: &[AuditEntry]) -> u64 {
        entries.iter().map(|e| e.count.unwrap_or(1)).sum()
    }

    #[test]
    fn the_first_refusal_is_written_and_the_rest_of_the_window_counted() {
        let log = RefusalLog::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let mut written = Vec::new();
        let first = log.note("X99", t0).expect("the first is written at once");
        assert_eq!(first.count, None);
        assert_eq!(first.reason, REASON);
        written.push(first);
        for i in 1..1000u64 {
            assert!(log.note("X99", t0 + Duration::from_millis(i)).is_none());
        }
        assert!(log.due(t0 + Duration::from_secs(59), false).is_empty());
        let closed = log.due(t0 + Duration::from_secs(60), false);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].count, Some(999));
        written.extend(closed);
        assert_eq!(counts(&written), 1000);
        assert_eq!(log.tracked(), 0, "a closed window is forgotten");
    }

    #[test]
    fn a_refusal_after_an_unswept_window_carries_its_count() {
        let log = RefusalLog::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        log.note("X99", t0).unwrap();
        for _ in 0..5 {
            assert!(log.note("X99", t0).is_none());
        }
        let next = log.note("X99", t0 + Duration::from_secs(61)).unwrap();
        assert_eq!(next.count, Some(6), "five counted plus this one");
        assert!(log.due(t0 + Duration::from_secs(62), false).is_empty());
        assert!(log.note("X99", t0 + Duration::from_secs(62)).is_none());
        let rest = log.due(t0, true);
        assert_eq!(counts(&rest), 1, "shutdown writes what is pending");
    }

    #[test]
    fn peers_beyond_the_cap_share_one_window() {
        let log = RefusalLog::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        assert_eq!(log.note("A", t0).unwrap().authority, "A");
        assert_eq!(log.note("B", t0).unwrap().authority, "B");
        let over = log.note("C", t0).unwrap();
        assert_eq!(over.authority, OVERFLOW_ACTOR);
        for p in ["D", "E", "F", "C"] {
            assert!(log.note(p, t0).is_none(), "{p}");
        }
        assert_eq!(log.tracked(), 2, "memory stays bounded");
        let closed = log.due(t0 + Duration::from_secs(60), false);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].authority, OVERFLOW_ACTOR);
        assert_eq!(closed[0].count, Some(4));
    }
}
