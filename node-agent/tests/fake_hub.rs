//! The agent against an in-process fake hub over real mutual TLS: publish
//! outcomes, a retried outage, failover past a dead address, the link, and a
//! hub that refuses the agent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kith_agent::{Agent, AgentConfig};
use kith_core::identity::AuthorityCode;
use kith_core::tls::TlsFiles;
use kith_proto::v1 as pb;
use pb::agent_link_service_server::{AgentLinkService, AgentLinkServiceServer};
use pb::audit_service_server::{AuditService, AuditServiceServer};
use pb::record_service_server::{RecordService, RecordServiceServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

const AUTHORITY: &str = "E08000003";

#[derive(Default, Clone)]
struct FakeHub {
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl RecordService for FakeHub {
    async fn publish_records(
        &self,
        request: Request<pb::PublishRecordsRequest>,
    ) -> Result<Response<pb::PublishRecordsResponse>, Status> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Status::unavailable("warming up"));
        }
        let results = request
            .into_inner()
            .records
            .into_iter()
            .map(|r| {
                let (outcome, errors) = if r.record_id.starts_with("bad") {
                    (
                        pb::PublishOutcome::Rejected,
                        vec![pb::FieldError {
                            field: "service".into(),
                            reason: "not allowed here".into(),
                        }],
                    )
                } else if r.record_id.starts_with("old") {
                    (pb::PublishOutcome::Stale, vec![])
                } else {
                    (pb::PublishOutcome::Accepted, vec![])
                };
                pb::PublishResult {
                    record_id: r.record_id,
                    version: r.version,
                    outcome: outcome as i32,
                    errors,
                    audit_index: 1,
                }
            })
            .collect();
        Ok(Response::new(pb::PublishRecordsResponse { results }))
    }

    async fn end_record(
        &self,
        _: Request<pb::EndRecordRequest>,
    ) -> Result<Response<pb::EndRecordResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn withdraw_record(
        &self,
        _: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::WithdrawRecordResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn publish_directives(
        &self,
        _: Request<pb::PublishDirectivesRequest>,
    ) -> Result<Response<pb::PublishDirectivesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

struct FakeLink;

#[tonic::async_trait]
impl AgentLinkService for FakeLink {
    type OpenLinkStream = ReceiverStream<Result<pb::HubMessage, Status>>;

    async fn open_link(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::OpenLinkStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                let reply = match m.message {
                    Some(pb::agent_message::Message::Hello(_)) => {
                        pb::hub_message::Message::Welcome(pb::HubWelcome {
                            authority: AUTHORITY.into(),
                            heartbeat_interval_seconds: 1,
                        })
                    }
                    Some(pb::agent_message::Message::Heartbeat(h)) => {
                        pb::hub_message::Message::Heartbeat(h)
                    }
                    Some(
                        pb::agent_message::Message::Detail(_)
                        | pb::agent_message::Message::NotificationAck(_),
                    )
                    | None => continue,
                };
                if tx
                    .send(Ok(pb::HubMessage {
                        message: Some(reply),
                    }))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn line(id: &str) -> String {
    format!(
        r#"{{"record_id":"{id}","version":1,"subject":{{"nhs_number":"9434765919"}},"relationship_type":"mental_health","period":{{"start":"2025-01-01"}},"out_of_hours":{{"phone":"0300 000 0000"}},"lawful_basis":{{"article6":"public_task"}},"permitted_purposes":["direct_care"],"residency":"uk"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_publishes_through_an_outage_and_keeps_its_link() {
    kith_core::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let code = AuthorityCode::new(AUTHORITY).unwrap();
    let pki = kith_core::pki::init(
        &dir.path().join("pki"),
        &["localhost".to_string()],
        std::slice::from_ref(&code),
    )
    .unwrap();

    // A live fake hub, and an address where nothing listens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listener.local_addr().unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let server_tls = TlsFiles {
        ca: pki.ca_cert(),
        cert: pki.hub_cert(),
        key: pki.hub_key(),
    }
    .server_config()
    .unwrap();
    let hub = FakeHub::default();
    let (_health, health_service) = tonic_health::server::health_reporter();
    let (stop_hub, hub_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(server_tls)
            .unwrap()
            .add_service(RecordServiceServer::new(hub.clone()))
            .add_service(AgentLinkServiceServer::new(FakeLink))
            .add_service(health_service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = hub_stopped.await;
            }),
    );

    let mut config = AgentConfig::new(
        AUTHORITY,
        vec![format!("https://{dead}"), format!("https://{live}")],
        TlsFiles {
            ca: pki.ca_cert(),
            cert: pki.authority_cert(&code),
            key: pki.authority_key(&code),
        },
        dir.path().join("data"),
        dir.path().join("drop"),
    );
    config.ingest.poll_interval_ms = 50;
    config.publish.backoff_initial_ms = 20;
    config.publish.backoff_max_ms = 200;
    config.hub.connect_timeout_ms = 1000;
    config.link.heartbeat_interval_seconds = 5;

    // The health check finds the live address past the dead one.
    let status = kith_agent::status(&config).await.unwrap();
    assert!(status.hub_reachable, "{status:?}");
    assert_eq!(
        status.hub_address.as_deref(),
        Some(format!("https://{live}").as_str())
    );

    let agent = Agent::start(config.clone()).await.unwrap();
    let body = [line("ok-1"), line("ok-2"), line("bad-1"), line("old-1")].join("\n");
    std::fs::write(dir.path().join("drop/records.jsonl"), body).unwrap();

    // Wait for the watcher to take the file, then for the publisher.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = agent.outbox().stats().await.unwrap();
        if s.pending + s.delivered + s.rejected == 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "file not taken: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent
        .wait_until_drained(Duration::from_secs(20))
        .await
        .unwrap();
    let stats = agent.outbox().stats().await.unwrap();
    assert_eq!((stats.delivered, stats.rejected, stats.pending), (3, 1, 0));
    assert_eq!(
        stats.last_error, None,
        "the later deliveries cleared the error: {stats:?}"
    );
    assert!(
        stats
            .previous_error
            .as_deref()
            .is_some_and(|e| e.contains("warming up")),
        "the first, refused attempt is remembered as the previous error: {stats:?}"
    );
    assert!(
        hub.calls.load(Ordering::SeqCst) >= 2,
        "the batch was retried after Unavailable"
    );
    let bad = &agent.outbox().entries_for("bad-1").await.unwrap()[0];
    assert_eq!(
        bad.reject_reason.as_deref(),
        Some("service: not allowed here")
    );
    let old = &agent.outbox().entries_for("old-1").await.unwrap()[0];
    assert_eq!(old.outcome.as_deref(), Some("stale"));

    // The link is welcomed and heartbeats are answered (the hub asked for 1 s).
    assert!(agent.wait_until_linked(Duration::from_secs(10)).await);
    let mut link = agent.link_state();
    let state = tokio::time::timeout(
        Duration::from_secs(10),
        link.wait_for(|s| s.last_heartbeat_reply.is_some()),
    )
    .await
    .expect("a heartbeat reply")
    .unwrap()
    .clone();
    assert_eq!(state.authority_at_hub.as_deref(), Some(AUTHORITY));
    assert_eq!(
        state.hub_address.as_deref(),
        Some(format!("https://{live}").as_str())
    );

    tokio::time::timeout(Duration::from_secs(10), agent.shutdown())
        .await
        .expect("graceful shutdown");
    let _ = stop_hub.send(());
    let _ = server.await;
}

/// A hub that is up but refuses this agent, as the real hub refuses an
/// authority that is not a federation member. Counts the calls it refuses.
#[derive(Default, Clone)]
struct RefusingHub {
    publishes: Arc<AtomicUsize>,
    links: Arc<AtomicUsize>,
}

const NOT_A_MEMBER: &str = "authority E08000003 is not a member of this federation";

#[tonic::async_trait]
impl RecordService for RefusingHub {
    async fn publish_records(
        &self,
        _: Request<pb::PublishRecordsRequest>,
    ) -> Result<Response<pb::PublishRecordsResponse>, Status> {
        self.publishes.fetch_add(1, Ordering::SeqCst);
        Err(Status::permission_denied(NOT_A_MEMBER))
    }

    async fn end_record(
        &self,
        _: Request<pb::EndRecordRequest>,
    ) -> Result<Response<pb::EndRecordResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }

    async fn withdraw_record(
        &self,
        _: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::WithdrawRecordResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }

    async fn publish_directives(
        &self,
        _: Request<pb::PublishDirectivesRequest>,
    ) -> Result<Response<pb::PublishDirectivesResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }
}

