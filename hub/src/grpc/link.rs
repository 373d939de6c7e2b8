//! `kith.v1.AgentLinkService`: the stream each agent keeps open to the hub.
//!
//! Agents only dial out, so this stream is the hub's only way to reach one.
//! Today it carries the hello/welcome exchange and heartbeats; live fetches
//! of records held at source and notifications will be further message
//! kinds on the same stream. A stream silent for three heartbeat intervals
//! is closed.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use kith_proto::v1 as pb;
use pb::agent_link_service_server::AgentLinkService;
use pb::{agent_message, hub_message};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::caller;
use crate::hub::Hub;

/// Which agents have a link open, and when each was last heard from.
/// Closing it ends every open link, so a graceful shutdown is not held up
/// by streams that would otherwise never finish.
#[derive(Debug)]
pub struct Links {
    open: Mutex<HashMap<String, LinkInfo>>,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Default for Links {
    fn default() -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            closing: tokio::sync::watch::channel(false).0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub connected_at: DateTime<Utc>,
    pub last_heard: DateTime<Utc>,
    pub agent_version: String,
}

impl Links {
    /// The open link of `authority`, if any.
    pub fn get(&self, authority: &str) -> Option<LinkInfo> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(authority)
            .cloned()
    }

    fn update(&self, f: impl FnOnce(&mut HashMap<String, LinkInfo>)) {
        f(&mut self.open.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Ends every open link (agents reconnect to another replica, or later).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
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
        let (tx, rx) = mpsc::channel(16);
        let links = self.links.clone();
        let interval = self.heartbeat_interval;
        tokio::spawn(async move {
            let silence = interval * 3;
            let mut closing = links.closing.subscribe();
            loop {
                let received = tokio::select! {
                    _ = closing.wait_for(|c| *c) => {
                        tracing::debug!(%authority, "hub shutting down; closing agent link");
                        break;
                    }
                    received = tokio::time::timeout(silence, inbound.message()) => received,
                };
                let next = match received {
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
                let reply = match next.message {
                    Some(agent_message::Message::Hello(hello)) => {
                        let now = Utc::now();
                        links.update(|open| {
                            open.insert(
                                authority.clone(),
                                LinkInfo {
                                    connected_at: now,
                                    last_heard: now,
                                    agent_version: hello.agent_version,
                                },
                            );
                        });
                        tracing::info!(%authority, "agent link open");
                        hub_message::Message::Welcome(pb::HubWelcome {
                            authority: authority.clone(),
                            heartbeat_interval_seconds: interval.as_secs().max(1) as u32,
                        })
                    }
                    Some(agent_message::Message::Heartbeat(_)) => {
                        links.update(|open| {
                            if let Some(info) = open.get_mut(&authority) {
                                info.last_heard = Utc::now();
                            }
                        });
                        hub_message::Message::Heartbeat(pb::Heartbeat {
                            sent_at_unix_ms: now_ms(),
                        })
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
            links.update(|open| {
                open.remove(&authority);
            });
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
