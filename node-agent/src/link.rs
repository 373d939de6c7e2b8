//! The agent's long-lived outbound link to the hub.
//!
//! Agents only ever dial out, so the hub can reach an agent only over a
//! stream the agent keeps open: `AgentLinkService/OpenLink`. The agent says
//! hello first, then sends a heartbeat every interval; the hub welcomes it and
//! answers each heartbeat. If the stream drops, or the hub goes quiet for
//! three intervals, the agent reconnects with backoff, failing over between
//! hub addresses. A hub that refuses the agent itself (PermissionDenied,
//! Unauthenticated) is retried only at the longest backoff.
//!
//! The link's health is published through a `tokio::sync::watch` channel as
//! [`LinkState`], for `status` and for tests. Each message the hub sends is
//! one arm of the match in the session loop or [`Link::handle`].
//!
//! A `Notification` is stored in the agent's database and offered to the
//! operator's sinks ([`crate::notify`]) in its own task; only once it is
//! stored does the agent send `NotificationAck` with its id. One that could
//! not be stored is not acknowledged, so the hub sends it again on the next
//! link.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kith_proto::v1 as pb;
use pb::agent_link_service_client::AgentLinkServiceClient;
use pb::agent_message::Message as AgentMsg;
use pb::hub_message::Message as HubMsg;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval};
use tokio_stream::wrappers::ReceiverStream;

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::detail::DetailResponder;
use crate::hub_client::{HubConnector, HubError, describe, is_refusal};
use crate::notify::Notifier;

/// The agent's software version, sent in its hello.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the link stands, as last observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    /// True from the hub's welcome until the stream drops.
    pub connected: bool,
    pub hub_address: Option<String>,
    pub connected_since: Option<DateTime<Utc>>,
    /// The authority the hub read from this agent's certificate.
    pub authority_at_hub: Option<String>,
    pub last_heartbeat_reply: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Welcomes received since the agent started.
    pub sessions: u64,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("OpenLink failed: {0:?}: {1}")]
    Status(tonic::Code, String),
    #[error("the hub closed the link")]
    Closed,
    #[error("the hub has been silent for {0:?}")]
    Silent(Duration),
}

/// Keeps the link open.
pub struct Link {
    hub: HubConnector,
    responder: Option<Arc<DetailResponder>>,
    notifier: Option<Arc<Notifier>>,
    authority: String,
    heartbeat: Duration,
    backoff: Backoff,
    state: watch::Sender<LinkState>,
}

fn heartbeat_message() -> pb::AgentMessage {
    pb::AgentMessage {
        message: Some(AgentMsg::Heartbeat(pb::Heartbeat {
            sent_at_unix_ms: Utc::now().timestamp_millis(),
        })),
    }
}

fn every(period: Duration) -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

impl Link {
    /// Prepares the link; nothing is dialled until [`Link::run`].
    /// Each connection it dials uses `tls` as it stands at that moment.
    pub fn new(
        config: &AgentConfig,
        tls: crate::tls::HubTls,
    ) -> Result<(Self, watch::Receiver<LinkState>), HubError> {
        let (state, receiver) = watch::channel(LinkState::default());
        let link = Self {
            // No request deadline: the stream is meant to stay open.
            hub: HubConnector::with_tls(config, None, tls)?,
            responder: None,
            notifier: None,
            authority: config.authority.clone(),
            heartbeat: config.heartbeat_interval(),
            backoff: Backoff::new(
                Duration::from_millis(config.publish.backoff_initial_ms),
                Duration::from_millis(config.publish.backoff_max_ms),
            ),
            state,
        };
        Ok((link, receiver))
    }

    /// Answers the hub's detail requests with `responder`; without one
    /// every request is refused.
    pub fn with_responder(mut self, responder: Arc<DetailResponder>) -> Self {
        self.responder = Some(responder);
        self
    }

