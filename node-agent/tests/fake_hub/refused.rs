//! A hub that refuses this agent: the agent backs off at once and its
//! status says it is not authorised.

use super::outage::line;
use super::*;

/// A hub that is up but refuses this agent, as the real hub refuses an
/// authority that is not a federation member. Counts the calls it refuses.
#[derive(Default, Clone)]
pub(crate) struct RefusingHub {
    pub(crate) publishes: Arc<AtomicUsize>,
    pub(crate) links: Arc<AtomicUsize>,
}

pub(crate) const NOT_A_MEMBER: &str = "authority E08000003 is not a member of this federation";

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
pub(crate) async fn a_refused_agent_backs_off_at_once_and_status_says_it_is_not_authorised() {
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
