//! Load, run by hand: 1,000 concurrent agent links and 200 query clients for
//! 60 s against a real `kith-hub serve` process on loopback.
//!
//! ```sh
//! cargo build -p kith-hub            # the binary this run starts
//! cargo test -p kith-tests --test load -- --ignored --nocapture
//! ```
//!
//! `KITH_LOAD_SECONDS`, `KITH_LOAD_LINKS` and `KITH_LOAD_CLIENTS` change the
//! duration and counts. It checks that the hub does not crash, that its
//! memory stays bounded, that every failed call is an explicit
//! `RESOURCE_EXHAUSTED` or `UNAVAILABLE`, and that a custodian whose links
//! never answer does not stall detail fetches from another custodian.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_core::tls::TlsFiles;
use kith_tests::*;
use tokio::sync::mpsc;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hub_binary() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("KITH_HUB_BIN") {
        return path.into();
    }
    // target/debug/deps/load-HASH → target/debug/kith-hub
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("kith-hub");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p kith-hub` first, or set KITH_HUB_BIN",
        bin.display()
    );
    bin
}

struct HubProcess {
    child: Child,
}

impl HubProcess {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn rss_kb(&self) -> u64 {
        proc_status_kb_of(&self.pid(), "VmRSS").unwrap_or(0)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A source-only record of `custodian`'s about `nhs`: the hub keeps only a
/// summary and asks the custodian's link for the detail at each query.
fn source_only(custodian: &str, record_id: &str, nhs: &str, ty: &str) -> v1::RelationshipRecord {
    let mut v: serde_json::Value = serde_json::from_str(&record_json(
        custodian,
        record_id,
        1,
        nhs,
        ty,
        &["direct_care", "care_planning"],
    ))
    .unwrap();
    v["residency"] = "source_only".into();
    let record: kith_core::Record = serde_json::from_value(v).unwrap();
    kith_core::wire::record_to_wire(&record)
}

/// Opens an agent link that sends a heartbeat every 5 s and answers each
/// detail request with `answer` (or never, when `None`). Returns when the
/// welcome arrived; the link lives until `stop`.
async fn open_link(
    addr: std::net::SocketAddr,
    tls: TlsFiles,
    answer: Option<v1::RelationshipRecord>,
    stop: Arc<AtomicBool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let ch = channel(addr, &tls).await.map_err(|e| e.to_string())?;
    let mut client = v1::agent_link_service_client::AgentLinkServiceClient::new(ch);
    let (outbound, rx) = mpsc::channel(16);
    outbound
        .send(v1::AgentMessage {
            message: Some(v1::agent_message::Message::Hello(v1::AgentHello {
                agent_version: "load".into(),
            })),
        })
        .await
        .unwrap();
    let mut inbound = client
        .open_link(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    match inbound.message().await {
        Ok(Some(v1::HubMessage {
            message: Some(v1::hub_message::Message::Welcome(_)),
        })) => {}
        other => return Err(format!("no welcome: {other:?}")),
    }
    Ok(tokio::spawn(async move {
        let mut beat = tokio::time::interval(Duration::from_secs(5));
        while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                _ = beat.tick() => {
                    let _ = outbound.send(v1::AgentMessage {
                        message: Some(v1::agent_message::Message::Heartbeat(v1::Heartbeat {
                            sent_at_unix_ms: 0,
                        })),
                    }).await;
                }
                m = inbound.message() => match m {
                    Ok(Some(v1::HubMessage { message: Some(v1::hub_message::Message::DetailRequest(r)) })) => {
                        if let Some(record) = &answer {
                            let _ = outbound.send(v1::AgentMessage {
                                message: Some(v1::agent_message::Message::Detail(v1::DetailResponse {
                                    request_id: r.request_id,
                                    result: Some(v1::detail_response::Result::Record(record.clone())),
                                })),
                            }).await;
                        }
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                },
            }
        }
    }))
}

#[derive(Default)]
struct Tally {
    codes: BTreeMap<String, u64>,
    /// Latencies of successful queries, in microseconds.
    latencies: Vec<u64>,
    detail: u64,
    unreachable: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load run: about 70 s, 1,200 connections; run by hand (see the file's doc)"]
async fn a_thousand_links_and_two_hundred_query_clients_for_a_minute() {
    let seconds = env_or("KITH_LOAD_SECONDS", 60) as u64;
    let links = env_or("KITH_LOAD_LINKS", 1000);
    let clients = env_or("KITH_LOAD_CLIENTS", 200);
    let t = TestDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = t.hub_config(port);
    config.detail_timeout_ms = 1000;
    config.audit.checkpoint_interval_ms = 1000;
    let config_path = t.path().join("hub.toml");
    std::fs::write(&config_path, config.to_toml()).unwrap();
    let log = std::fs::File::create(t.path().join("hub.log")).unwrap();
    let mut hub = HubProcess {
        child: Command::new(hub_binary())
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    };
    let addr = config.listen;
    assert!(
        eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await,
        "the hub did not start; see {}",
        t.path().join("hub.log").display()
    );
    let rss_idle = hub.rss_kb();

    // Two custodians with a source-only record each: the trust's links
    // answer detail requests, council A's never do.
    let answering = source_only(TRUST_C, "mh-1", &test_nhs_number(41), "mental_health");
    let silent = source_only(
        COUNCIL_A,
        "asc-1",
        &test_nhs_number(42),
        "adult_social_care",
    );
    publish_accepted(addr, &t.agent_tls(TRUST_C), vec![answering.clone()]).await;
    publish_accepted(addr, &t.agent_tls(COUNCIL_A), vec![silent.clone()]).await;

    // The links, spread over four authorities, opened 50 at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let authorities = [TRUST_C, COUNCIL_A, COUNCIL_B, POLICE_D];
    let opened_at = Instant::now();
    let mut handles = Vec::new();
    let mut link_failures = 0;
    for batch in (0..links).collect::<Vec<_>>().chunks(50) {
        let mut opening = Vec::new();
        for &i in batch {
            let authority = authorities[i % authorities.len()];
            let answer = match authority {
                COUNCIL_A => None,
                TRUST_C => Some(answering.clone()),
                _ => Some(answering.clone()),
            };
            opening.push(tokio::spawn(open_link(
                addr,
                t.agent_tls(authority),
                answer,
                stop.clone(),
            )));
        }
        for o in opening {
            match o.await.unwrap() {
                Ok(h) => handles.push(h),
                Err(e) => {
                    link_failures += 1;
                    eprintln!("link failed to open: {e}");
                }
            }
        }
    }
    let open_time = opened_at.elapsed();
    let rss_linked = hub.rss_kb();
    eprintln!(
        "{} links open in {open_time:?} ({link_failures} failed); hub RSS {rss_idle} kB idle, {rss_linked} kB with links",
        handles.len()
    );

    // The query clients: half ask for the trust's record (detail fetched
    // from a live link), half for council A's (whose links never answer, so
    // each waits the detail timeout).
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let fast = Arc::new(Mutex::new(Tally::default()));
    let slow = Arc::new(Mutex::new(Tally::default()));
    let mut workers = Vec::new();
    for i in 0..clients {
        let (nhs, tally) = if i % 2 == 0 {
            (test_nhs_number(41), fast.clone())
        } else {
            (test_nhs_number(42), slow.clone())
        };
        let tls = t.agent_tls(COUNCIL_B);
        workers.push(tokio::spawn(async move {
            let ch = match channel(addr, &tls).await {
                Ok(ch) => ch,
                Err(e) => {
                    *tally
                        .lock()
                        .unwrap()
                        .codes
                        .entry(format!("connect: {e}"))
                        .or_default() += 1;
                    return;
                }
            };
            let mut q = query_client(ch);
            while Instant::now() < deadline {
                let started = Instant::now();
                let r = q
                    .query(query_request(
                        &nhs,
                        v1::Purpose::CarePlanning,
                        "social_worker",
                    ))
                    .await;
                let took = started.elapsed().as_micros() as u64;
                let mut tally = tally.lock().unwrap();
                match r {
                    Ok(answer) => {
                        let answer = answer.into_inner();
                        *tally.codes.entry("Ok".into()).or_default() += 1;
                        tally.latencies.push(took);
                        if answer
                            .records
                            .first()
                            .is_some_and(|r| r.level == v1::DisclosureLevel::Detail as i32)
                        {
                            tally.detail += 1;
                        }
                        if answer
                            .authority_statuses
                            .iter()
                            .any(|s| s.state == v1::AuthorityState::Unreachable as i32)
                        {
                            tally.unreachable += 1;
                        }
                    }
                    Err(status) => {
                        *tally
                            .codes
                            .entry(format!("{:?}", status.code()))
                            .or_default() += 1;
                    }
                }
            }
        }));
    }
    let mut rss_max = 0;
    let mut alive = true;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(hub.rss_kb());
        if !hub.alive() {
            alive = false;
            break;
        }
    }
    for w in workers {
        w.await.unwrap();
    }
    let still_linked = handles.iter().filter(|h| !h.is_finished()).count();
    stop.store(true, Ordering::Relaxed);
    let rss_end = hub.rss_kb();
    alive &= hub.alive();

    let report = |name: &str, tally: &Tally| {
        let mut l = tally.latencies.clone();
        l.sort_unstable();
        eprintln!(
            "{name}: {:?}; detail {} unreachable {}; latency p50 {} ms p99 {} ms max {} ms; {:.0} queries/s",
            tally.codes,
            tally.detail,
            tally.unreachable,
            percentile(&l, 0.5) / 1000,
            percentile(&l, 0.99) / 1000,
            l.last().copied().unwrap_or(0) / 1000,
            l.len() as f64 / seconds as f64,
        );
    };
    let fast = std::mem::take(&mut *fast.lock().unwrap());
    let slow = std::mem::take(&mut *slow.lock().unwrap());
    report("trust's record (live links)", &fast);
    report("council A's record (silent links)", &slow);
    eprintln!(
        "hub RSS: idle {rss_idle} kB, links open {rss_linked} kB, max under load {rss_max} kB, end {rss_end} kB; \
         {still_linked} of {} links still open at the end",
        handles.len()
    );

    assert!(alive, "the hub process died; see its log");
    assert_eq!(link_failures, 0, "every link opened");
    assert_eq!(
        still_linked,
        handles.len(),
        "no link was dropped under load"
    );
    for tally in [&fast, &slow] {
        for code in tally.codes.keys() {
            assert!(
                ["Ok", "ResourceExhausted", "Unavailable"].contains(&code.as_str()),
                "an unexpected outcome under load: {code}"
            );
        }
    }
    // A silent custodian never stalls another's fetches: the trust's detail
    // keeps coming, each well inside the detail timeout.
    let mut l = fast.latencies.clone();
    l.sort_unstable();
    assert!(
        fast.detail > 0 && fast.unreachable == 0,
        "trust: {:?}",
        fast.codes
    );
    assert!(
        percentile(&l, 0.99) < 1_000_000,
        "p99 {} µs reached the detail timeout",
        percentile(&l, 0.99)
    );
    assert!(slow.unreachable > 0, "council A's silent links were asked");
    assert!(rss_max < 2 * 1024 * 1024, "hub RSS reached {rss_max} kB");
}
