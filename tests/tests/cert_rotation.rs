//! Certificates rotate without downtime (#16.3): under query load, the hub's
//! and an agent's certificates are replaced (new files, then a reload as
//! SIGHUP asks for one); no call fails, live connections carry on, and new
//! handshakes present the new certificate, checked by the serial the other
//! end sees. A bad file is refused with its reason and the certificate
//! already loaded keeps serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kith_agent::hub_client::HubConnector;
use kith_agent::tls::HubTls;
use kith_agent::{Agent, AgentConfig, RunningAgent};
use kith_core::AuthorityCode;
use kith_core::pki::{CertificateAuthority, Validity};
use kith_hub::server::RunningHub;
use kith_ops::tls_files::serial_of_pem;
use kith_proto::v1 as pb;
use kith_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

fn ca(t: &TestDir) -> CertificateAuthority {
    CertificateAuthority::from_pem(
        &std::fs::read_to_string(t.path().join("pki").join("ca.crt.pem")).unwrap(),
        &std::fs::read_to_string(t.path().join("pki").join("ca.key.pem")).unwrap(),
    )
    .unwrap()
}

fn args(nhs: &str) -> kith_agent::QueryArgs {
    kith_agent::QueryArgs {
        nhs_number: Some(nhs.to_string()),
        purpose: Some(kith_core::Purpose::Safeguarding),
        user_id: "u-7".into(),
        role: "social_worker".into(),
        display_name: "Sam".into(),
        ..kith_agent::QueryArgs::default()
    }
}

/// What one load client did: calls answered, calls failed, and the first
/// few failures (bounded: a client that fails stops after [`MAX_FAILURES`]).
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failed: u64,
    failures: Vec<String>,
}

const MAX_FAILURES: u64 = 20;

impl Tally {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.failures.len() < 5 {
            self.failures.push(why);
        }
    }

    /// Whether the client should go on.
    fn going(&self, stopped: &watch::Receiver<bool>) -> bool {
        !*stopped.borrow() && self.failed < MAX_FAILURES
    }
}

/// Clients looping queries until told to stop.
struct Load {
    stop: watch::Sender<bool>,
    clients: Vec<(&'static str, JoinHandle<Tally>)>,
}

impl Load {
    /// Three kinds of client, two of each: one long-lived connection as
    /// council B; a new connection per call as council B (the agent's
    /// `query`, which dials afresh each time); a new connection per call as
    /// council A through the running agent's reloadable TLS.
    fn start(hub: SocketAddr, b: &AgentConfig, a: &AgentConfig, agent_a: &RunningAgent) -> Self {
        let (stop, watching) = watch::channel(false);
        let person = test_nhs_number(41);
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (stopped, b_tls, nhs) = (watching.clone(), tls_of(b), person.clone());
            clients.push((
                "long-lived connection",
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    let mut q = query_client(channel(hub, &b_tls).await.expect("channel"));
                    while tally.going(&stopped) {
                        let request =
                            query_request(&nhs, pb::Purpose::Safeguarding, "social_worker");
                        match q.query(request).await {
                            Ok(r) if r.get_ref().records.len() == 1 => tally.ok += 1,
                            Ok(r) => tally.fail(format!("answer {:?}", r.into_inner())),
                            Err(s) => tally.fail(format!("{s:?}")),
                        }
                    }
                    tally
                }),
            ));
            let (stopped, b, nhs) = (watching.clone(), b.clone(), person.clone());
            clients.push((
                "new connection per call",
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    while tally.going(&stopped) {
                        match kith_agent::query(&b, args(&nhs)).await {
                            Ok(r) if r.records.len() == 1 => tally.ok += 1,
                            Ok(r) => tally.fail(format!("{} records", r.records.len())),
                            Err(e) => tally.fail(e.to_string()),
                        }
                    }
                    tally
                }),
            ));
            let (stopped, a, tls, nhs) = (
                watching.clone(),
                a.clone(),
                agent_a.hub_tls().clone(),
                person.clone(),
            );
            clients.push((
                "rotating agent, new connection per call",
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    while tally.going(&stopped) {
                        match query_through(&a, &tls, &nhs).await {
                            Ok(()) => tally.ok += 1,
                            Err(e) => tally.fail(e),
                        }
                    }
                    tally
                }),
            ));
        }
        Self { stop, clients }
    }

    /// Stops the clients and returns every tally, after asserting none
    /// failed and each made calls.
    async fn finish(mut self) -> u64 {
        self.stop.send_replace(true);
        let mut total = 0;
        for (kind, client) in std::mem::take(&mut self.clients) {
            let tally = client.await.unwrap();
            assert!(
                tally.failed == 0,
                "{kind}: {} failed calls (of {}): {:?}",
                tally.failed,
                tally.ok + tally.failed,
                tally.failures
            );
            assert!(tally.ok > 0, "{kind} made no call");
            total += tally.ok;
        }
        total
    }
}

