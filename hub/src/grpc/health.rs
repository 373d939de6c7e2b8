//! The gRPC health service, told the truth: each `kith.v1` service is
//! SERVING only while every condition it needs holds
//! ([`crate::health::Service::needs`]), and the overall (`""`) status only
//! while all do. This task probes what nothing else observes (the store
//! answering, the signing key readable and unchanged) every
//! [`PROBE_INTERVAL`] and republishes the statuses on every change.

use std::path::PathBuf;
use std::sync::Arc;

use kith_proto::v1 as pb;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::grpc::audit::AuditServiceImpl;
use crate::grpc::link::AgentLinkServiceImpl;
use crate::grpc::query::QueryServiceImpl;
use crate::grpc::records::RecordServiceImpl;
use crate::grpc::subscriptions::SubscriptionServiceImpl;
use crate::health::{Condition, Conditions, PROBE_INTERVAL, Service};
use crate::hub::Hub;
use crate::transparency::TransparencyLog;

/// The name health reports `service` under.
pub fn service_name(service: Service) -> &'static str {
    match service {
        Service::Records => {
            <pb::record_service_server::RecordServiceServer<RecordServiceImpl> as NamedService>::NAME
        }
        Service::Query => {
            <pb::query_service_server::QueryServiceServer<QueryServiceImpl> as NamedService>::NAME
        }
        Service::Audit => {
            <pb::audit_service_server::AuditServiceServer<AuditServiceImpl> as NamedService>::NAME
        }
        Service::Subscriptions => <pb::subscription_service_server::SubscriptionServiceServer<
            SubscriptionServiceImpl,
        > as NamedService>::NAME,
        Service::AgentLink => <pb::agent_link_service_server::AgentLinkServiceServer<
            AgentLinkServiceImpl,
        > as NamedService>::NAME,
    }
}

fn status(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Sets every status from `conditions`.
async fn publish(reporter: &HealthReporter, conditions: &Conditions) {
    for service in Service::ALL {
        reporter
            .set_service_status(service_name(service), status(conditions.serving(service)))
            .await;
    }
    reporter
        .set_service_status("", status(conditions.failing().is_empty()))
        .await;
}

/// Whether the key file at `path` still holds the key the log signs with.
fn signing_key_matches(path: &std::path::Path, log: &TransparencyLog) -> Result<(), String> {
    let skey = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let signer = kith_tlog::NoteSigner::from_skey(skey.trim()).map_err(|e| e.to_string())?;
    if signer.vkey() != log.vkey() {
        return Err("the key file holds another key than the one in use".into());
    }
    Ok(())
}

/// Publishes the statuses as they stand (before the server takes calls),
/// then probes and reports until `stop` is set.
pub async fn start(
    hub: Arc<Hub>,
    log: Arc<TransparencyLog>,
    signing_key: PathBuf,
    reporter: HealthReporter,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    publish(&reporter, hub.conditions()).await;
    tokio::spawn(async move {
        let conditions = hub.conditions().clone();
        let mut changed = conditions.subscribe();
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut key_error = None;
        loop {
            let reachable = hub.store().latest_checkpoint().await;
            if let Err(e) = &reachable {
                tracing::warn!(error = %e, "health: the store does not answer");
            }
            conditions.set(Condition::StoreReachable, reachable.is_ok());
            let key = signing_key_matches(&signing_key, &log);
            if let (Err(e), None) = (&key, &key_error) {
                tracing::error!(path = %signing_key.display(), error = %e, "health: the audit log signing key is unavailable");
            }
            key_error = key.as_ref().err().cloned();
            conditions.set(Condition::SigningKey, key.is_ok());
            changed.mark_unchanged();
            publish(&reporter, &conditions).await;
            tokio::select! {
                _ = tick.tick() => {}
                _ = changed.changed() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    })
}
