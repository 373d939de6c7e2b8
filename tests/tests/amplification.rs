//! Refuse before you allocate: a small request that would decode into a
//! huge structure is refused from its encoded form, and the hub's memory
//! does not grow with what it would have decoded into.
//!
//! The hub runs in this test process, so the process's peak resident set
//! (`VmHWM`) is the hub's plus the test client's; this file holds one test
//! per process phase, run one at a time (`--test-threads=1` is not needed:
//! the measured test is the only one that is not ignored).

use kith_tests::*;

/// 200,000 empty records: 400 KB on the wire. Decoded, each is over a
/// kilobyte; before the guard this raised the hub's RSS by 283 MB.
const AMPLIFIED: usize = 200_000;

async fn send_amplified(hub: &kith_hub::server::RunningHub, t: &TestDir) -> tonic::Status {
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
    unary_raw::<v1::PublishRecordsResponse>(
        ch,
        "/kith.v1.RecordService/PublishRecords",
        empty_records_request(AMPLIFIED),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn an_amplified_publish_is_refused_before_it_is_decoded_with_rss_growth_under_a_few_mb() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    // Warm up the connection path, TLS and the publish path once, so that
    // what is measured is the refused request alone.
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
    let warm = unary_raw::<v1::PublishRecordsResponse>(
        ch,
        "/kith.v1.RecordService/PublishRecords",
        empty_records_request(1000),
    )
    .await
    .expect("1,000 records is within the limit; each is refused on its own");
    assert_eq!(warm.results.len(), 1000);
    let _ = send_amplified(&hub, &t).await;

    let hwm_before = proc_status_kb("VmHWM").unwrap();
    let rss_before = proc_status_kb("VmRSS").unwrap();
    for _ in 0..5 {
        let status = send_amplified(&hub, &t).await;
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with("records: 1001"),
            "the refusal names the field and the limit: {}",
            status.message()
        );
        assert!(
            status.message().contains("at most 1000"),
            "{}",
            status.message()
        );
    }
    let hwm_growth = proc_status_kb("VmHWM").unwrap() - hwm_before;
    let rss_after = proc_status_kb("VmRSS").unwrap();
    eprintln!(
        "five amplified publishes refused: VmHWM +{hwm_growth} kB, VmRSS {rss_before} → {rss_after} kB"
    );
    assert!(
        hwm_growth < 8 * 1024,
        "peak RSS grew {hwm_growth} kB on refused requests"
    );
    // Nothing reached the audit log for the refused calls beyond what the
    // warm-up wrote.
    hub.shutdown().await.unwrap();
}

/// The same request with the guard's count limits lifted, to show what it
/// saves: prost decodes all 200,000 records before the hub's batch limit
/// refuses them. Run by hand (it costs a few hundred MB):
/// `cargo test -p kith-tests --test amplification -- --ignored --nocapture`
#[tokio::test]
#[ignore = "measurement: decodes 200,000 records (hundreds of MB)"]
async fn without_the_guard_the_same_request_costs_hundreds_of_mb() {
    let t = TestDir::new();
    let mut config = t.hub_config(0);
    config.limits.max_repeated_elements = 1_000_000;
    config.limits.max_message_elements = 10_000_000;
    let hub = kith_hub::server::start(&config).await.unwrap();
    let _warm = send_amplified(&hub, &t).await;
    let hwm_before = proc_status_kb("VmHWM").unwrap();
    // A larger request, so the peak is past the warm-up's.
    let ch = channel(hub.addr(), &t.agent_tls(COUNCIL_A)).await.unwrap();
    let status = unary_raw::<v1::PublishRecordsResponse>(
        ch,
        "/kith.v1.RecordService/PublishRecords",
        empty_records_request(2 * AMPLIFIED),
    )
    .await
    .unwrap_err();
    let hwm_growth = proc_status_kb("VmHWM").unwrap() - hwm_before;
    eprintln!(
        "unguarded 400,000 empty records: {} ({}); VmHWM +{hwm_growth} kB",
        status.code(),
        status.message()
    );
    hub.shutdown().await.unwrap();
}