    /// Stores and delivers the hub's notifications with `notifier`; without
    /// one none is acknowledged.
    pub fn with_notifier(mut self, notifier: Arc<Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Keeps the link open until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.session(&mut shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    let message = match &e {
                        SessionError::Hub(h) => describe(h),
                        other => other.to_string(),
                    };
                    let delay = match &e {
                        SessionError::Status(code, _) if is_refusal(*code) => {
                            let delay = self.backoff.refused();
                            tracing::error!(error = %message, retry_in_ms = delay.as_millis() as u64,
                                "the hub refuses this agent's link; retrying at the longest backoff (check the certificate and the federation's member list)");
                            delay
                        }
                        _ => {
                            let delay = self.backoff.next_delay();
                            tracing::warn!(error = %message, retry_in_ms = delay.as_millis() as u64, "hub link down; reconnecting");
                            delay
                        }
                    };
                    self.state.send_modify(|s| {
                        s.connected = false;
                        s.connected_since = None;
                        s.last_error = Some(message);
                        s.last_error_at = Some(Utc::now());
                    });
                    self.hub.fail_over();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = crate::agent::stopped(&mut shutdown) => break,
                    }
                }
            }
        }
        self.state.send_modify(|s| {
            s.connected = false;
            s.connected_since = None;
        });
        tracing::info!("hub link closed");
    }

    /// One stream, from hello to its end. `Ok` only when asked to stop.
    async fn session(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), SessionError> {
        let (address, channel) = self.hub.channel().await?;
        let (outbound, rx) = mpsc::channel::<pb::AgentMessage>(16);
        let hello = pb::AgentMessage {
            message: Some(AgentMsg::Hello(pb::AgentHello {
                agent_version: AGENT_VERSION.to_string(),
            })),
        };
        outbound
            .send(hello)
            .await
            .map_err(|_| SessionError::Closed)?;
        let mut inbound = AgentLinkServiceClient::new(channel)
            .open_link(ReceiverStream::new(rx))
            .await
            .map_err(|s| SessionError::Status(s.code(), s.message().to_string()))?
            .into_inner();
        tracing::debug!(hub = %address, "link stream open");

        let mut heartbeat = self.heartbeat;
        let mut ticker = every(heartbeat);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                _ = crate::agent::stopped(shutdown) => return Ok(()),
                _ = ticker.tick() => {
                    let silent = last_heard.elapsed();
                    if silent > heartbeat * 3 {
                        return Err(SessionError::Silent(silent));
                    }
                    outbound.send(heartbeat_message()).await.map_err(|_| SessionError::Closed)?;
                }
                message = inbound.message() => match message {
                    Ok(Some(pb::HubMessage { message: Some(HubMsg::DetailRequest(request)) })) => {
                        last_heard = Instant::now();
                        self.answer_detail(request, outbound.clone());
                    }
                    Ok(Some(pb::HubMessage { message: Some(HubMsg::Notification(notification)) })) => {
                        last_heard = Instant::now();
                        self.take_notification(notification, outbound.clone());
                    }
                    Ok(Some(message)) => {
                        last_heard = Instant::now();
                        if let Some(wanted) = self.handle(message, &address)
                            && wanted < heartbeat
                        {
                            heartbeat = wanted;
                            ticker = every(heartbeat);
                        }
                    }
                    Ok(None) => return Err(SessionError::Closed),
                    Err(s) => return Err(SessionError::Status(s.code(), s.message().to_string())),
                },
            }
        }
    }

    /// Answers a detail request in its own task, so a slow outbox never
    /// holds up heartbeats.
    fn answer_detail(&self, request: pb::DetailRequest, outbound: mpsc::Sender<pb::AgentMessage>) {
        let responder = self.responder.clone();
        // The query's trace, carried by the request: this span joins it.
        let span = tracing::info_span!("kith.detail", otel.kind = "server");
        kith_ops::telemetry::parent_from_traceparent(&request.traceparent, &span);
        let answer = async move {
            let response = match responder {
                Some(r) => r.answer(request).await,
                None => pb::DetailResponse {
                    request_id: request.request_id,
                    result: Some(pb::detail_response::Result::Refused(
                        "this agent does not answer detail requests".into(),
                    )),
                },
            };
            let _ = outbound
                .send(pb::AgentMessage {
                    message: Some(AgentMsg::Detail(response)),
                })
                .await;
        };
        tokio::spawn(tracing::Instrument::instrument(answer, span));
    }

    /// Stores a notification, offers it to the sinks and then acknowledges
    /// it, in its own task (a slow webhook never holds up heartbeats).
    fn take_notification(
        &self,
        notification: pb::Notification,
        outbound: mpsc::Sender<pb::AgentMessage>,
    ) {
        let Some(notifier) = self.notifier.clone() else {
            tracing::warn!(notification_id = %notification.notification_id,
                "notification from the hub not taken: this agent keeps no notifications; it is not acknowledged");
            return;
        };
        tokio::spawn(async move {
            let id = notification.notification_id.clone();
            match notifier.receive(notification).await {
                Ok(notification_id) => {
                    let ack = pb::AgentMessage {
                        message: Some(AgentMsg::NotificationAck(pb::NotificationAck {
                            notification_id,
                        })),
                    };
                    // A closed link loses only the ack: the hub resends and
                    // the store ignores the copy.
                    let _ = outbound.send(ack).await;
                }
                Err(e) => {
                    tracing::error!(notification_id = %id, error = %e,
                        "cannot keep a notification from the hub; not acknowledged, the hub will resend it");
                }
            }
        });
    }

    /// Acts on one message from the hub. Returns the heartbeat interval the
    /// hub asks for, when it says.
    fn handle(&mut self, message: pb::HubMessage, address: &str) -> Option<Duration> {
        match message.message {
            Some(HubMsg::Welcome(welcome)) => {
                if welcome.authority != self.authority {
                    tracing::error!(hub_says = %welcome.authority, config_says = %self.authority,
                        "the hub reads a different authority from this agent's certificate");
                }
                tracing::info!(hub = %address, authority = %welcome.authority, "hub link up");
                self.backoff.reset();
                let now = Utc::now();
                self.state.send_modify(|s| {
                    s.connected = true;
                    s.hub_address = Some(address.to_string());
                    s.connected_since = Some(now);
                    s.authority_at_hub = Some(welcome.authority.clone());
                    s.sessions += 1;
                });
                (welcome.heartbeat_interval_seconds > 0)
                    .then(|| Duration::from_secs(u64::from(welcome.heartbeat_interval_seconds)))
            }
            Some(HubMsg::Heartbeat(_)) => {
                let now = Utc::now();
                self.state
                    .send_modify(|s| s.last_heartbeat_reply = Some(now));
                None
            }
            Some(HubMsg::DetailRequest(_) | HubMsg::Notification(_)) | None => {
                tracing::debug!("hub sent a message this agent does not understand; ignoring");
                None
            }
        }
    }
}
