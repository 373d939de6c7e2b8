//! Several agent links for one authority (a restarted agent whose old
//! stream is still open, a second agent process, a duplicate): the hub keeps
//! each until it closes, routes detail requests to a live one, and delivers
//! every notification on some live link.

use std::net::SocketAddr;
use std::time::Duration;

use kith_core::tls::TlsFiles;
use kith_hub::detail::{DetailError, DetailRequest, DetailSource};
use kith_hub::server::RunningHub;
use kith_proto::v1 as pb;
use kith_tests::*;
use tokio::sync::mpsc;

/// A hand-opened agent link that answers every detail request with a
/// record and passes on the notifications it receives.
struct AnsweringLink {
    outbound: mpsc::Sender<pb::AgentMessage>,
    notifications: mpsc::Receiver<pb::Notification>,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl AnsweringLink {
    async fn open(addr: SocketAddr, tls: &TlsFiles, custodian: &'static str) -> Self {
        let (outbound, mut inbound) = open_agent_link(addr, tls, "answering-probe").await;
        let (notify, notifications) = mpsc::channel(64);
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (count, reply) = (answered.clone(), outbound.clone());
        let task = tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                match message.message {
                    Some(pb::hub_message::Message::DetailRequest(request)) => {
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let record = record_wire(
                            custodian,
                            &request.record_id,
                            request.version,
                            &test_nhs_number(7),
                            "mental_health",
                            &["direct_care"],
                        );
                        let _ = reply
                            .send(pb::AgentMessage {
                                message: Some(pb::agent_message::Message::Detail(
                                    pb::DetailResponse {
                                        request_id: request.request_id,
                                        result: Some(pb::detail_response::Result::Record(record)),
                                    },
                                )),
                            })
                            .await;
                    }
                    Some(pb::hub_message::Message::Notification(n)) => {
                        let _ = notify.send(n).await;
                    }
                    _ => {}
                }
            }
        });
        Self {
            outbound,
            notifications,
            answered,
            task,
        }
    }

    fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn ack(&self, notification_id: &str) {
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

    async fn next_notification(&mut self, within: Duration) -> Option<pb::Notification> {
        tokio::time::timeout(within, self.notifications.recv())
            .await
            .ok()
            .flatten()
    }

    /// Closes the link as an agent that stops does: its stream ends.
    fn close(self) {
        self.task.abort();
        drop(self.outbound);
    }
}

fn detail_request(custodian: &str) -> DetailRequest {
    DetailRequest {
        custodian: custodian.into(),
        record_id: "mh-src-1".into(),
        version: 1,
        requester: kith_hub::directory::Member {
            code: COUNCIL_A.into(),
            name: "Manchester City Council".into(),
            kind: "council".into(),
            jurisdiction: "england".into(),
        },
        user: kith_hub::disclosure::ActingUser {
            user_id: "u-1".into(),
            display_name: String::new(),
            role: "social_worker".into(),
            team: String::new(),
        },
        purpose: kith_core::Purpose::DirectCare,
    }
}

async fn wait_links(hub: &RunningHub, authority: &str, n: usize) {
    assert!(
        eventually(Duration::from_secs(10), || async {
            hub.links().count(authority) == n
        })
        .await,
        "{authority} should have {n} links open, has {}",
        hub.links().count(authority)
    );
}