impl Drop for Load {
    /// A test that fails half-way stops its clients too.
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn tls_of(config: &AgentConfig) -> kith_core::tls::TlsFiles {
    config.tls_files()
}

/// One query as the agent of `config`, on a new connection dialled with
/// `tls` as it stands now.
async fn query_through(config: &AgentConfig, tls: &HubTls, nhs: &str) -> Result<(), String> {
    let mut hub = HubConnector::with_tls(config, Some(Duration::from_secs(10)), tls.clone())
        .map_err(|e| e.to_string())?;
    let (_, channel) = hub.channel().await.map_err(|e| e.to_string())?;
    let request = query_request(nhs, pb::Purpose::Safeguarding, "social_worker");
    let answer = query_client(channel)
        .query(request)
        .await
        .map_err(|s| format!("{s:?}"))?;
    if answer.get_ref().records.len() == 1 {
        Ok(())
    } else {
        Err(format!("answer {:?}", answer.into_inner()))
    }
}

/// The serial of the certificate the hub presents to a new handshake.
async fn hub_serial_seen(hub: SocketAddr, as_agent: &AgentConfig) -> String {
    let tls = HubTls::from_config(as_agent).unwrap();
    tokio::time::timeout(WAIT, tls.connect("127.0.0.1", hub.port()))
        .await
        .expect("handshake in time")
        .expect("handshake");
    tls.last_hub_serial()
        .expect("the hub presented a certificate")
}

/// The serial of the client certificate `agent` presents to a new
/// handshake, as a server trusting the federation CA sees it.
async fn agent_serial_seen(t: &TestDir, agent: &RunningAgent) -> String {
    let server = kith_hub::tls::load(&t.hub_config(0).tls)
        .expect("hub files")
        .value;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.expect("server handshake");
        let der = tls
            .get_ref()
            .1
            .peer_certificates()
            .expect("a client certificate")[0]
            .clone();
        let (_, _, serial) = kith_ops::tls_files::dates_and_serial(&der).unwrap();
        let _ = tls.shutdown().await;
        serial
    });
    let mut client = tokio::time::timeout(WAIT, agent.hub_tls().connect("127.0.0.1", port))
        .await
        .expect("client handshake in time")
        .expect("client handshake");
    let serial = tokio::time::timeout(WAIT, accepted)
        .await
        .expect("server handshake in time")
        .unwrap();
    let _ = client.read(&mut [0u8; 1]).await;
    serial
}

async fn publish_one(t: &TestDir, hub: &RunningHub) {
    publish_accepted(
        hub.addr(),
        &t.agent_tls(COUNCIL_A),
        vec![record_wire(
            COUNCIL_A,
            "cin-41",
            1,
            &test_nhs_number(41),
            "child_in_need",
            &["safeguarding", "direct_care"],
        )],
    )
    .await;
}

