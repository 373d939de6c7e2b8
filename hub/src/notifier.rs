//! The wake-up a commit that stored notifications gives every agent link
//! on this hub. A type of its own, so that the hub's state (`hub.rs`) and
//! the audit writer can hold one without depending on the `impl Hub` code
//! that sends notifications (`notify.rs`).

use tokio::sync::watch;

/// Wakes the links when notifications are stored.
#[derive(Debug)]
pub struct Notifier {
    stored: watch::Sender<u64>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            stored: watch::channel(0).0,
        }
    }
}

impl Notifier {
    /// A receiver that changes each time notifications are stored here.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.stored.subscribe()
    }

    pub(crate) fn wake(&self) {
        self.stored.send_modify(|n| *n = n.wrapping_add(1));
    }
}
