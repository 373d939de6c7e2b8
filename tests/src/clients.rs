//! Raw gRPC clients that speak to the hub exactly as an agent does, and
//! the shortcuts tests use most (publish and expect acceptance, ask a query
//! as an authority, hold an agent link open, send raw bytes).

use super::*;

/// A channel to the hub at `addr` presenting `tls` (mutual TLS).
pub async fn channel(addr: SocketAddr, tls: &TlsFiles) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls.client_config("localhost").expect("tls files"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// A channel that trusts the hub but presents no client certificate.
pub async fn channel_without_certificate(
    addr: SocketAddr,
    ca: &Path,
) -> Result<Channel, tonic::transport::Error> {
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(ca).unwrap(),
        ))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
}

pub fn records_client(ch: Channel) -> pb::record_service_client::RecordServiceClient<Channel> {
    pb::record_service_client::RecordServiceClient::new(ch)
}

pub fn query_client(ch: Channel) -> pb::query_service_client::QueryServiceClient<Channel> {
    pb::query_service_client::QueryServiceClient::new(ch)
}

pub fn subscriptions_client(
    ch: Channel,
) -> pb::subscription_service_client::SubscriptionServiceClient<Channel> {
    pb::subscription_service_client::SubscriptionServiceClient::new(ch)
}

pub fn audit_client(ch: Channel) -> pb::audit_service_client::AuditServiceClient<Channel> {
    pb::audit_service_client::AuditServiceClient::new(ch)
}

/// An agent link opened by hand, to watch what the hub sends an authority.
pub struct LinkProbe {
    outbound: tokio::sync::mpsc::Sender<pb::AgentMessage>,
    inbound: tonic::Streaming<pb::HubMessage>,
}

/// Opens an agent link as the authority `tls` names, says hello as
/// `agent_version`, and waits for the welcome: the sender for what the
/// agent says and the stream of what the hub says.
pub async fn open_agent_link(
    addr: SocketAddr,
    tls: &TlsFiles,
    agent_version: &str,
) -> (
    tokio::sync::mpsc::Sender<pb::AgentMessage>,
    tonic::Streaming<pb::HubMessage>,
) {
    let mut client = pb::agent_link_service_client::AgentLinkServiceClient::new(
        channel(addr, tls).await.expect("channel"),
    );
    let (outbound, rx) = tokio::sync::mpsc::channel(16);
    outbound
        .send(pb::AgentMessage {
            message: Some(pb::agent_message::Message::Hello(pb::AgentHello {
                agent_version: agent_version.into(),
            })),
        })
        .await
        .unwrap();
    let mut inbound = client
        .open_link(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("open link")
        .into_inner();
    match inbound.message().await.expect("welcome") {
        Some(pb::HubMessage {
            message: Some(pb::hub_message::Message::Welcome(_)),
        }) => {}
        other => panic!("expected a welcome, got {other:?}"),
    }
    (outbound, inbound)
}

impl LinkProbe {
    /// Opens the link as the authority `tls` names and waits for the welcome.
    pub async fn open(addr: SocketAddr, tls: &TlsFiles) -> Self {
        let (outbound, inbound) = open_agent_link(addr, tls, "probe").await;
        Self { outbound, inbound }
    }

    /// The next notification the hub sends within `within`, if any.
    pub async fn next_notification(&mut self, within: Duration) -> Option<pb::Notification> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.inbound.message())
                .await
                .ok()?
                .expect("link stream")?;
            if let Some(pb::hub_message::Message::Notification(n)) = message.message {
                return Some(n);
            }
        }
    }

    /// Acknowledges a notification.
    pub async fn ack(&self, notification_id: &str) {
        self.outbound
            .send(pb::AgentMessage {
                message: Some(pb::agent_message::Message::NotificationAck(
                    pb::NotificationAck {
                        notification_id: notification_id.into(),
                    },
                )),
            })
            .await
            .unwrap();
    }
}

/// Publishes `records` as the authority `tls` names and asserts each was
/// accepted.
pub async fn publish_accepted(
    addr: SocketAddr,
    tls: &TlsFiles,
    records: Vec<pb::RelationshipRecord>,
) -> Vec<pb::PublishResult> {
    let mut c = records_client(channel(addr, tls).await.expect("channel"));
    let results = c
        .publish_records(pb::PublishRecordsRequest { records })
        .await
        .expect("publish")
        .into_inner()
        .results;
    for r in &results {
        assert_eq!(
            r.outcome,
            pb::PublishOutcome::Accepted as i32,
            "{}: {:?}",
            r.record_id,
            r.errors
        );
    }
    results
}

/// Sends `request` as the authority `tls` names.
pub async fn ask_as(
    addr: SocketAddr,
    tls: &TlsFiles,
    request: pb::QueryRequest,
) -> Result<pb::QueryResponse, tonic::Status> {
    let mut q = query_client(channel(addr, tls).await.expect("channel"));
    q.query(request).await.map(|r| r.into_inner())
}

/// A request message sent as the bytes given, exactly: for messages no
/// well-behaved client would build (amplified, malformed, oversized),
/// without the client decoding them first.
#[derive(Debug, Default, Clone)]
pub struct RawMessage(pub Vec<u8>);

impl prost::Message for RawMessage {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Sends `bytes` as the request of the unary method at `path` (for example
/// `/kith.v1.RecordService/PublishRecords`) and decodes the answer as `R`.
pub async fn unary_raw<R>(
    channel: Channel,
    path: &'static str,
    bytes: Vec<u8>,
) -> Result<R, tonic::Status>
where
    R: prost::Message + Default + Send + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<RawMessage, R>::default();
    grpc.unary(
        tonic::Request::new(RawMessage(bytes)),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// The people the console tests search for, published to the hub at
/// `addr`: for `nhs`, Council A's child protection plan whose service field
/// is hostile markup (`<script>`) and the trust's mental health record,
/// not shared for safeguarding (so withheld with its reason); for each of
/// `more`, another child protection plan.
pub async fn publish_console_people(addr: SocketAddr, t: &TestDir, nhs: &str, more: &[String]) {
    let plan = |id: String, subject: &str| {
        let mut r = record_wire(
            COUNCIL_A,
            &id,
            1,
            subject,
            "child_protection_plan",
            &["safeguarding", "direct_care", "emergency"],
        );
        r.provenance.as_mut().unwrap().content_hash.clear();
        r
    };
    let mut cpp = plan("cpp-1".into(), nhs);
    cpp.service = "<script>alert('x')</script> Children's Services".into();
    let mut plans = vec![cpp];
    plans.extend(
        more.iter()
            .enumerate()
            .map(|(i, s)| plan(format!("cpp-more-{i}"), s)),
    );
    publish_accepted(addr, &t.agent_tls(COUNCIL_A), plans).await;
    let mut mh = record_wire(
        TRUST_C,
        "mh-1",
        1,
        nhs,
        "mental_health",
        &["direct_care", "care_planning"],
    );
    mh.provenance.as_mut().unwrap().content_hash.clear();
    publish_accepted(addr, &t.agent_tls(TRUST_C), vec![mh]).await;
}
