//! Taking in the hub's notifications and delivering them to the operator's
//! sinks.
//!
//! For each notification off the link, [`Notifier::receive`] stores it in
//! the agent's database (idempotent on its id), tries each sink configured
//! in `[notifications]` (a file, one JSON line appended per notification,
//! and a loopback webhook, one JSON POST), and only then lets the link
//! acknowledge it. The acknowledgement means "stored": a sink that fails is
//! retried from the database by [`Notifier::run`], with the publisher's
//! backoff, until it succeeds, so a notification is never lost to a webhook
//! that was down. Delivery is at least once: a crash between a sink taking a
//! notification and the agent marking it may deliver it twice, with the same
//! `notification_id`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kith_proto::v1 as pb;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, Notify, watch};

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::notifications::{Notification, NotificationError, NotificationStore, Pending};
use crate::outbox::Outbox;
use crate::webhook::Webhook;

/// Stores notifications and delivers them to the configured sinks.
pub struct Notifier {
    store: NotificationStore,
    file: Option<PathBuf>,
    webhook: Option<Webhook>,
    /// One delivery pass at a time, so no sink gets one twice from two passes.
    delivering: Mutex<()>,
    /// Wakes [`Notifier::run`] when a delivery failed.
    failed: Notify,
    backoff: (Duration, Duration),
}

impl Notifier {
    /// The sinks from `config` (checked when it was loaded).
    pub fn new(config: &AgentConfig, outbox: &Outbox) -> Result<Self, String> {
        let webhook = match &config.notifications.webhook {
            Some(url) => Some(Webhook::parse(url)?),
            None => None,
        };
        Ok(Self {
            store: NotificationStore::new(outbox),
            file: config.notifications.file.clone(),
            webhook,
            delivering: Mutex::new(()),
            failed: Notify::new(),
            backoff: (
                Duration::from_millis(config.publish.backoff_initial_ms),
                Duration::from_millis(config.publish.backoff_max_ms),
            ),
        })
    }

    fn configured(&self) -> Pending {
        Pending {
            file: self.file.is_some(),
            webhook: self.webhook.is_some(),
        }
    }

    /// Stores one notification from the hub and tries its sinks. `Ok(id)`
    /// once it is stored durably: the link then acknowledges `id`. An
    /// error means it was not stored and must not be acknowledged (a
    /// notification with no id cannot be).
    pub async fn receive(&self, wire: pb::Notification) -> Result<String, NotificationError> {
        let notification = Notification::from_wire(wire)?;
        let new = self.store.insert(&notification, self.configured()).await?;
        if new {
            // Who looked stays in the database and the sinks, not the log.
            tracing::info!(notification_id = %notification.notification_id,
                kind = notification.kind.as_str(), record_id = %notification.record_id,
                "notification from the hub stored");
            if self.deliver_pending().await.is_err() {
                self.failed.notify_one();
            }
        } else {
            tracing::debug!(notification_id = %notification.notification_id,
                "notification resent by the hub; already stored");
        }
        Ok(notification.notification_id)
    }

    /// One delivery pass over every notification still owed to a sink,
    /// oldest first. Stops at the first failing sink (the rest would fail
    /// the same way) and returns its error.
    pub async fn deliver_pending(&self) -> Result<(), String> {
        let configured = self.configured();
        if !configured.any() {
            return Ok(());
        }
        let _one_pass = self.delivering.lock().await;
        let owed = self
            .store
            .undelivered(configured)
            .await
            .map_err(|e| e.to_string())?;
        for (notification, pending) in owed {
            let (delivered, error) = self.deliver(&notification, pending).await;
            self.store
                .mark(&notification.notification_id, delivered, error.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if let Some(e) = error {
                tracing::warn!(notification_id = %notification.notification_id, error = %e,
                    "notification not delivered; will retry");
                return Err(e);
            }
        }
        Ok(())
    }

    /// Tries the sinks `pending` names; what reached them, and the first
    /// error.
    async fn deliver(&self, n: &Notification, pending: Pending) -> (Pending, Option<String>) {
        let json = serde_json::to_vec(n).expect("notifications always serialise");
        let mut delivered = Pending::default();
        let mut error = None;
        if pending.file
            && let Some(path) = &self.file
        {
            match append_line(path, &json).await {
                Ok(()) => delivered.file = true,
                Err(e) => error = Some(format!("file {}: {e}", path.display())),
            }
        }
        if pending.webhook
            && let Some(webhook) = &self.webhook
        {
            match webhook.post_json(json).await {
                Ok(()) => delivered.webhook = true,
                Err(e) => error = error.or(Some(e.to_string())),
            }
        }
        (delivered, error)
    }

    /// Retries failed deliveries until `shutdown`: once at start (for what
    /// an earlier run left), then whenever a delivery fails, backing off
    /// between attempts while they keep failing.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if !self.configured().any() {
            return;
        }
        let mut backoff = Backoff::new(self.backoff.0, self.backoff.1);
        loop {
            let wait = match self.deliver_pending().await {
                Ok(()) => {
                    backoff.reset();
                    None
                }
                Err(_) => Some(backoff.next_delay()),
            };
            tokio::select! {
                _ = async {
                    match wait {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => self.failed.notified().await,
                    }
                } => {}
                _ = crate::agent::stopped(&mut shutdown) => break,
            }
        }
    }
}

/// Appends one line and makes it durable before returning.
async fn append_line(path: &std::path::Path, json: &[u8]) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let mut line = Vec::with_capacity(json.len() + 1);
    line.extend_from_slice(json);
    line.push(b'\n');
    file.write_all(&line).await?;
    file.sync_data().await
}
