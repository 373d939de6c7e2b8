//! Notifications stored, delivered to the file and webhook sinks, and
//! acknowledged.

use super::*;

use super::fakes::{FakeHub, FakeLink};

/// A loopback HTTP server that answers 500 to the first `failures`
/// requests and 204 after, keeping each request's status and body.
pub(crate) async fn webhook_server(
    failures: usize,
) -> (SocketAddr, Arc<Mutex<Vec<(u16, String)>>>) {
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
pub(crate) async fn notifications_are_stored_delivered_and_acknowledged() {
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
