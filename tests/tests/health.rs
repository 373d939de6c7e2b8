//! Health that tells the truth: each `kith.v1` service reports NOT_SERVING
//! while a condition it needs fails (the policy set's last load, the audit
//! log's signing key, the store answering) and SERVING again once it
//! recovers; the overall status follows all of them. A full disk (the
//! store not writable) is `disk_full.rs`'s. Reflection answers in both v1
//! and v1alpha.

use std::time::Duration;

use kith_tests::*;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const RECORDS: &str = "kith.v1.RecordService";
const QUERY: &str = "kith.v1.QueryService";
const AUDIT: &str = "kith.v1.AuditService";
const LINK: &str = "kith.v1.AgentLinkService";

async fn statuses(
    client: &mut HealthClient<tonic::transport::Channel>,
) -> Vec<(&'static str, ServingStatus)> {
    let mut out = Vec::new();
    for service in ["", RECORDS, QUERY, AUDIT, LINK] {
        let status = client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e}"))
            .into_inner()
            .status();
        out.push((service, status));
    }
    out
}

/// Waits until exactly `down` are NOT_SERVING (with "" whenever any is).
async fn wait_for(client: &mut HealthClient<tonic::transport::Channel>, down: &[&str], what: &str) {
    let want = |s: &str| {
        let not = if s.is_empty() {
            !down.is_empty()
        } else {
            down.contains(&s)
        };
        if not {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = statuses(client).await;
        if now.iter().all(|(s, st)| *st == want(s)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn health_client(
    t: &TestDir,
    hub: &kith_hub::server::RunningHub,
) -> HealthClient<tonic::transport::Channel> {
    HealthClient::new(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_policy_load_stops_queries_and_publishes_until_fixed() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut health = health_client(&t, &hub).await;
    wait_for(&mut health, &[], "a fresh hub").await;

    let broken = t.path().join("policies/default/50-broken.cedar");
    std::fs::write(&broken, "permit (principal, action, resource) when { oops").unwrap();
    wait_for(
        &mut health,
        &[RECORDS, QUERY, AUDIT],
        "after a rejected policy edit",
    )
    .await;
    // The agent link still serves (it decides nothing by policy).
    std::fs::remove_file(&broken).unwrap();
    hub.reload_handle().send(()).await.unwrap();
    wait_for(&mut health, &[], "after the edit was undone").await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_or_replaced_signing_key_stops_the_audit_service_only() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut health = health_client(&t, &hub).await;
    wait_for(&mut health, &[], "a fresh hub").await;

    let skey = t.path().join("pki/audit-log.skey");
    let aside = t.path().join("pki/audit-log.skey.aside");
    std::fs::rename(&skey, &aside).unwrap();
    wait_for(&mut health, &[AUDIT], "with the key file gone").await;
    // Queries go on: their entries are written, and signed once the key is back.
    let mut q = query_client(channel(hub.addr(), &t.agent_tls(COUNCIL_B)).await.unwrap());
    q.query(query_request(
        &test_nhs_number(3),
        kith_tests::v1::Purpose::Safeguarding,
        "social_worker",
    ))
    .await
    .unwrap();

    // Another key in its place is no better.
    let other = tempfile::tempdir().unwrap();
    kith_hub::transparency::write_key(other.path(), kith_hub::transparency::DEV_ORIGIN).unwrap();
    std::fs::copy(other.path().join("audit-log.skey"), &skey).unwrap();
    wait_for(&mut health, &[AUDIT], "with another key in the file").await;

    std::fs::rename(&aside, &skey).unwrap();
    wait_for(&mut health, &[], "with the key back").await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_stops_every_service_until_it_answers_again() {
    // PostgreSQL, whatever KITH_TEST_DATABASE says: the database is made
    // to refuse connections and the hub's are ended.
    let t = TestDir::on_postgres();
    let hub = t.start_hub().await;
    let mut health = health_client(&t, &hub).await;
    wait_for(&mut health, &[], "a fresh hub").await;

    let url = t.database_url();
    let name = url.rsplit('/').next().unwrap().to_string();
    let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&admin)
        .await
        .unwrap();
    wait_for(
        &mut health,
        &[RECORDS, QUERY, AUDIT, LINK],
        "with the database refusing connections",
    )
    .await;

    sqlx::query(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    wait_for(&mut health, &[], "with the database back").await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_in_v1_and_v1alpha() {
    use tokio_stream::StreamExt;
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();

    let mut v1 =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(ch.clone());
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = v1
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(
        tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(
            list,
        ),
    ) = answer.message_response
    else {
        panic!("v1: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [RECORDS, QUERY, AUDIT, LINK, "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == service), "v1 lists {names:?}");
    }

    let mut alpha =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(ch);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = alpha
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1alpha: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == QUERY), "v1alpha lists {names:?}");
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_status_says_how_its_link_and_outbox_stand() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let config = t.agent_config(COUNCIL_A, hub.addr());
    let agent = kith_agent::Agent::start(config.clone()).await.unwrap();
    assert!(agent.wait_until_linked(Duration::from_secs(20)).await);
    let linked = eventually(Duration::from_secs(5), || async {
        kith_agent::status(&config)
            .await
            .unwrap()
            .link
            .is_some_and(|(l, _)| l.connected)
    })
    .await;
    assert!(linked, "status never saw the link open");
    let status = kith_agent::status(&config).await.unwrap();
    assert!(status.is_healthy(), "{status}");
    assert_eq!(status.outbox_error, None);
    assert!(
        status.to_string().contains("link           open to"),
        "{status}"
    );

    agent.shutdown().await;
    let status = kith_agent::status(&config).await.unwrap();
    assert!(
        status.link.as_ref().is_some_and(|(l, _)| !l.connected),
        "{status}"
    );
    assert!(
        status.to_string().contains("link           DOWN"),
        "{status}"
    );
    hub.shutdown().await.unwrap();
}
