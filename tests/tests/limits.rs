//! Server limits: stalled TLS handshakes are dropped, per-service message
//! sizes hold at the bound and one past it, repeated fields are counted
//! before decoding, and a request timeout does not cut agent links.

use std::time::{Duration, Instant};

use kith_hub::server::RunningHub;
use kith_tests::*;
use tokio::io::AsyncReadExt;

async fn start_with(
    t: &TestDir,
    f: impl FnOnce(&mut kith_hub::config::LimitsConfig),
) -> RunningHub {
    let mut config = t.hub_config(0);
    f(&mut config.limits);
    kith_hub::server::start(&config).await.expect("hub starts")
}

#[tokio::test]
async fn stalled_handshakes_are_closed_after_the_timeout_and_calls_still_work() {
    let t = TestDir::new();
    let hub = start_with(&t, |l| l.tls_handshake_timeout_ms = 500).await;
    let opened = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..50 {
        stalled.push(tokio::net::TcpStream::connect(hub.addr()).await.unwrap());
    }

    // While they stall, a real client is served.
    let answer = ask_as(
        hub.addr(),
        &t.agent_tls(COUNCIL_A),
        query_request(
            &test_nhs_number(1),
            v1::Purpose::Safeguarding,
            "social_worker",
        ),
    )
    .await
    .expect("a normal call while 50 handshakes stall");
    assert!(answer.records.is_empty());

    // Each stalled connection is closed by the hub: a read ends (EOF or
    // reset) by the timeout plus slack, and not long before the timeout.
    let mut closed_at = Vec::new();
    for mut s in stalled {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => closed_at.push(opened.elapsed()),
            Ok(Ok(n)) => panic!("the hub sent {n} bytes to a client that sent nothing"),
            Err(_) => panic!("a stalled handshake was still open after 5 s"),
        }
    }
    let last = closed_at.iter().max().unwrap();
    let first = closed_at.iter().min().unwrap();
    assert!(
        *last < Duration::from_millis(500 + 2500),
        "last closed at {last:?}"
    );
    assert!(
        *first >= Duration::from_millis(400),
        "first closed at {first:?}, before the timeout"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_handshake_that_finishes_within_the_timeout_is_not_cut() {
    let t = TestDir::new();
    let hub = start_with(&t, |l| l.tls_handshake_timeout_ms = 300).await;
    // A channel connected and then idle for longer than the handshake
    // timeout still works: the timeout is on the handshake only.
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut q = query_client(ch);
    q.query(query_request(
        &test_nhs_number(1),
        v1::Purpose::Safeguarding,
        "social_worker",
    ))
    .await
    .expect("an idle, established connection is not cut");
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_timeout_does_not_cut_an_agent_link() {
    let t = TestDir::new();
    let hub = start_with(&t, |l| l.request_timeout_ms = 300).await;
    let _link = LinkProbe::open(hub.addr(), &t.agent_tls(TRUST_C)).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            hub.links().count(TRUST_C) == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        hub.links().count(TRUST_C),
        1,
        "the link outlived four request timeouts"
    );
    hub.shutdown().await.unwrap();
}

/// A `QueryRequest` whose encoding is exactly `len` bytes (the acting
/// user's display name pads it).
fn query_of_len(len: usize) -> Vec<u8> {
    use prost::Message;
    let mut request = query_request(
        &test_nhs_number(1),
        v1::Purpose::Safeguarding,
        "social_worker",
    );
    let base = request.encoded_len();
    // Grow the name until the whole message is `len` bytes (the length
    // prefixes grow too, so step until it fits exactly).
    let mut pad = len.saturating_sub(base);
    loop {
        request.acting_user.as_mut().unwrap().display_name = "x".repeat(pad);
        let now = request.encoded_len();
        if now == len {
            return request.encode_to_vec();
        }
        assert!(now > len || pad < len, "cannot reach {len}");
        pad = if now > len {
            pad - (now - len)
        } else {
            pad + (len - now)
        };
    }
}

#[tokio::test]
async fn a_query_message_at_the_byte_limit_is_read_and_one_byte_more_is_refused() {
    let t = TestDir::new();
    let hub = start_with(&t, |l| l.max_query_message_bytes = 4096).await;
    let send = |bytes| async {
        let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
        unary_raw::<v1::QueryResponse>(ch, "/kith.v1.QueryService/Query", bytes).await
    };
    // At the bound: read and judged (the long display name is the domain's
    // to refuse or accept, not the transport's).
    let at = send(query_of_len(4096)).await;
    if let Err(status) = &at {
        assert_ne!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    }
    let past = send(query_of_len(4097)).await.unwrap_err();
    assert_eq!(past.code(), tonic::Code::ResourceExhausted, "{past:?}");
    assert!(
        past.message().contains("4097-byte message"),
        "{}",
        past.message()
    );
    assert!(
        past.message().contains("at most 4096 bytes"),
        "{}",
        past.message()
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_publish_of_the_batch_limit_is_decoded_and_one_more_record_is_refused_unread() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let (addr, tls) = (hub.addr(), t.agent_tls(COUNCIL_A));
    let send = |n| {
        let tls = tls.clone();
        async move {
            let ch = channel(addr, &tls).await.unwrap();
            unary_raw::<v1::PublishRecordsResponse>(
                ch,
                "/kith.v1.RecordService/PublishRecords",
                empty_records_request(n),
            )
            .await
        }
    };
    let at = send(1000).await.expect("1,000 records reach the hub");
    assert_eq!(at.results.len(), 1000);
    assert!(
        at.results
            .iter()
            .all(|r| r.outcome != v1::PublishOutcome::Accepted as i32),
        "each empty record is refused on its own"
    );
    let past = send(1001).await.unwrap_err();
    assert_eq!(past.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        past.message(),
        "records: 1001 or more elements; at most 1000 in one message"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_protobuf_is_refused_as_invalid_argument() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
    let err = unary_raw::<v1::PublishRecordsResponse>(
        ch,
        "/kith.v1.RecordService/PublishRecords",
        vec![0x0a, 0x7f, 0x00],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("not a valid kith.v1.PublishRecordsRequest"),
        "{}",
        err.message()
    );
    hub.shutdown().await.unwrap();
}

#[test]
fn each_limit_is_refused_by_name_outside_its_range() {
    let mut limits = kith_hub::config::LimitsConfig::default();
    limits.check().unwrap();
    limits.max_repeated_elements = 999;
    let err = limits.check().unwrap_err();
    assert!(
        err.starts_with("limits.max_repeated_elements: 999"),
        "{err}"
    );
    limits.max_repeated_elements = 1000;
    limits.tls_handshake_timeout_ms = 99;
    let err = limits.check().unwrap_err();
    assert!(
        err.starts_with("limits.tls_handshake_timeout_ms: 99"),
        "{err}"
    );
    limits.tls_handshake_timeout_ms = 100;
    limits.check().unwrap();
}

#[tokio::test]
async fn streams_per_connection_are_limited_and_other_connections_are_not_held_up() {
    let t = TestDir::new();
    let hub = start_with(&t, |l| l.max_concurrent_streams = 1).await;
    let tls = t.agent_tls(COUNCIL_A);
    let ch = channel(hub.addr(), &tls).await.unwrap();
    // A link takes the connection's only stream, and keeps it.
    let (outbound, rx) = tokio::sync::mpsc::channel(4);
    outbound
        .send(v1::AgentMessage {
            message: Some(v1::agent_message::Message::Hello(v1::AgentHello {
                agent_version: "streams".into(),
            })),
        })
        .await
        .unwrap();
    let mut link = v1::agent_link_service_client::AgentLinkServiceClient::new(ch.clone())
        .open_link(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(link.message().await.unwrap().is_some(), "welcome");
    let request = || {
        query_request(
            &test_nhs_number(1),
            v1::Purpose::Safeguarding,
            "social_worker",
        )
    };

    // A second call on the same connection waits for a free stream...
    let mut same = query_client(ch.clone());
    let waiting = tokio::spawn(async move { same.query(request()).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "a second stream was opened past the limit of 1"
    );
    // ...while another connection is served at once.
    ask_as(hub.addr(), &tls, request())
        .await
        .expect("another connection is not held up");

    // The link ends: its stream is free, and the waiting call goes through.
    drop(outbound);
    drop(link);
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting call ran once the stream was free")
        .unwrap();
    answered.expect("the waiting call succeeded");
    hub.shutdown().await.unwrap();
}

/// A mutual-TLS connection that sends the HTTP/2 preface and an empty
/// SETTINGS frame, then reads everything and answers nothing (no SETTINGS
/// acknowledgement, no PING reply): a peer gone half-open. Returns how long
/// the hub kept it, if it closed it within `within`.
async fn half_open(
    t: &TestDir,
    addr: std::net::SocketAddr,
    preface: bool,
    within: Duration,
) -> Option<Duration> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::AsyncWriteExt;
    let tls = t.agent_tls(COUNCIL_A);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&tls.key).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    if preface {
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        stream.flush().await.unwrap();
    }
    let opened = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return opened.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok()
}

#[tokio::test]
async fn a_half_open_connection_is_closed_by_keepalive_and_kept_without_it() {
    kith_core::tls::install_crypto_provider();
    let t = TestDir::new();
    let hub = start_with(&t, |l| {
        l.http2_keepalive_interval_ms = 1000;
        l.http2_keepalive_timeout_ms = 1000;
    })
    .await;
    let kept = half_open(&t, hub.addr(), true, Duration::from_secs(8))
        .await
        .expect("the hub closes a connection that answers no ping");
    assert!(
        kept >= Duration::from_millis(900),
        "closed after {kept:?}, before the first ping was due"
    );
    hub.shutdown().await.unwrap();

    // With the defaults (a ping after 30 s idle), the same connection is
    // still open after 3 s: it was the keepalive that closed it above.
    let t = TestDir::new();
    let hub = t.start_hub().await;
    assert_eq!(
        half_open(&t, hub.addr(), true, Duration::from_secs(3)).await,
        None
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_silent_after_its_handshake_is_dropped_after_the_handshake_timeout() {
    kith_core::tls::install_crypto_provider();
    let t = TestDir::new();
    let hub = start_with(&t, |l| l.tls_handshake_timeout_ms = 500).await;
    // A member's certificate, a finished handshake, then nothing: HTTP/2
    // never starts, so its keepalive never would; the hub drops it.
    let kept = half_open(&t, hub.addr(), false, Duration::from_secs(5))
        .await
        .expect("the hub drops a client that sends nothing after its handshake");
    assert!(
        kept >= Duration::from_millis(400) && kept < Duration::from_millis(3000),
        "closed after {kept:?}"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_call_past_the_request_timeout_is_cancelled() {
    let t = TestDir::new();
    let mut config = t.hub_config(0);
    config.limits.request_timeout_ms = 300;
    // The query waits for a custodian's link that never answers: without
    // the request timeout it would take the 5 s detail timeout.
    config.detail_timeout_ms = 5000;
    let hub = kith_hub::server::start(&config).await.unwrap();
    let nhs = test_nhs_number(61);
    let mut record: serde_json::Value = serde_json::from_str(&record_json(
        TRUST_C,
        "mh-1",
        1,
        &nhs,
        "mental_health",
        &["direct_care", "care_planning"],
    ))
    .unwrap();
    record["residency"] = "source_only".into();
    let record: kith_core::Record = serde_json::from_value(record).unwrap();
    publish_accepted(
        hub.addr(),
        &t.agent_tls(TRUST_C),
        vec![kith_core::wire::record_to_wire(&record)],
    )
    .await;
    // A link that never reads what the hub sends it, so never answers.
    let _silent = LinkProbe::open(hub.addr(), &t.agent_tls(TRUST_C)).await;

    let started = Instant::now();
    let err = ask_as(
        hub.addr(),
        &t.agent_tls(COUNCIL_B),
        query_request(&nhs, v1::Purpose::CarePlanning, "social_worker"),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), tonic::Code::Cancelled, "{err:?}");
    assert!(
        took < Duration::from_millis(2500),
        "the call ended after {took:?}, not at the request timeout"
    );
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_message_on_an_agent_link_ends_that_link_only() {
    let t = TestDir::new();
    let hub = start_with(&t, |l| l.max_link_message_bytes = 64 * 1024).await;
    let _other = LinkProbe::open(hub.addr(), &t.agent_tls(COUNCIL_B)).await;
    let mut client = v1::agent_link_service_client::AgentLinkServiceClient::new(
        channel(hub.addr(), &t.agent_tls(TRUST_C)).await.unwrap(),
    );
    let (outbound, rx) = tokio::sync::mpsc::channel(4);
    let hello = |version: String| v1::AgentMessage {
        message: Some(v1::agent_message::Message::Hello(v1::AgentHello {
            agent_version: version,
        })),
    };
    outbound.send(hello("ok".into())).await.unwrap();
    let mut inbound = client
        .open_link(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(inbound.message().await.unwrap().is_some(), "welcome");
    assert!(
        eventually(Duration::from_secs(5), || async {
            hub.links().count(TRUST_C) == 1
        })
        .await
    );

    // Past the link's limit (the byte bound itself is tested at and one
    // past it on the query service): refused from its header, and the
    // link ends; another authority's link is untouched.
    use prost::Message;
    let big = hello("x".repeat(64 * 1024));
    assert!(big.encoded_len() > 64 * 1024);
    outbound.send(big).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            hub.links().count(TRUST_C) == 0
        })
        .await,
        "the link that sent an oversized message was closed"
    );
    assert_eq!(hub.links().count(COUNCIL_B), 1);
    hub.shutdown().await.unwrap();
}