#[tonic::async_trait]
impl AgentLinkService for RefusingHub {
    type OpenLinkStream = ReceiverStream<Result<pb::HubMessage, Status>>;

    async fn open_link(
        &self,
        _: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::OpenLinkStream>, Status> {
        self.links.fetch_add(1, Ordering::SeqCst);
        Err(Status::permission_denied(NOT_A_MEMBER))
    }
}

#[tonic::async_trait]
impl AuditService for RefusingHub {
    async fn get_checkpoint(
        &self,
        _: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }

    async fn get_entries(
        &self,
        _: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }

    async fn get_inclusion_proof(
        &self,
        _: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }

    async fn get_consistency_proof(
        &self,
        _: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }

    async fn list_break_glass(
        &self,
        _: Request<pb::ListBreakGlassRequest>,
    ) -> Result<Response<pb::ListBreakGlassResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }

    async fn review_break_glass(
        &self,
        _: Request<pb::ReviewBreakGlassRequest>,
    ) -> Result<Response<pb::ReviewBreakGlassResponse>, Status> {
        Err(Status::permission_denied(NOT_A_MEMBER))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_agent_backs_off_at_once_and_status_says_it_is_not_authorised() {
    kith_core::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let code = AuthorityCode::new(AUTHORITY).unwrap();
    let pki = kith_core::pki::init(
        &dir.path().join("pki"),
        &["localhost".to_string()],
        std::slice::from_ref(&code),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_tls = TlsFiles {
        ca: pki.ca_cert(),
        cert: pki.hub_cert(),
        key: pki.hub_key(),
    }
    .server_config()
    .unwrap();
    let hub = RefusingHub::default();
    let (_health, health_service) = tonic_health::server::health_reporter();
    let (stop_hub, hub_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(server_tls)
            .unwrap()
            .add_service(RecordServiceServer::new(hub.clone()))
            .add_service(AgentLinkServiceServer::new(hub.clone()))
            .add_service(AuditServiceServer::new(hub.clone()))
            .add_service(health_service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = hub_stopped.await;
            }),
    );

    let mut config = AgentConfig::new(
        AUTHORITY,
        vec![format!("https://{addr}")],
        TlsFiles {
            ca: pki.ca_cert(),
            cert: pki.authority_cert(&code),
            key: pki.authority_key(&code),
        },
        dir.path().join("data"),
        dir.path().join("drop"),
    );
    config.ingest.poll_interval_ms = 50;
    // Ordinary failures would be retried after 20, 40, 80, 160 ... ms.
    config.publish.backoff_initial_ms = 20;
    config.publish.backoff_max_ms = 3_000;
    config.hub.connect_timeout_ms = 1000;

    // Status: the hub answers its health check but refuses this agent.
    let status = kith_agent::status(&config).await.unwrap();
    assert!(status.hub_reachable, "{status:?}");
    assert!(!status.authorised, "{status:?}");
    assert!(!status.is_healthy());
    let why = status.authorisation_error.as_deref().unwrap_or_default();
    assert!(
        why.contains("PermissionDenied") && why.contains("not a member"),
        "{why}"
    );
    assert!(status.to_string().contains("NOT AUTHORISED"), "{status}");

    // Something to publish from the start.
    {
        let outbox = kith_agent::Outbox::open(&config.outbox_path())
            .await
            .unwrap();
        let record = kith_agent::ingest::accept(
            serde_json::from_str(&line("r-1")).unwrap(),
            &code,
            chrono::Utc::now().date_naive(),
        )
        .unwrap();
        outbox.enqueue(&[record]).await.unwrap();
        outbox.close().await;
    }
    let agent = Agent::start(config.clone()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hub.publishes.load(Ordering::SeqCst) == 0 || hub.links.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never called"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // After the first refusal each waits the maximum (3 s) before trying
    // again; with the ordinary backoff there would be five or more tries in
    // this second and a half.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (publishes, links) = (
        hub.publishes.load(Ordering::SeqCst),
        hub.links.load(Ordering::SeqCst),
    );
    assert_eq!(publishes, 1, "publish retried too soon after a refusal");
    assert_eq!(links, 1, "link retried too soon after a refusal");
    let stats = agent.outbox().stats().await.unwrap();
    assert_eq!(stats.pending, 1, "a refused batch stays pending");
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("PermissionDenied")),
        "{stats:?}"
    );
    let link = agent.link_state().borrow().clone();
    assert!(!link.connected);
    assert!(
        link.last_error
            .as_deref()
            .is_some_and(|e| e.contains("PermissionDenied")),
        "{link:?}"
    );

    tokio::time::timeout(Duration::from_secs(10), agent.shutdown())
        .await
        .expect("graceful shutdown while backing off");
    let _ = stop_hub.send(());
    let _ = server.await;
}
