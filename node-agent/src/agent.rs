//! The running agent: drop-folder watcher, publisher, hub link and
//! notification delivery together.
//!
//! [`Agent::start`] checks the configuration and certificate, opens the
//! outbox and spawns the three tasks; [`RunningAgent::shutdown`] tells them to
//! stop through one `watch` channel and waits for them, so a publish batch in
//! flight is finished and marked before the process exits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::{AgentConfig, ConfigError};
use crate::detail::DetailResponder;
use crate::hub_client::HubError;
use crate::ingest::DropWatcher;
use crate::link::{Link, LinkState};
use crate::notify::Notifier;
use crate::outbox::{Outbox, OutboxError};
use crate::publisher::{PublishError, Publisher};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("cannot create folder {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the agent's policy copy: {0}")]
    Policy(#[from] kith_policy::PolicyError),
    #[error("config key `notifications.webhook`: {0}")]
    Notifications(String),
    #[error(transparent)]
    Console(#[from] crate::console::ServeError),
    #[error("the outbox still had {pending} pending records or directives after {waited:?}")]
    NotDrained { pending: u64, waited: Duration },
}

/// Resolves once the shutdown flag is set (or its sender is gone). Holds no
/// borrow of the channel across the wait, so tasks using it stay `Send`.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Starts agents.
pub struct Agent;

/// An agent whose tasks are running.
pub struct RunningAgent {
    config: AgentConfig,
    outbox: Outbox,
    link_state: watch::Receiver<LinkState>,
    enqueued: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    metrics: Option<kith_ops::MetricsEndpoint>,
    console_address: Option<std::net::SocketAddr>,
    hub_tls: crate::tls::HubTls,
    tls_reload: kith_ops::tls_reload::ReloadHandle,
}

/// The client TLS configuration the agent starts with: checked, or, when
/// the files fail a check (an expired certificate), built from them anyway
/// with the reason logged, so ingest runs while the certificate is replaced.
fn start_tls(
    config: &AgentConfig,
    certificates: &kith_ops::CertificateExpiry,
) -> Result<crate::tls::ClientTls, AgentError> {
    match crate::tls::load(config) {
        Ok(loaded) => {
            certificates.set(kith_ops::CertificateRole::Own, loaded.own_not_after);
            certificates.set(kith_ops::CertificateRole::Ca, loaded.ca_not_after);
            kith_ops::tls_reload::warn_if_expiring("kith-agent", certificates, chrono::Utc::now());
            tracing::info!(certificate_serial = %loaded.serial, "TLS files loaded");
            Ok(kith_ops::tls_reload::Reloadable::new(loaded.value))
        }
        Err(e) => {
            tracing::error!(error = %e, "TLS files fail their checks; the hub will refuse this agent until they are replaced (they are watched)");
            if let Err(e) = certificates.load(&config.tls.cert, &config.tls.ca) {
                tracing::error!(error = %e, "certificate expiry cannot be read for the metrics");
            }
            let client =
                crate::tls::load_unchecked(config).map_err(|reason| ConfigError::Certificate {
                    what: "TLS files",
                    path: config.tls.cert.clone(),
                    reason,
                })?;
            Ok(kith_ops::tls_reload::Reloadable::new(client))
        }
    }
}

impl Agent {
    /// Checks the config and certificate, opens the outbox and starts the
    /// drop-folder watcher, the publisher, the hub link and the retrying of
    /// notification deliveries, and the staff console when the config has
    /// a `[console]` section.
    pub async fn start(config: AgentConfig) -> Result<RunningAgent, AgentError> {
        config.check()?;
        kith_core::tls::install_crypto_provider();
        config.check_certificate()?;
        if let Err(e) = config.check_certificate_at(chrono::Utc::now()) {
            // Still start: the drop folder and the outbox work without the
            // hub, and nothing accepted is lost while the certificate is
            // replaced.
            tracing::error!(error = %e, "the hub will refuse this agent until its certificate is replaced");
        }
        let authority = config.authority_code().map_err(|e| ConfigError::Invalid {
            key: "authority",
            reason: e.to_string(),
        })?;
        for dir in [&config.data_dir, &config.drop_dir] {
            std::fs::create_dir_all(dir).map_err(|source| AgentError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        let outbox = Outbox::open(&config.outbox_path()).await?;
        let certificates = kith_ops::CertificateExpiry::new();
        let client_tls = start_tls(&config, &certificates)?;
        let hub_tls = crate::tls::HubTls::new(client_tls.clone(), &config.hub.server_name)
            .map_err(HubError::from)?;
        let publisher = Publisher::new(&config, outbox.clone(), hub_tls.clone())?;
        let responder = Arc::new(DetailResponder::new(&config, outbox.clone())?);
        let notifier =
            Arc::new(Notifier::new(&config, &outbox).map_err(AgentError::Notifications)?);
        let (link, link_state) = Link::new(&config, hub_tls.clone())?;
        let link = link
            .with_responder(responder)
            .with_notifier(notifier.clone());
        let watcher = DropWatcher::new(config.drop_dir.clone(), authority.clone(), outbox.clone());

        let enqueued = Arc::new(Notify::new());
        let (shutdown, stop) = watch::channel(false);
        let mut tasks = vec![
            (
                "drop folder watcher",
                tokio::spawn(watcher.run(config.poll_interval(), enqueued.clone(), stop.clone())),
            ),
            (
                "publisher",
                tokio::spawn(publisher.run(enqueued.clone(), stop.clone())),
            ),
            (
                "notification delivery",
                tokio::spawn(notifier.run(stop.clone())),
            ),
            (
                "link recorder",
                tokio::spawn(record_link(
                    outbox.clone(),
                    link_state.clone(),
                    stop.clone(),
                )),
            ),
            ("hub link", tokio::spawn(link.run(stop.clone()))),
            (
                "subscriptions drop watcher",
                tokio::spawn(
                    crate::ingest_subscriptions::SubscriptionDrops::new(config.clone())
                        .run(config.poll_interval(), stop.clone()),
                ),
            ),
        ];
        let mut console_address = None;
        if config.console.is_some() {
            let console = crate::console::start(&config, &outbox, stop).await?;
            console_address = Some(console.address);
            tasks.push(("console", console.task));
        }
        let reload_config = config.clone();
        let (tls_reload, tls_watcher) = kith_ops::tls_reload::Reloader {
            service: "kith-agent",
            paths: vec![
                config.tls.ca.clone(),
                config.tls.cert.clone(),
                config.tls.key.clone(),
            ],
            interval: config.tls_reload_interval(),
            target: client_tls,
            load: move || crate::tls::load(&reload_config),
            expiry: certificates.clone(),
        }
        .spawn(shutdown.subscribe());
        tasks.push(("TLS reloader", tls_watcher));
        let metrics = start_metrics(
            &config,
            crate::metrics::Sampled {
                outbox: outbox.clone(),
                link: link_state.clone(),
                certificates,
            },
        )
        .await;
        tracing::info!(%authority, hub = ?config.hub.addresses, drop_dir = %config.drop_dir.display(), "agent started");
        Ok(RunningAgent {
            metrics,
            hub_tls,
            tls_reload,
            config,
            outbox,
            link_state,
            enqueued,
            shutdown,
            tasks,
            console_address,
        })
    }
}

/// Writes each change of the link's state to the agent's database, so
/// `kith-agent status` (another process) can say how the link stands.
async fn record_link(
    outbox: Outbox,
    mut state: watch::Receiver<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let now = state.borrow_and_update().clone();
        if let Err(e) = outbox.record_link(&now).await {
            tracing::warn!(error = %e, "cannot record the link state for `status`");
        }
        tokio::select! {
            changed = state.changed() => if changed.is_err() { break },
            _ = stopped(&mut shutdown) => break,
        }
    }
    // Stopped: the link is down from now on.
    let down = LinkState {
        connected: false,
        ..state.borrow().clone()
    };
    let _ = outbox.record_link(&down).await;
}

/// Serves `/metrics` if configured. A port already taken is logged and the
/// agent runs on without metrics: ingest and delivery must not stop for them.
async fn start_metrics(
    config: &AgentConfig,
    sampled: crate::metrics::Sampled,
) -> Option<kith_ops::MetricsEndpoint> {
    let addr = config
        .metrics
        .address(crate::config::DEFAULT_METRICS_LISTEN)?;
    let refresh: kith_ops::Refresh =
        Arc::new(move || Box::pin(crate::metrics::refresh(sampled.clone())));
    kith_ops::MetricsEndpoint::start_or_log(addr, refresh, crate::metrics::describe).await
}

impl RunningAgent {
    /// A handle that loads the TLS certificate, key and trust bundle again
    /// (what SIGHUP does; `reload` also says how it went).
    pub fn tls_reload_handle(&self) -> kith_ops::tls_reload::ReloadHandle {
        self.tls_reload.clone()
    }

    /// How the agent dials the hub: each new connection uses the files
    /// loaded last.
    pub fn hub_tls(&self) -> &crate::tls::HubTls {
        &self.hub_tls
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(kith_ops::MetricsEndpoint::addr)
    }

    /// The agent's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Where the staff console listens, when the config has one.
    pub fn console_address(&self) -> Option<std::net::SocketAddr> {
        self.console_address
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Follows the hub link's state.
    pub fn link_state(&self) -> watch::Receiver<LinkState> {
        self.link_state.clone()
    }

    /// Wakes the publisher now (after enqueueing outside the drop folder).
    pub fn wake_publisher(&self) {
        self.enqueued.notify_one();
    }

    /// Waits until nothing is pending in the outbox (records and sharing
    /// directives alike), or `timeout` passes.
    pub async fn wait_until_drained(&self, timeout: Duration) -> Result<(), AgentError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.outbox.stats().await?;
            // A directive left out here let the demo ask before its
            // objection reached the hub (the plan was still shown).
            let pending = stats.pending + stats.directives.pending;
            if pending == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AgentError::NotDrained {
                    pending,
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the hub link has been welcomed, or `timeout` passes.
    pub async fn wait_until_linked(&self, timeout: Duration) -> bool {
        let mut state = self.link_state.clone();
        tokio::time::timeout(timeout, state.wait_for(|s| s.connected))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the tasks (a publish in flight finishes first) and closes the
    /// outbox.
    pub async fn shutdown(self) {
        tracing::info!("agent stopping");
        let _ = self.shutdown.send(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "agent task ended abnormally");
            }
        }
        self.outbox.close().await;
        tracing::info!("agent stopped");
    }
}
