//! Publishing through an outage and past a dead address, directives
//! after their records, and the link kept.

use super::*;

use super::fakes::{FakeHub, FakeLink};

pub(crate) fn line(id: &str) -> String {
    format!(
        r#"{{"record_id":"{id}","version":1,"subject":{{"nhs_number":"9434765919"}},"relationship_type":"mental_health","sensitivity":"normal","period":{{"start":"2025-01-01"}},"out_of_hours":{{"phone":"0300 000 0000"}},"lawful_basis":{{"article6":"public_task"}},"permitted_purposes":["direct_care"],"residency":"uk"}}"#
    )
}

pub(crate) fn directive(id: &str, record: &str) -> String {
    format!(
        r#"{{"directive_id":"{id}","version":1,"record_id":"{record}","kind":"objection","period":{{"start":"2025-01-01"}},"grantor":"the person","recorded_at":"2025-06-01T09:00:00Z"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn the_agent_publishes_through_an_outage_and_keeps_its_link() {
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