#[tokio::test]
async fn a_second_link_closing_leaves_the_first_serving_and_the_last_closing_makes_it_unreachable()
{
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let tls = t.agent_tls(TRUST_C);
    let first = AnsweringLink::open(hub.addr(), &tls, TRUST_C).await;
    let second = AnsweringLink::open(hub.addr(), &tls, TRUST_C).await;
    wait_links(&hub, TRUST_C, 2).await;
    let record = hub.links().fetch(detail_request(TRUST_C)).await.unwrap();
    assert_eq!(record.record_id, "mh-src-1");
    assert_eq!(
        (first.answered(), second.answered()),
        (0, 1),
        "the newest of two links heard at once"
    );

    // The newer link closes; the first agent is still connected and serves.
    second.close();
    wait_links(&hub, TRUST_C, 1).await;
    for _ in 0..3 {
        let record = hub.links().fetch(detail_request(TRUST_C)).await;
        assert!(record.is_ok(), "the first link still serves: {record:?}");
    }
    assert_eq!(
        first.answered(),
        3,
        "the first link answered after the second closed"
    );
    assert!(hub.links().get(TRUST_C).is_some());

    // The last one closes: unreachable, at once.
    first.close();
    wait_links(&hub, TRUST_C, 0).await;
    assert!(hub.links().get(TRUST_C).is_none());
    let err = hub
        .links()
        .fetch(detail_request(TRUST_C))
        .await
        .unwrap_err();
    assert!(matches!(err, DetailError::Unreachable(_)), "{err:?}");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_older_link_closing_leaves_the_newer_serving() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let tls = t.agent_tls(TRUST_C);
    let first = AnsweringLink::open(hub.addr(), &tls, TRUST_C).await;
    let second = AnsweringLink::open(hub.addr(), &tls, TRUST_C).await;
    wait_links(&hub, TRUST_C, 2).await;
    first.close();
    wait_links(&hub, TRUST_C, 1).await;
    hub.links().fetch(detail_request(TRUST_C)).await.unwrap();
    assert_eq!(second.answered(), 1);
    second.close();
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn detail_goes_to_the_link_heard_from_most_recently() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let tls = t.agent_tls(TRUST_C);
    let first = AnsweringLink::open(hub.addr(), &tls, TRUST_C).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = AnsweringLink::open(hub.addr(), &tls, TRUST_C).await;
    wait_links(&hub, TRUST_C, 2).await;
    // The first link sends a heartbeat: it is now the one heard last.
    tokio::time::sleep(Duration::from_millis(20)).await;
    first
        .outbound
        .send(pb::AgentMessage {
            message: Some(pb::agent_message::Message::Heartbeat(pb::Heartbeat {
                sent_at_unix_ms: 0,
            })),
        })
        .await
        .unwrap();
    let before = hub.links().get(TRUST_C).unwrap().last_heard;
    assert!(
        eventually(Duration::from_secs(5), || async {
            hub.links().get(TRUST_C).unwrap().last_heard > before
        })
        .await
    );
    hub.links().fetch(detail_request(TRUST_C)).await.unwrap();
    assert_eq!((first.answered(), second.answered()), (1, 0));
    first.close();
    second.close();
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_notification_reaches_a_live_link_and_an_ack_on_any_link_counts() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(12);
    let cpp = record_wire(
        COUNCIL_A,
        "cpp-1",
        1,
        &nhs,
        "child_protection_plan",
        &["safeguarding"],
    );
    publish_accepted(hub.addr(), &t.agent_tls(COUNCIL_A), vec![cpp]).await;
    let tls = t.agent_tls(COUNCIL_A);
    let mut first = AnsweringLink::open(hub.addr(), &tls, COUNCIL_A).await;
    let mut second = AnsweringLink::open(hub.addr(), &tls, COUNCIL_A).await;
    wait_links(&hub, COUNCIL_A, 2).await;

    // Council B looks: council A must be told, on one link, once.
    let request = query_request(&nhs, pb::Purpose::Safeguarding, "social_worker");
    let answer = ask_as(hub.addr(), &t.agent_tls(COUNCIL_B), request)
        .await
        .unwrap();
    assert!(!answer.records.is_empty());
    let on_second = second
        .next_notification(Duration::from_secs(10))
        .await
        .expect("the newest link carries the notification");
    assert!(
        first
            .next_notification(Duration::from_millis(500))
            .await
            .is_none(),
        "a notification goes out on one link, not every link"
    );

    // The link carrying it closes before acknowledging: the other link
    // gets it, and its acknowledgement counts.
    second.close();
    let on_first = first
        .next_notification(Duration::from_secs(10))
        .await
        .expect("the remaining link gets the unacknowledged notification");
    assert_eq!(on_first.notification_id, on_second.notification_id);
    first.ack(&on_first.notification_id).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            hub.hub()
                .pending_notifications(COUNCIL_A, 10)
                .await
                .unwrap()
                .is_empty()
        })
        .await,
        "the acknowledgement on the other link counts"
    );
    first.close();
    hub.shutdown().await.unwrap();
}
