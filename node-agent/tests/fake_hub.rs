//! The agent against an in-process fake hub over real mutual TLS: publish
//! outcomes, a retried outage, failover past a dead address, directives
//! after their records, the link, notifications stored, delivered and
//! acknowledged, and a hub that refuses the agent.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_agent::notifications::NotificationStore;
use kith_agent::{Agent, AgentConfig};
use kith_core::identity::AuthorityCode;
use kith_core::pki::PkiLayout;
use kith_core::tls::TlsFiles;
use kith_proto::v1 as pb;
use pb::agent_link_service_server::{AgentLinkService, AgentLinkServiceServer};
use pb::audit_service_server::{AuditService, AuditServiceServer};
use pb::record_service_server::{RecordService, RecordServiceServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::server::Router;
use tonic::{Request, Response, Status, Streaming};

const AUTHORITY: &str = "E08000003";

/// A development PKI for the hub and this one authority.
fn pki(dir: &Path) -> (PkiLayout, AuthorityCode) {
    kith_core::tls::install_crypto_provider();
    let code = AuthorityCode::new(AUTHORITY).unwrap();
    let pki = kith_core::pki::init(
        &dir.join("pki"),
        &["localhost".to_string()],
        std::slice::from_ref(&code),
    )
    .unwrap();
    (pki, code)
}

/// A fake hub serving `services` over mutual TLS on `listener`; send on the
/// returned sender to stop it.
fn serve(
    pki: &PkiLayout,
    listener: tokio::net::TcpListener,
    services: impl FnOnce(&mut tonic::transport::Server) -> Router,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let tls = TlsFiles {
        ca: pki.ca_cert(),
        cert: pki.hub_cert(),
        key: pki.hub_key(),
    }
    .server_config()
    .unwrap();
    let mut server = tonic::transport::Server::builder().tls_config(tls).unwrap();
    let (_health, health_service) = tonic_health::server::health_reporter();
    let router = services(&mut server).add_service(health_service);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = router
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    (stop, task)
}

/// An agent config for this authority against `addresses`, with short
/// delays.
fn agent_config(
    dir: &Path,
    pki: &PkiLayout,
    code: &AuthorityCode,
    addresses: &[SocketAddr],
) -> AgentConfig {
    let mut config = AgentConfig::new(
        AUTHORITY,
        addresses.iter().map(|a| format!("https://{a}")).collect(),
        TlsFiles {
            ca: pki.ca_cert(),
            cert: pki.authority_cert(code),
            key: pki.authority_key(code),
        },
        dir.join("data"),
        dir.join("drop"),
    );
    config.ingest.poll_interval_ms = 50;
    config.publish.backoff_initial_ms = 20;
    config.publish.backoff_max_ms = 200;
    config.hub.connect_timeout_ms = 1000;
    config
}

/// Waits until `done` holds, failing with `what` after 20 seconds.
async fn eventually<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Default, Clone)]
struct FakeHub {
    calls: Arc<AtomicUsize>,
    /// Record ids the hub holds.
    known: Arc<Mutex<HashSet<String>>>,
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
                    self.known.lock().unwrap().insert(r.record_id.clone());
                    (pb::PublishOutcome::Stale, vec![])
                } else {
                    self.known.lock().unwrap().insert(r.record_id.clone());
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

    /// Holds one record, asc-1 of this authority, and checks the date.
    async fn end_record(
        &self,
        request: Request<pb::EndRecordRequest>,
    ) -> Result<Response<pb::EndRecordResponse>, Status> {
        let r = request.into_inner();
        holds(r.record.as_ref())?;
        if r.end.parse::<chrono::NaiveDate>().is_err() {
            return Err(Status::invalid_argument(format!(
                "end: {:?} is not a date",
                r.end
            )));
        }
        Ok(Response::new(pb::EndRecordResponse { audit_index: 41 }))
    }

    async fn withdraw_record(
        &self,
        request: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::WithdrawRecordResponse>, Status> {
        let r = request.into_inner();
        holds(r.record.as_ref())?;
        if r.reason != pb::WithdrawReason::EnteredInError as i32 {
            return Err(Status::invalid_argument(
                "reason: this fake takes entered_in_error only",
            ));
        }
        Ok(Response::new(pb::WithdrawRecordResponse {
            audit_index: 42,
        }))
    }

    /// As the hub: a directive for a record it does not hold is refused.
    async fn publish_directives(
        &self,
        request: Request<pb::PublishDirectivesRequest>,
    ) -> Result<Response<pb::PublishDirectivesResponse>, Status> {
        let known = self.known.lock().unwrap().clone();
        let results = request
            .into_inner()
            .directives
            .into_iter()
            .map(|d| {
                let refuse = |field: &str, reason: String| {
                    (
                        pb::PublishOutcome::Rejected,
                        vec![pb::FieldError {
                            field: field.into(),
                            reason,
                        }],
                    )
                };
                let (outcome, errors) = if d.directive_id.starts_with("bad") {
                    refuse("grantor", "not accepted here".into())
                } else if !known.contains(&d.record_id) {
                    refuse(
                        "record_id",
                        format!("the hub holds no record {}", d.record_id),
                    )
                } else {
                    (pb::PublishOutcome::Accepted, vec![])
                };
                pb::DirectiveResult {
                    directive_id: d.directive_id,
                    version: d.version,
                    outcome: outcome as i32,
                    errors,
                    audit_index: 2,
                }
            })
            .collect();
        Ok(Response::new(pb::PublishDirectivesResponse { results }))
    }
}

/// The fake hub holds one record: asc-1 of this authority.
fn holds(record: Option<&pb::RecordRef>) -> Result<(), Status> {
    let record = record.ok_or_else(|| Status::invalid_argument("record: is required"))?;
    if record.custodian != AUTHORITY {
        return Err(Status::permission_denied("not the caller's record"));
    }
    if record.record_id != "asc-1" {
        return Err(Status::not_found(format!(
            "no active record {} of {}",
            record.record_id, record.custodian
        )));
    }
    Ok(())
}

/// Break glass to review: one access, q-7, until it is reviewed.
#[derive(Default, Clone)]
struct FakeAudit {
    reviews: Arc<Mutex<Vec<pb::ReviewBreakGlassRequest>>>,
}

#[tonic::async_trait]
impl AuditService for FakeAudit {
    async fn get_checkpoint(
        &self,
        _: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_entries(
        &self,
        _: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_inclusion_proof(
        &self,
        _: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_consistency_proof(
        &self,
        _: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_break_glass(
        &self,
        request: Request<pb::ListBreakGlassRequest>,
    ) -> Result<Response<pb::ListBreakGlassResponse>, Status> {
        let r = request.into_inner();
        if r.acting_user.as_ref().map(|u| u.role.as_str()) != Some("auditor") {
            return Err(Status::permission_denied("role auditor only"));
        }
        let reviewed = !self.reviews.lock().unwrap().is_empty();
        let access = pb::BreakGlassAccess {
            query_id: "q-7".into(),
            audit_index: 12,
            user: Some(pb::ActingUser {
                user_id: "para-1".into(),
                role: "paramedic".into(),
                ..Default::default()
            }),
            subject: "9434765919".into(),
            reason_code: "life_threatening".into(),
            justification: "unconscious at scene".into(),
            occurred_at: "2026-03-01T10:00:00Z".into(),
            expires_at: "2026-03-01T14:00:00Z".into(),
            reviewed,
            ..Default::default()
        };
        let accesses = if reviewed && !r.include_reviewed {
            vec![]
        } else {
            vec![access]
        };
        Ok(Response::new(pb::ListBreakGlassResponse { accesses }))
    }

    async fn review_break_glass(
        &self,
        request: Request<pb::ReviewBreakGlassRequest>,
    ) -> Result<Response<pb::ReviewBreakGlassResponse>, Status> {
        let r = request.into_inner();
        if r.query_id != "q-7" {
            return Err(Status::not_found(format!(
                "no break-glass access {}",
                r.query_id
            )));
        }
        self.reviews.lock().unwrap().push(r);
        Ok(Response::new(pb::ReviewBreakGlassResponse {
            audit_index: 43,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_ended_and_withdrawn_and_break_glass_reviewed() {
    use kith_agent::audit::Auditor;
    use kith_agent::audit::break_glass::{self, ReviewOutcome};
    use kith_agent::lifecycle::{Change, LifecycleError, change_record};

    let dir = tempfile::tempdir().unwrap();
    let (pki, code) = pki(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let audit = FakeAudit::default();
    let (stop_hub, server) = serve(&pki, listener, |s| {
        s.add_service(RecordServiceServer::new(FakeHub::default()))
            .add_service(AuditServiceServer::new(audit.clone()))
    });
    let config = agent_config(dir.path(), &pki, &code, &[addr]);

    let on = "2026-02-28".parse().unwrap();
    assert_eq!(
        change_record(&config, "asc-1", Change::End(on))
            .await
            .unwrap(),
        41
    );
    let withdrawn = change_record(
        &config,
        "asc-1",
        Change::Withdraw(kith_core::WithdrawReason::EnteredInError),
    )
    .await
    .unwrap();
    assert_eq!(withdrawn, 42);
    let err = change_record(&config, "asc-404", Change::End(on))
        .await
        .unwrap_err();
    assert!(matches!(err, LifecycleError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("the hub holds no active record asc-404 of E08000003"),
        "{err}"
    );
    let err = change_record(
        &config,
        "asc-1",
        Change::Withdraw(kith_core::WithdrawReason::NoLongerShared),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, LifecycleError::InvalidArgument { .. }),
        "{err}"
    );

    // Break glass: listed, reviewed (the review reaches the hub whole), then
    // no longer awaiting review.
    let auditor = Auditor::new("dpo", "auditor");
    let waiting = break_glass::list(&config, auditor.clone(), false)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (
            waiting[0].query_id.as_str(),
            waiting[0].reason_code.as_str()
        ),
        ("q-7", "life_threatening")
    );
    let index = break_glass::review(
        &config,
        auditor.clone(),
        "q-7",
        ReviewOutcome::Inappropriate,
        " no emergency found ",
    )
    .await
    .unwrap();
    assert_eq!(index, 43);
    let review = audit.reviews.lock().unwrap()[0].clone();
    assert_eq!(
        review.outcome,
        pb::BreakGlassReviewOutcome::Inappropriate as i32
    );
    assert_eq!(review.note, "no emergency found");
    assert_eq!(review.acting_user.unwrap().user_id, "dpo");
    assert!(
        break_glass::list(&config, auditor.clone(), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        break_glass::list(&config, auditor.clone(), true)
            .await
            .unwrap()[0]
            .reviewed
    );
    let err = break_glass::review(
        &config,
        auditor.clone(),
        "q-8",
        ReviewOutcome::Appropriate,
        "fine",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    let err = break_glass::list(&config, Auditor::new("sw", "social_worker"), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::PermissionDenied));

    let _ = stop_hub.send(());
    let _ = server.await;
}

/// The link: welcomes, answers heartbeats, and sends `notifications` after
/// the welcome (each twice, as a hub resending unacknowledged ones would),
/// keeping the acknowledgements it gets.
#[derive(Default, Clone)]
struct FakeLink {
    notifications: Vec<pb::Notification>,
    acks: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl AgentLinkService for FakeLink {
    type OpenLinkStream = ReceiverStream<Result<pb::HubMessage, Status>>;

    async fn open_link(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::OpenLinkStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let link = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                let mut replies = match m.message {
                    Some(pb::agent_message::Message::Hello(_)) => {
                        vec![pb::hub_message::Message::Welcome(pb::HubWelcome {
                            authority: AUTHORITY.into(),
                            heartbeat_interval_seconds: 1,
                        })]
                    }
                    Some(pb::agent_message::Message::Heartbeat(h)) => {
                        vec![pb::hub_message::Message::Heartbeat(h)]
                    }
                    Some(pb::agent_message::Message::NotificationAck(ack)) => {
                        link.acks.lock().unwrap().push(ack.notification_id);
                        continue;
                    }
                    Some(pb::agent_message::Message::Detail(_)) | None => continue,
                };
                if matches!(replies[0], pb::hub_message::Message::Welcome(_)) {
                    for n in &link.notifications {
                        replies.push(pb::hub_message::Message::Notification(n.clone()));
                        replies.push(pb::hub_message::Message::Notification(n.clone()));
                    }
                }
                for reply in replies {
                    if tx
                        .send(Ok(pb::HubMessage {
                            message: Some(reply),
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn line(id: &str) -> String {
    format!(
        r#"{{"record_id":"{id}","version":1,"subject":{{"nhs_number":"9434765919"}},"relationship_type":"mental_health","sensitivity":"normal","period":{{"start":"2025-01-01"}},"out_of_hours":{{"phone":"0300 000 0000"}},"lawful_basis":{{"article6":"public_task"}},"permitted_purposes":["direct_care"],"residency":"uk"}}"#
    )
}

fn directive(id: &str, record: &str) -> String {
    format!(
        r#"{{"directive_id":"{id}","version":1,"record_id":"{record}","kind":"objection","period":{{"start":"2025-01-01"}},"grantor":"the person","recorded_at":"2025-06-01T09:00:00Z"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_publishes_through_an_outage_and_keeps_its_link() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, code) = pki(dir.path());

    // A live fake hub, and an address where nothing listens.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listener.local_addr().unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let hub = FakeHub::default();
    let (stop_hub, server) = serve(&pki, listener, |s| {
        s.add_service(RecordServiceServer::new(hub.clone()))
            .add_service(AgentLinkServiceServer::new(FakeLink::default()))
    });

    let mut config = agent_config(dir.path(), &pki, &code, &[dead, live]);
    config.link.heartbeat_interval_seconds = 5;

    // The health check finds the live address past the dead one.
    let status = kith_agent::status(&config).await.unwrap();
    assert!(status.hub_reachable, "{status:?}");
    assert_eq!(
        status.hub_address.as_deref(),
        Some(format!("https://{live}").as_str())
    );

    let agent = Agent::start(config.clone()).await.unwrap();
    // Directives dropped with their records, in a file whose name sorts
    // first: they still reach the hub after the records.
    let directives = [
        directive("d-1", "ok-1"),
        directive("bad-d", "ok-2"),
        directive("d-3", "bad-1"),
    ];
    std::fs::write(
        dir.path().join("drop/a.directives.jsonl"),
        directives.join("\n"),
    )
    .unwrap();
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

    // The directives: the one for a held record accepted, the others refused
    // with the hub's reasons, which status shows.
    let outbox = agent.outbox().clone();
    eventually("directives delivered", || {
        let outbox = outbox.clone();
        async move { outbox.stats().await.unwrap().directives.pending == 0 }
    })
    .await;
    let d = agent.outbox().stats().await.unwrap().directives;
    assert_eq!((d.delivered, d.rejected), (1, 2), "{d:?}");
    let status = kith_agent::status(&config).await.unwrap();
    let text = status.to_string();
    assert!(
        text.contains("directives     0 pending, 1 delivered, 2 rejected"),
        "{text}"
    );
    assert!(
        text.contains("directive d-3 version 1 (record bad-1)")
            && text.contains("record_id: the hub holds no record bad-1"),
        "{text}"
    );
    assert!(text.contains("grantor: not accepted here"), "{text}");

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

/// A loopback HTTP server that answers 500 to the first `failures`
/// requests and 204 after, keeping each request's status and body.
async fn webhook_server(failures: usize) -> (SocketAddr, Arc<Mutex<Vec<(u16, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then as much body as Content-Length says.
            let body = loop {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break Some(
                            String::from_utf8_lossy(&request[end + 4..end + 4 + length])
                                .to_string(),
                        );
                    }
                }
            };
            let Some(body) = body else { continue };
            let status = if log.lock().unwrap().len() < failures {
                500
            } else {
                204
            };
            log.lock().unwrap().push((status, body));
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_stored_delivered_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, code) = pki(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut access = pb::Notification {
        notification_id: "n-1".into(),
        kind: pb::NotificationKind::Access as i32,
        occurred_at: "2026-03-01T10:00:00Z".into(),
        record: Some(pb::RecordRef {
            custodian: AUTHORITY.into(),
            record_id: "cpp-1".into(),
        }),
        accessor_authority: "R0A".into(),
        accessor: Some(pb::ActingUser {
            user_id: "a.rahman".into(),
            role: "ed_clinician".into(),
            ..Default::default()
        }),
        purpose: pb::Purpose::Emergency as i32,
        level: pb::DisclosureLevel::Summary as i32,
        query_id: "q-1".into(),
        audit_index: 9,
        ..Default::default()
    };
    let revocation = pb::Notification {
        notification_id: "n-2".into(),
        kind: pb::NotificationKind::Revocation as i32,
        reason: "entered_in_error".into(),
        record: Some(pb::RecordRef {
            custodian: "E08000006".into(),
            record_id: "lac-7".into(),
        }),
        ..access.clone()
    };
    let no_id = pb::Notification {
        notification_id: String::new(),
        ..access.clone()
    };
    access.relationship_type = pb::RelationshipType::ChildProtectionPlan as i32;
    let link = FakeLink {
        notifications: vec![access, no_id, revocation],
        acks: Arc::default(),
    };
    let (stop_hub, server) = serve(&pki, listener, |s| {
        s.add_service(AgentLinkServiceServer::new(link.clone()))
            .add_service(RecordServiceServer::new(FakeHub::default()))
    });

    // The webhook fails its first POST: the agent must retry it.
    let (webhook, posts) = webhook_server(1).await;
    let mut config = agent_config(dir.path(), &pki, &code, &[addr]);
    config.notifications.file = Some(dir.path().join("notifications.jsonl"));
    config.notifications.webhook = Some(format!("http://{webhook}/kith"));
    let agent = Agent::start(config.clone()).await.unwrap();

    let acks = link.acks.clone();
    eventually("both notifications acknowledged", || {
        let acks = acks.clone();
        async move {
            let acks = acks.lock().unwrap();
            acks.contains(&"n-1".to_string()) && acks.contains(&"n-2".to_string())
        }
    })
    .await;
    eventually("the webhook took both", || {
        let posts = posts.clone();
        async move {
            posts
                .lock()
                .unwrap()
                .iter()
                .filter(|(s, _)| *s == 204)
                .count()
                == 2
        }
    })
    .await;
    // Give a wrong extra delivery time to show itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        link.acks.lock().unwrap().iter().all(|id| !id.is_empty()),
        "a notification without an id is never acknowledged"
    );

    // Stored once each, though sent twice.
    let store = NotificationStore::new(agent.outbox());
    let stored = store.list(None, 10).await.unwrap();
    let ids: Vec<&str> = stored.iter().map(|n| n.notification_id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"n-1") && ids.contains(&"n-2"));
    let revoked = store
        .list(
            Some(kith_agent::notifications::NotificationKind::Revocation),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        revoked[0].message,
        "record lac-7 of custodian E08000006 was revoked (entered_in_error): stop relying on it"
    );

    // The file has one line each; the webhook one success each (after one
    // failure), and the bodies are the stored JSON.
    let file = std::fs::read_to_string(dir.path().join("notifications.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut file_ids: Vec<&str> = lines
        .iter()
        .map(|l| l["notification_id"].as_str().unwrap())
        .collect();
    file_ids.sort();
    assert_eq!(file_ids, ["n-1", "n-2"]);
    assert_eq!(
        lines
            .iter()
            .find(|l| l["notification_id"] == "n-1")
            .unwrap()["relationship_type"],
        "child_protection_plan"
    );
    let posts = posts.lock().unwrap().clone();
    assert_eq!(
        posts.iter().filter(|(s, _)| *s == 500).count(),
        1,
        "{posts:?}"
    );
    let delivered: Vec<serde_json::Value> = posts
        .iter()
        .filter(|(s, _)| *s == 204)
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(delivered.len(), 2, "each delivered once: {posts:?}");
    assert!(
        delivered
            .iter()
            .any(|n| n["kind"] == "revocation" && n["record_id"] == "lac-7")
    );
    assert!(
        delivered
            .iter()
            .any(|n| n["kind"] == "access" && n["accessor_authority"] == "R0A")
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
    let dir = tempfile::tempdir().unwrap();
    let (pki, code) = pki(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = RefusingHub::default();
    let (stop_hub, server) = serve(&pki, listener, |s| {
        s.add_service(RecordServiceServer::new(hub.clone()))
            .add_service(AgentLinkServiceServer::new(hub.clone()))
            .add_service(AuditServiceServer::new(hub.clone()))
    });
    let mut config = agent_config(dir.path(), &pki, &code, &[addr]);
    // Ordinary failures would be retried after 20, 40, 80, 160 ... ms.
    config.publish.backoff_max_ms = 3_000;

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
