//! `kith.v1.AgentLinkService`: the stream each agent keeps open to the hub.
//!
//! Agents only dial out, so this stream is the hub's only way to reach one.
//! It carries the hello/welcome exchange, heartbeats, and the hub's requests
//! for the detail of records held at source ([`Links`] implements
//! [`DetailSource`] over it). A stream silent for three heartbeat intervals
//! is closed; closing [`Links`] ends every stream, so a graceful shutdown is
//! not held up by streams that would otherwise never finish.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::Stream;
use kith_core::Record;
use kith_proto::v1 as pb;
use pb::agent_link_service_server::AgentLinkService;
use pb::{agent_message, detail_response, hub_message};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::caller;
use crate::detail::{DetailError, DetailRequest, DetailSource};
use crate::hub::Hub;
use kith_policy::Level;

use crate::notify::{Notification, RESEND_INTERVAL};

type Outbound = mpsc::Sender<Result<pb::HubMessage, Status>>;

/// An open link: when it opened and was last heard from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub connected_at: DateTime<Utc>,
    pub last_heard: DateTime<Utc>,
    pub agent_version: String,
}

struct Open {
    session: u64,
    info: LinkInfo,
    outbound: Outbound,
}

/// The open links, and the detail requests waiting for an answer.
///
/// An authority may have several links open at once (a restarted agent
/// whose old stream has not timed out yet, a second agent process, a
/// duplicate): each is kept until it closes. Detail requests go to the live
/// link heard from most recently; notifications go out on one link at a
/// time, the newest (see [`Links::delivers`]), and an acknowledgement on any
/// of them counts.
pub struct Links {
    open: Mutex<HashMap<String, Vec<Open>>>,
    /// Request id → (the custodian asked, where its answer goes).
    pending: Mutex<HashMap<String, (String, oneshot::Sender<pb::DetailResponse>)>>,
    sessions: AtomicU64,
    closing: watch::Sender<bool>,
    /// Bumped whenever a link opens or closes, so that notification
    /// delivery moves to another link when the one carrying it closes.
    changed: watch::Sender<u64>,
    detail_timeout: Duration,
}

