//! Mutual TLS: who may call the hub at all. Under TLS 1.3 a rejected client
//! certificate often surfaces only on the first call, so every test asserts
//! on an RPC, never on `connect()`.

use kith_tests::v1 as pb;
use kith_tests::*;

async fn try_publish(
    ch: Result<tonic::transport::Channel, tonic::transport::Error>,
) -> Result<(), String> {
    let ch = ch.map_err(|e| format!("connect: {e}"))?;
    records_client(ch)
        .publish_records(pb::PublishRecordsRequest { records: vec![] })
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test]
async fn a_member_with_a_federation_certificate_is_served() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    assert_eq!(
        try_publish(channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await).await,
        Ok(())
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let result = try_publish(channel_without_certificate(hub.addr(), &t.pki.ca_cert()).await).await;
    assert!(
        result.is_err(),
        "a call without a client certificate must fail"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let result = try_publish(channel(hub.addr(), &t.foreign_tls(COUNCIL_A)).await).await;
    assert!(
        result.is_err(),
        "a certificate from an unknown CA must fail"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let result = try_publish(channel(hub.addr(), &t.expired_tls(COUNCIL_A)).await).await;
    assert!(result.is_err(), "an expired certificate must fail");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_valid_certificate_of_a_non_member_is_refused_and_audited() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let result = try_publish(channel(hub.addr(), &t.agent_tls(OUTSIDER)).await).await;
    let err = result.unwrap_err();
    assert!(err.starts_with("PermissionDenied"), "{err}");
    assert!(err.contains("not a member"), "{err}");
    let audit = audit_entries(&hub).await;
    assert!(
        audit
            .iter()
            .any(|e| e["kind"] == "refusal" && e["authority"] == OUTSIDER),
        "{audit:?}"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_and_reflection_answer_over_mutual_tls() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "kith.v1.QueryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    hub.shutdown().await.unwrap();
}
