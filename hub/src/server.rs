//! Starting and stopping a hub: load everything, bind, serve over mutual
//! TLS, and stop gracefully, letting in-flight calls finish.
//!
//! Tests and the demo use [`start`] exactly as the binary does; port 0 in
//! the config picks a free port, reported by [`RunningHub::addr`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kith_policy::PolicySet;
use kith_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::Server;

use crate::config::HubConfig;
use crate::directory::Directory;
use crate::grpc::audit::AuditServiceImpl;
use crate::grpc::link::{AgentLinkServiceImpl, Links};
use crate::grpc::query::QueryServiceImpl;
use crate::grpc::records::RecordServiceImpl;
use crate::grpc::subscriptions::SubscriptionServiceImpl;
use crate::hub::Hub;
use crate::transparency::TransparencyLog;

/// How often agents are asked to send heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("policy set in {dir}: {source}")]
    Policy {
        dir: String,
        source: kith_policy::PolicyError,
    },
    #[error("TLS: {0}")]
    Tls(#[from] kith_core::tls::TlsError),
    #[error("TLS: {0}")]
    TlsConfig(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("audit: {0}")]
    Audit(String),
    #[error("audit log: {0}")]
    Log(#[from] crate::transparency::LogError),
    #[error("audit log signing key {path}: {reason}")]
    SigningKey { path: String, reason: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// A hub serving in the background.
pub struct RunningHub {
    addr: SocketAddr,
    hub: Arc<Hub>,
    links: Arc<Links>,
    log: Arc<TransparencyLog>,
    stop_sequencer: watch::Sender<bool>,
    sequencer: JoinHandle<()>,
    reload: tokio::sync::mpsc::Sender<()>,
    policy_watcher: JoinHandle<()>,
    tls_reload: kith_ops::tls_reload::ReloadHandle,
    tls_watcher: JoinHandle<()>,
    purge: JoinHandle<()>,
    health: JoinHandle<()>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    metrics: Option<kith_ops::MetricsEndpoint>,
}

impl RunningHub {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn links(&self) -> &Arc<Links> {
        &self.links
    }

    pub fn log(&self) -> &Arc<TransparencyLog> {
        &self.log
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(kith_ops::MetricsEndpoint::addr)
    }

    /// A handle that asks for a policy reload now (what SIGHUP does).
    pub fn reload_handle(&self) -> tokio::sync::mpsc::Sender<()> {
        self.reload.clone()
    }

    /// A handle that loads the TLS certificate, key and trust bundle again
    /// (what SIGHUP does; `reload` also says how it went).
    pub fn tls_reload_handle(&self) -> kith_ops::tls_reload::ReloadHandle {
        self.tls_reload.clone()
    }

    /// Stops accepting, lets in-flight calls finish, and returns.
    pub async fn shutdown(self) -> Result<(), tonic::transport::Error> {
        self.links.close_all();
        let _ = self.stop.send(());
        let served = match self.task.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(error = %join, "hub server task failed");
                Ok(())
            }
        };
        // Non-members' refusals still being counted are written now.
        if let Err(e) = self.hub.flush_refusals().await {
            tracing::error!(error = %e, "counted refusals could not be written at shutdown");
        }
        // Sequence what the last calls wrote, then stop and hand the
        // sequencer lease to another replica, if any.
        self.stop_sequencer.send_replace(true);
        let _ = self.sequencer.await;
        self.hub.store().release_sequencer_lease().await;
        let _ = self.policy_watcher.await;
        let _ = self.tls_watcher.await;
        let _ = self.purge.await;
        let _ = self.health.await;
        served
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn serve_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        signal.await;
        tracing::info!("shutting down: finishing in-flight calls");
        self.shutdown().await
    }
}

/// Loads the store and policy set named in `config`, binds, and serves.
pub async fn start(config: &HubConfig) -> Result<RunningHub, StartError> {
    kith_core::tls::install_crypto_provider();
    let policies = PolicySet::load(&config.policy_dir).map_err(|source| StartError::Policy {
        dir: config.policy_dir.display().to_string(),
        source,
    })?;
    // `sqlite:` → SqliteStore, `postgres://`/`postgresql://` → PostgresStore.
    let store: Arc<dyn crate::store::Store> = crate::store::open(&config.database_url).await?;
    let key_path = config.audit.signing_key.display().to_string();
    let skey =
        std::fs::read_to_string(&config.audit.signing_key).map_err(|e| StartError::SigningKey {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
    let signer =
        kith_tlog::NoteSigner::from_skey(skey.trim()).map_err(|e| StartError::SigningKey {
            path: key_path,
            reason: e.to_string(),
        })?;
    let log = Arc::new(TransparencyLog::open(store.clone(), signer).await?);
    let links = Arc::new(Links::new(Duration::from_millis(config.detail_timeout_ms)));
    let settings = config.settings().map_err(StartError::Config)?;
    let hub = Arc::new(
        Hub::new(
            store,
            Directory::new(config.authorities.clone()),
            policies,
            config.jurisdiction.clone(),
            links.clone(),
        )
        .with_settings(settings),
    );
    let limits = &config.limits;
    limits.check().map_err(StartError::Config)?;
    // TLS is accepted here, not by tonic, so that a client that finishes
    // its handshake and then sends nothing is dropped too (accept.rs).
    let loaded = crate::tls::load(&config.tls).map_err(|e| StartError::TlsConfig(e.to_string()))?;
    let certificates = kith_ops::CertificateExpiry::new();
    certificates.set(kith_ops::CertificateRole::Own, loaded.own_not_after);
    certificates.set(kith_ops::CertificateRole::Ca, loaded.ca_not_after);
    kith_ops::tls_reload::warn_if_expiring("kith-hub", &certificates, chrono::Utc::now());
    let tls_serial = loaded.serial.clone();
    let tls: crate::tls::ServerTls = kith_ops::tls_reload::Reloadable::new(loaded.value);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;

    let metrics = start_metrics(config, &links, &log, &certificates).await;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    // Both reflection versions: grpcurl, Postman and Evans before 2023
    // speak only v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;

    // Every request message is checked in its encoded form before it is
    // decoded (grpc::guard); tonic's own size limit stays as a backstop.
    let schema = Arc::new(crate::grpc::guard::Schema::kith());
    fn guard<S>(
        inner: S,
        schema: &Arc<crate::grpc::guard::Schema>,
        limits: crate::grpc::guard::WireLimits,
    ) -> crate::grpc::guard::Guard<S> {
        crate::grpc::guard::Guard::new(inner, schema.clone(), limits)
    }
    let records =
        pb::record_service_server::RecordServiceServer::new(RecordServiceImpl { hub: hub.clone() })
            .max_decoding_message_size(limits.max_record_message_bytes);
    let audit = pb::audit_service_server::AuditServiceServer::new(AuditServiceImpl {
        hub: hub.clone(),
        log: log.clone(),
    })
    .max_decoding_message_size(limits.max_audit_message_bytes);
    let query =
        pb::query_service_server::QueryServiceServer::new(QueryServiceImpl { hub: hub.clone() })
            .max_decoding_message_size(limits.max_query_message_bytes);
    let subscriptions =
        pb::subscription_service_server::SubscriptionServiceServer::new(SubscriptionServiceImpl {
            hub: hub.clone(),
        })
        .max_decoding_message_size(limits.max_query_message_bytes);
    let link = pb::agent_link_service_server::AgentLinkServiceServer::new(AgentLinkServiceImpl {
        hub: hub.clone(),
        links: links.clone(),
        heartbeat_interval: HEARTBEAT_INTERVAL,
    })
    .max_decoding_message_size(limits.max_link_message_bytes);
    let router = Server::builder()
        // A unary call's deadline; a stream's (the agent link's) handler
        // returns at once, so its stream is not cut.
        .timeout(limits.request_timeout())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_millis(
            limits.http2_keepalive_interval_ms,
        )))
        .http2_keepalive_timeout(Some(Duration::from_millis(
            limits.http2_keepalive_timeout_ms,
        )))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(guard(
            records,
            &schema,
            limits.wire(limits.max_record_message_bytes),
        ))
        .add_service(guard(
            audit,
            &schema,
            limits.wire(limits.max_audit_message_bytes),
        ))
        .add_service(guard(
            query,
            &schema,
            limits.wire(limits.max_query_message_bytes),
        ))
        .add_service(guard(
            subscriptions,
            &schema,
            limits.wire(limits.max_query_message_bytes),
        ))
        .add_service(guard(
            link,
            &schema,
            limits.wire(limits.max_link_message_bytes),
        ));
    let (stop, stopped) = oneshot::channel::<()>();
    let (stop_sequencer, sequencer_stopped) = watch::channel(false);
    hub.audit_initial_policies()
        .await
        .map_err(|e| StartError::Audit(e.to_string()))?;
    let (reload, poke) = tokio::sync::mpsc::channel(4);
    let policy_watcher = crate::policy_reload::spawn_watcher(
        hub.clone(),
        config.policy_dir.clone(),
        Duration::from_millis(config.policy_reload_interval_ms.max(10)),
        poke,
        sequencer_stopped.clone(),
    );
    let purge = crate::retention::spawn(
        hub.clone(),
        Duration::from_millis(config.sharing.retention_purge_interval_ms.max(10)),
        sequencer_stopped.clone(),
    );
    let health_task = crate::grpc::health::start(
        hub.clone(),
        log.clone(),
        config.audit.signing_key.clone(),
        health_reporter,
        sequencer_stopped.clone(),
    )
    .await;
    let sequencer = log.spawn(
        Duration::from_millis(config.audit.checkpoint_interval_ms.max(10)),
        sequencer_stopped,
    );
    let tls_files = config.tls.clone();
    let (tls_reload, tls_watcher) = kith_ops::tls_reload::Reloader {
        service: "kith-hub",
        paths: vec![
            config.tls.ca.clone(),
            config.tls.cert.clone(),
            config.tls.key.clone(),
        ],
        interval: Duration::from_millis(config.tls_reload_interval_ms.max(10)),
        target: tls.clone(),
        load: move || crate::tls::load(&tls_files),
        expiry: certificates.clone(),
    }
    .spawn(stop_sequencer.subscribe());
    let incoming = crate::accept::incoming(
        listener,
        tls,
        crate::accept::AcceptLimits {
            handshake_timeout: limits.tls_handshake_timeout(),
            first_data_timeout: limits.tls_handshake_timeout(),
            tcp_keepalive: Duration::from_millis(limits.tcp_keepalive_ms),
        },
    );
    let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = stopped.await;
    }));
    tracing::info!(
        %addr,
        jurisdiction = %config.jurisdiction,
        audit_log_vkey = %log.vkey(),
        certificate_serial = %tls_serial,
        "kith-hub serving over mutual TLS"
    );
    Ok(RunningHub {
        addr,
        hub,
        links,
        log,
        stop_sequencer,
        sequencer,
        reload,
        policy_watcher,
        tls_reload,
        tls_watcher,
        purge,
        health: health_task,
        stop,
        task,
        metrics,
    })
}

/// Serves `/metrics` if configured. A port already taken is logged and the
/// hub serves on without metrics: they observe the service, they are not it.
async fn start_metrics(
    config: &HubConfig,
    links: &Arc<Links>,
    log: &Arc<TransparencyLog>,
    certificates: &kith_ops::CertificateExpiry,
) -> Option<kith_ops::MetricsEndpoint> {
    let addr = config
        .metrics
        .address(crate::config::DEFAULT_METRICS_LISTEN)?;
    let sampled = crate::metrics::Sampled {
        links: links.clone(),
        log: log.clone(),
        certificates: certificates.clone(),
    };
    let refresh: kith_ops::Refresh =
        Arc::new(move || Box::pin(crate::metrics::refresh(sampled.clone())));
    kith_ops::MetricsEndpoint::start_or_log(addr, refresh, crate::metrics::describe).await
}