impl Links {
    /// Links whose detail requests wait at most `detail_timeout`.
    pub fn new(detail_timeout: Duration) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            sessions: AtomicU64::new(0),
            closing: watch::channel(false).0,
            changed: watch::channel(0).0,
            detail_timeout,
        }
    }

    /// The open link of `authority` heard from most recently, if any.
    pub fn get(&self, authority: &str) -> Option<LinkInfo> {
        lock(&self.open).get(authority).and_then(|links| {
            links
                .iter()
                .filter(|o| !o.outbound.is_closed())
                .max_by_key(|o| (o.info.last_heard, o.session))
                .map(|o| o.info.clone())
        })
    }

    /// How many links `authority` has open.
    pub fn count(&self, authority: &str) -> usize {
        lock(&self.open).get(authority).map_or(0, Vec::len)
    }

    /// How many links are open, all authorities together.
    pub fn open_count(&self) -> usize {
        lock(&self.open).values().map(Vec::len).sum()
    }

    /// Ends every open link (agents reconnect to another replica, or later).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    fn register(&self, authority: &str, info: LinkInfo, outbound: Outbound) -> u64 {
        let session = self.sessions.fetch_add(1, Ordering::Relaxed);
        lock(&self.open)
            .entry(authority.to_string())
            .or_default()
            .push(Open {
                session,
                info,
                outbound,
            });
        self.changed.send_modify(|n| *n += 1);
        session
    }

    fn heard(&self, authority: &str, session: u64) {
        if let Some(open) = lock(&self.open)
            .get_mut(authority)
            .and_then(|links| links.iter_mut().find(|o| o.session == session))
        {
            open.info.last_heard = Utc::now();
        }
    }

    /// Forgets the link `session` of `authority`, and only that one.
    fn forget(&self, authority: &str, session: u64) {
        let mut open = lock(&self.open);
        if let Some(links) = open.get_mut(authority) {
            links.retain(|o| o.session != session);
            if links.is_empty() {
                open.remove(authority);
            }
        }
        drop(open);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Whether link `session` is the one that carries `authority`'s
    /// notifications: the newest of its live links.
    fn delivers(&self, authority: &str, session: u64) -> bool {
        lock(&self.open).get(authority).and_then(|links| {
            links
                .iter()
                .filter(|o| !o.outbound.is_closed())
                .map(|o| o.session)
                .max()
        }) == Some(session)
    }

    /// Where to send a detail request for `authority`: its live links, the
    /// one heard from most recently first.
    fn routes(&self, authority: &str) -> Vec<Outbound> {
        let open = lock(&self.open);
        let Some(links) = open.get(authority) else {
            return Vec::new();
        };
        let mut live: Vec<&Open> = links.iter().filter(|o| !o.outbound.is_closed()).collect();
        live.sort_by_key(|o| std::cmp::Reverse((o.info.last_heard, o.session)));
        live.into_iter().map(|o| o.outbound.clone()).collect()
    }

    /// Delivers an agent's answer, if it is the agent that was asked.
    fn answer(&self, from: &str, response: pb::DetailResponse) {
        let mut pending = lock(&self.pending);
        match pending.get(&response.request_id) {
            Some((asked, _)) if asked == from => {
                if let Some((_, waiting)) = pending.remove(&response.request_id) {
                    let _ = waiting.send(response);
                }
            }
            Some(_) => {
                tracing::warn!(%from, "an agent answered a detail request sent to another authority; ignored")
            }
            None => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl DetailSource for Links {
    async fn fetch(&self, request: DetailRequest) -> Result<Record, DetailError> {
        let routes = self.routes(&request.custodian);
        if routes.is_empty() {
            return Err(DetailError::Unreachable(
                "its agent has no link open".into(),
            ));
        }
        let request_id = format!("{:032x}", rand::random::<u128>());
        let (reply, answer) = oneshot::channel();
        lock(&self.pending).insert(request_id.clone(), (request.custodian.clone(), reply));
        let message = pb::HubMessage {
            message: Some(hub_message::Message::DetailRequest(pb::DetailRequest {
                request_id: request_id.clone(),
                record_id: request.record_id,
                version: request.version,
                requester_authority: request.requester.code,
                requester_kind: request.requester.kind,
                requester_jurisdiction: request.requester.jurisdiction,
                acting_user: Some(pb::ActingUser {
                    user_id: request.user.user_id,
                    display_name: request.user.display_name,
                    role: request.user.role,
                    team: request.user.team,
                }),
                purpose: request.purpose.to_wire() as i32,
                // The query's trace, so the custodian's span joins it.
                traceparent: kith_ops::telemetry::current_traceparent(),
            })),
        };
        let timeout = self.detail_timeout;
        let outcome = tokio::time::timeout(timeout, async {
            // A link that closed since it was picked refuses the send:
            // try the next one.
            let mut message: Option<pb::HubMessage> = Some(message);
            for outbound in routes {
                let Some(m) = message.take() else { break };
                if let Err(mpsc::error::SendError(Ok(back))) = outbound.send(Ok(m)).await {
                    message = Some(back);
                }
            }
            if message.is_some() {
                return Err(DetailError::Unreachable("its link closed".into()));
            }
            answer
                .await
                .map_err(|_| DetailError::Unreachable("its link closed".into()))
        })
        .await;
        lock(&self.pending).remove(&request_id);
        let response = match outcome {
            Err(_) => {
                return Err(DetailError::Unreachable(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )));
            }
            Ok(result) => result?,
        };
        match response.result {
            Some(detail_response::Result::Record(r)) => {
                kith_core::wire::record_from_wire(r, Utc::now().date_naive()).map_err(|errors| {
                    DetailError::Refused(format!(
                        "its agent sent an invalid record: {}",
                        kith_core::error::join(&errors)
                    ))
                })
            }
            Some(detail_response::Result::Refused(why)) => Err(DetailError::Refused(why)),
            None => Err(DetailError::Refused(
                "its agent sent an empty answer".into(),
            )),
        }
    }
}

pub struct AgentLinkServiceImpl {
    pub hub: Arc<Hub>,
    pub links: Arc<Links>,
    pub heartbeat_interval: Duration,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

type HubStream = Pin<Box<dyn Stream<Item = Result<pb::HubMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentLinkService for AgentLinkServiceImpl {
    type OpenLinkStream = HubStream;

    async fn open_link(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<HubStream>, Status> {
        let caller = caller(&self.hub, &request).await?;
        let authority = caller.authority.to_string();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let links = self.links.clone();
        let hub = self.hub.clone();
        let interval = self.heartbeat_interval;
        tokio::spawn(async move {
            let silence = interval * 3;
            let mut closing = links.closing.subscribe();
            let mut session = None;
            let mut delivery: Option<tokio::task::JoinHandle<()>> = None;
            loop {
                let received = tokio::select! {
                    _ = closing.wait_for(|c| *c) => {
                        tracing::debug!(%authority, "hub shutting down; closing agent link");
                        break;
                    }
                    received = tokio::time::timeout(silence, inbound.message()) => received,
                };
                let message = match received {
                    Err(_) => {
                        tracing::info!(%authority, "agent link silent for three heartbeat intervals; closing");
                        let _ = tx
                            .send(Err(Status::deadline_exceeded("no heartbeat")))
                            .await;
                        break;
                    }
                    Ok(Err(status)) => {
                        tracing::debug!(%authority, %status, "agent link ended");
                        break;
                    }
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(message))) => message,
                };
                let reply = match message.message {
                    Some(agent_message::Message::Hello(hello)) => {
                        let now = Utc::now();
                        let info = LinkInfo {
                            connected_at: now,
                            last_heard: now,
                            agent_version: hello.agent_version,
                        };
                        if session.is_none() {
                            let s = links.register(&authority, info, tx.clone());
                            session = Some(s);
                            tracing::info!(%authority, links = links.count(&authority), "agent link open");
                            delivery = Some(tokio::spawn(deliver_notifications(
                                hub.clone(),
                                links.clone(),
                                authority.clone(),
                                s,
                                tx.clone(),
                            )));
                        }
                        hub_message::Message::Welcome(pb::HubWelcome {
                            authority: authority.clone(),
                            heartbeat_interval_seconds: interval.as_secs().max(1) as u32,
                        })
                    }
                    Some(agent_message::Message::Heartbeat(_)) => {
                        if let Some(s) = session {
                            links.heard(&authority, s);
                        }
                        hub_message::Message::Heartbeat(pb::Heartbeat {
                            sent_at_unix_ms: now_ms(),
                        })
                    }
                    Some(agent_message::Message::Detail(response)) => {
                        links.answer(&authority, response);
                        continue;
                    }
                    Some(agent_message::Message::NotificationAck(ack)) => {
                        if let Err(e) = hub
                            .notification_delivered(&authority, &ack.notification_id)
                            .await
                        {
                            // Not marked delivered: it is sent again later.
                            tracing::error!(%authority, error = %e, "notification acknowledgement not recorded");
                        }
                        continue;
                    }
                    None => continue,
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
            if let Some(d) = delivery {
                d.abort();
            }
            if let Some(s) = session {
                links.forget(&authority, s);
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// How long a notification sent on a link waits for its acknowledgement
/// before it is sent again on the same link.
const RESEND_AFTER: Duration = Duration::from_secs(30);

/// Sends `authority`'s unacknowledged notifications over link `session`
/// while it is the link that carries them ([`Links::delivers`]): at once,
/// whenever more are stored or the authority's links change, and every
/// [`RESEND_INTERVAL`], until the link closes. Acknowledged ones stop being
/// pending (see `open_link`), on whichever link the acknowledgement came.
async fn deliver_notifications(
    hub: Arc<Hub>,
    links: Arc<Links>,
    authority: String,
    session: u64,
    outbound: Outbound,
) {
    let mut stored = hub.notifier().subscribe();
    let mut changed = links.changed.subscribe();
    let mut sent: HashMap<String, std::time::Instant> = HashMap::new();
    loop {
        if !links.delivers(&authority, session) {
            // Another link carries them; the sent marks are stale if this
            // one takes over later.
            sent.clear();
        } else {
            match hub.pending_notifications(&authority, 100).await {
                Ok(pending) => {
                    for n in pending {
                        if sent
                            .get(&n.notification_id)
                            .is_some_and(|at| at.elapsed() < RESEND_AFTER)
                        {
                            continue;
                        }
                        sent.insert(n.notification_id.clone(), std::time::Instant::now());
                        let message = pb::HubMessage {
                            message: Some(hub_message::Message::Notification(
                                notification_to_wire(n),
                            )),
                        };
                        if outbound.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(%authority, error = %e, "cannot read pending notifications; will retry")
                }
            }
        }
        sent.retain(|_, at| at.elapsed() < RESEND_AFTER * 4);
        tokio::select! {
            _ = outbound.closed() => return,
            _ = stored.changed() => {}
            _ = changed.changed() => {}
            _ = tokio::time::sleep(RESEND_INTERVAL) => {}
        }
    }
}

fn notification_to_wire(n: Notification) -> pb::Notification {
    let kind = n.kind.to_wire();
    let level = match n.level {
        Some(Level::Detail) => pb::DisclosureLevel::Detail,
        Some(Level::Summary) => pb::DisclosureLevel::Summary,
        Some(Level::Withheld) => pb::DisclosureLevel::Withheld,
        Some(Level::Hidden) | None => pb::DisclosureLevel::Unspecified,
    };
    let accessor = (!n.accessor_user_id.is_empty()).then_some(pb::ActingUser {
        user_id: n.accessor_user_id,
        display_name: n.accessor_display_name,
        role: n.accessor_role,
        team: n.accessor_team,
    });
    let change = n.change.map_or(0, |c| c.to_wire() as i32);
    let disclosed = n.shown.map(|shown| pb::DisclosedRecord {
        level: level as i32,
        record: Some(pb::RelationshipRecord {
            record_id: n.record_id.clone(),
            custodian: n.custodian.clone(),
            relationship_type: n.relationship_type.map_or(0, |t| t.to_wire() as i32),
            service: shown.service,
            key_worker: super::query::contact(&shown.key_worker),
            out_of_hours: super::query::contact(&shown.out_of_hours),
            period: shown.period.map(|p| pb::Period {
                start: p.start.to_string(),
                end: p.end.map(|e| e.to_string()).unwrap_or_default(),
            }),
            ..Default::default()
        }),
        reason: String::new(),
        decided_by: if n.reason.is_empty() {
            Vec::new()
        } else {
            n.reason.split(", ").map(str::to_string).collect()
        },
        custodian_name: shown.custodian_name,
    });
    let reason = if n.subscription_id.is_empty() {
        n.reason
    } else {
        String::new()
    };
    pb::Notification {
        subscription_id: n.subscription_id,
        change,
        disclosed,
        notification_id: n.notification_id,
        kind: kind as i32,
        occurred_at: n.occurred_at,
        record: Some(pb::RecordRef {
            custodian: n.custodian,
            record_id: n.record_id,
        }),
        relationship_type: n.relationship_type.map_or(0, |t| t.to_wire() as i32),
        accessor_authority_name: n.accessor_authority_name,
        accessor_authority: n.accessor_authority,
        accessor,
        purpose: n.purpose.map_or(0, |p| p.to_wire() as i32),
        level: level as i32,
        query_id: n.query_id,
        reason,
        audit_index: n.audit_index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_custodian_asked_can_answer_a_detail_request() {
        let links = Links::new(Duration::from_secs(1));
        let (reply, mut answer) = oneshot::channel();
        lock(&links.pending).insert("r1".into(), ("TRUST".into(), reply));
        let response = pb::DetailResponse {
            request_id: "r1".into(),
            result: None,
        };

        links.answer("OTHER", response.clone());
        assert!(
            answer.try_recv().is_err(),
            "another authority's answer is ignored"
        );
        assert!(lock(&links.pending).contains_key("r1"));

        links.answer("TRUST", response);
        assert_eq!(answer.try_recv().unwrap().request_id, "r1");
        assert!(lock(&links.pending).is_empty());
    }

    #[tokio::test]
    async fn a_custodian_with_no_link_is_unreachable_at_once() {
        let links = Links::new(Duration::from_secs(5));
        let started = std::time::Instant::now();
        let err = links
            .fetch(DetailRequest {
                custodian: "NOBODY".into(),
                record_id: "x".into(),
                version: 1,
                requester: crate::directory::Member {
                    code: "A".into(),
                    name: "A".into(),
                    kind: "council".into(),
                    jurisdiction: "england".into(),
                },
                user: crate::disclosure::ActingUser {
                    user_id: "u".into(),
                    display_name: String::new(),
                    role: "social_worker".into(),
                    team: String::new(),
                },
                purpose: kith_core::Purpose::DirectCare,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, DetailError::Unreachable(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