/// Writes a new hub certificate and key over the hub's files.
fn new_hub_certificate(t: &TestDir) -> String {
    let hub = ca(t)
        .issue_hub(&["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    let config = t.hub_config(0);
    std::fs::write(&config.tls.key, &hub.key_pem).unwrap();
    std::fs::write(&config.tls.cert, &hub.cert_pem).unwrap();
    serial_of_pem(hub.cert_pem.as_bytes()).unwrap()
}

/// Enrols council A as an operator would: key and CSR made on "its
/// machine", the CSR signed by the federation CA after the directory
/// check, then the new key and certificate installed over the old files.
fn enrol_council_a(t: &TestDir, config: &AgentConfig) -> String {
    let code = AuthorityCode::new(COUNCIL_A).unwrap();
    let out = t.path().join(format!("enrol-{}", rand_suffix()));
    let files = kith_core::enrolment::write_request(&out, &code).unwrap();
    let csr = std::fs::read_to_string(&files.csr).unwrap();
    let is_member = |c: &AuthorityCode| members().iter().any(|m| m.code == c.as_str());
    let issued =
        kith_core::enrolment::issue(&ca(t), &csr, &is_member, Some(&code), Validity::default())
            .unwrap();
    std::fs::copy(&files.key, &config.tls.key).unwrap();
    std::fs::write(&config.tls.cert, &issued.cert_pem).unwrap();
    serial_of_pem(issued.cert_pem.as_bytes()).unwrap()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A hub with council A's record, council A's agent running, and council
/// B's config.
async fn federation() -> (TestDir, RunningHub, AgentConfig, AgentConfig, RunningAgent) {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    publish_one(&t, &hub).await;
    let a_config = t.agent_config(COUNCIL_A, hub.addr());
    let b_config = t.agent_config(COUNCIL_B, hub.addr());
    let agent_a = Agent::start(a_config.clone()).await.unwrap();
    (t, hub, a_config, b_config, agent_a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hub_and_agent_certificates_rotate_under_query_load_with_no_failed_call() {
    let (t, hub, a_config, b_config, agent_a) = federation().await;
    assert!(agent_a.wait_until_linked(WAIT).await, "agent A linked");

    let hub_serial_before = hub_serial_seen(hub.addr(), &b_config).await;
    let agent_serial_before = agent_serial_seen(&t, &agent_a).await;

    let load = Load::start(hub.addr(), &b_config, &a_config, &agent_a);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The hub: new files, then a reload (what SIGHUP asks for).
    let hub_serial = new_hub_certificate(&t);
    assert_ne!(hub_serial, hub_serial_before);
    let reloaded = hub.tls_reload_handle().reload().await.unwrap().unwrap();
    assert_eq!(reloaded.serial, hub_serial);
    assert_eq!(hub_serial_seen(hub.addr(), &b_config).await, hub_serial);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Council A's agent: enrolled anew, files installed, reloaded.
    let agent_serial = enrol_council_a(&t, &a_config);
    assert_ne!(agent_serial, agent_serial_before);
    let reloaded = agent_a.tls_reload_handle().reload().await.unwrap().unwrap();
    assert_eq!(reloaded.serial, agent_serial);
    assert_eq!(agent_serial_seen(&t, &agent_a).await, agent_serial);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let calls = load.finish().await;
    assert!(calls >= 20, "only {calls} calls under load");
    eprintln!("{calls} calls under load, none failed");

    // The agent's link, dialled before the rotation, is still up, and
    // what it publishes now still arrives.
    assert!(
        agent_a.link_state().borrow().connected,
        "agent A's link dropped"
    );
    drop_file(
        &a_config,
        "after-rotation.jsonl",
        &record_json(
            COUNCIL_A,
            "cin-42",
            1,
            &test_nhs_number(42),
            "child_in_need",
            &["safeguarding"],
        ),
    );
    agent_a.wake_publisher();
    agent_a.wait_until_drained(WAIT).await.unwrap();

    agent_a.shutdown().await;
    hub.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_picks_up_changed_files_without_being_asked() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let b_config = t.agent_config(COUNCIL_B, hub.addr());
    let before = hub_serial_seen(hub.addr(), &b_config).await;
    let serial = new_hub_certificate(&t);
    assert_ne!(serial, before);
    // tls_reload_interval_ms is 100 in tests: settled after two looks.
    assert!(
        eventually(WAIT, || async {
            hub_serial_seen(hub.addr(), &b_config).await == serial
        })
        .await,
        "the hub still presents {before}"
    );
    hub.shutdown().await.unwrap();
}

async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_refused_with_their_reason_and_the_old_certificate_keeps_serving() {
    let (t, hub, a_config, b_config, agent_a) = federation().await;
    let hub_config = t.hub_config(0);
    let hub_serial = hub_serial_seen(hub.addr(), &b_config).await;
    let agent_serial = agent_serial_seen(&t, &agent_a).await;
    let good_cert = std::fs::read_to_string(&hub_config.tls.cert).unwrap();
    let good_key = std::fs::read_to_string(&hub_config.tls.key).unwrap();

    // Each bad hub file, written over the good one: refused, and the hub
    // still presents its certificate and answers.
    let other = ca(&t).issue_hub(&["localhost".into()]).unwrap();
    let foreign = CertificateAuthority::generate("Some other CA")
        .unwrap()
        .issue_hub(&["localhost".into()])
        .unwrap();
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (
            "garbage certificate",
            "not a certificate",
            &good_key,
            "unparsable",
        ),
        (
            "key of another certificate",
            &good_cert,
            &other.key_pem,
            "key_mismatch",
        ),
        (
            "signed by another CA",
            &foreign.cert_pem,
            &foreign.key_pem,
            "untrusted",
        ),
    ];
    for (name, cert, key, outcome) in cases {
        std::fs::write(&hub_config.tls.cert, cert).unwrap();
        std::fs::write(&hub_config.tls.key, key).unwrap();
        let refused = hub.tls_reload_handle().reload().await.unwrap().unwrap_err();
        assert_eq!(refused.outcome(), outcome, "{name}: {refused}");
        assert_eq!(
            hub_serial_seen(hub.addr(), &b_config).await,
            hub_serial,
            "{name}"
        );
        let answer = ask_as(
            hub.addr(),
            &t.agent_tls(COUNCIL_B),
            query_request(
                &test_nhs_number(41),
                pb::Purpose::Safeguarding,
                "social_worker",
            ),
        )
        .await
        .unwrap();
        assert_eq!(answer.records.len(), 1, "{name}");
    }
    std::fs::write(&hub_config.tls.cert, &good_cert).unwrap();
    std::fs::write(&hub_config.tls.key, &good_key).unwrap();
    let metrics = scrape(hub.metrics_addr().expect("metrics")).await;
    for outcome in ["unparsable", "key_mismatch", "untrusted"] {
        assert!(
            metrics.contains(&format!("kith_tls_reloads_total{{outcome=\"{outcome}\"}}")),
            "{outcome} not counted:\n{metrics}"
        );
    }

    // An expired certificate for the agent, and one naming another
    // authority: refused, the agent still presents its own.
    let expired = ca(&t)
        .issue_authority(
            &AuthorityCode::new(COUNCIL_A).unwrap(),
            Validity {
                from_days_ago: 30,
                until_days_from_now: -1,
            },
        )
        .unwrap();
    let b_files = t.agent_tls(COUNCIL_B);
    let cases = vec![
        ("expired", expired.cert_pem, expired.key_pem, "expired"),
        (
            "another authority's",
            std::fs::read_to_string(&b_files.cert).unwrap(),
            std::fs::read_to_string(&b_files.key).unwrap(),
            "wrong_identity",
        ),
    ];
    for (name, cert, key, outcome) in cases {
        std::fs::write(&a_config.tls.cert, cert).unwrap();
        std::fs::write(&a_config.tls.key, key).unwrap();
        let refused = agent_a
            .tls_reload_handle()
            .reload()
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.outcome(), outcome, "{name}: {refused}");
        assert_eq!(
            agent_serial_seen(&t, &agent_a).await,
            agent_serial,
            "{name}"
        );
        query_through(&a_config, agent_a.hub_tls(), &test_nhs_number(41))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    agent_a.shutdown().await;
    hub.shutdown().await.unwrap();
}
