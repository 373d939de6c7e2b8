//! One trace across the three processes a query crosses: the case worker's
//! agent opens it, the hub (a `kith-hub serve` process) joins it from the
//! call's `traceparent` header, and the custodian's agent joins it from the
//! detail request on its link, for a record held at source. Each exports
//! over OTLP to a collector this test runs (opentelemetry-proto's own
//! TraceService), and no exported span holds the person's NHS number or
//! name.
//!
//! The two agents run in this test's process (one tracer for both, service
//! `kith-agent`), the hub in its own (service `kith-hub`).

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_agent::config::PolicySection;
use kith_agent::{Agent, QueryArgs};
use kith_ops::telemetry::{LogFormat, LogOutput, TraceExport};
use kith_tests::process::{free_port, wait_listening, write_hub_config};
use kith_tests::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

const HUB: &str = env!("CARGO_BIN_EXE_kith-hub");
const SECRET_NAME: &str = "Quillfeather";

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// One exported span: its service, name, trace, ids and every attribute
/// value as text.
#[derive(Debug, Clone)]
struct Seen {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    text: String,
}

impl Collector {
    fn spans(&self) -> Vec<Seen> {
        let mut seen = Vec::new();
        for request in self.0.lock().unwrap().iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .and_then(|a| a.value.as_ref())
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        seen.push(Seen {
                            service: service.clone(),
                            name: span.name.clone(),
                            trace_id: span.trace_id.clone(),
                            span_id: span.span_id.clone(),
                            parent: span.parent_span_id.clone(),
                            text: format!("{:?} {:?}", span.attributes, span.events),
                        });
                    }
                }
            }
        }
        seen
    }
}

fn source_only_line(nhs: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&record_json(
        TRUST_C,
        "mh-src-1",
        1,
        nhs,
        "mental_health",
        &["direct_care", "care_planning"],
    ))
    .unwrap();
    v["residency"] = "source_only".into();
    v["subject"]["demographics"]["family_name"] = SECRET_NAME.into();
    v.to_string() + "\n"
}

#[test]
fn one_trace_spans_the_querying_agent_the_hub_and_the_custodian() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let endpoint = format!("http://{collector_addr}");
    // The agents (this process) export as an operator's environment would
    // make them; the hub reads that environment itself.
    let telemetry = kith_ops::telemetry::init_with(
        "kith-agent",
        LogOutput {
            format: LogFormat::Human,
            writer: std::io::stderr,
            ansi: false,
            flatten_json: false,
        },
        Some(TraceExport {
            endpoint: Some(endpoint.clone()),
            schedule_delay: Some(Duration::from_millis(100)),
        }),
    );
    assert!(telemetry.exporting());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = Collector::default();
    runtime.block_on(async {
        listener.set_nonblocking(true).unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(
            tokio::net::TcpListener::from_std(listener).unwrap(),
        );
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming),
        );

        let t = TestDir::with_store(TestStore::Sqlite);
        let port = free_port();
        let config = write_hub_config(&t, port);
        let log = std::fs::File::create(t.path().join("hub.log")).unwrap();
        let mut hub = Command::new(HUB)
            .args(["serve", "--config"])
            .arg(&config)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("RUST_LOG", "info")
            .env_remove("OTEL_SERVICE_NAME")
            .env_remove("OTEL_TRACES_EXPORTER")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(wait_listening(addr, Duration::from_secs(30)).await);

        // The trust's agent holds a record whose detail stays at source.
        let mut custodian = t.agent_config(TRUST_C, addr);
        custodian.policy = Some(PolicySection {
            dir: t.path().join("policies"),
            kind: "nhs_trust".into(),
            jurisdiction: "england".into(),
        });
        let agent = Agent::start(custodian.clone()).await.unwrap();
        let nhs = test_nhs_number(500);
        drop_file(&custodian, "mh.jsonl", &source_only_line(&nhs));
        let done = custodian.drop_dir.join("done").join("mh.jsonl");
        assert!(eventually(Duration::from_secs(20), || async { done.exists() }).await);
        agent
            .wait_until_drained(Duration::from_secs(20))
            .await
            .unwrap();
        assert!(agent.wait_until_linked(Duration::from_secs(20)).await);

        // Salford's case worker asks; the hub fetches the detail live.
        let asker = t.agent_config(COUNCIL_B, addr);
        let answer = kith_agent::query::query(
            &asker,
            QueryArgs {
                nhs_number: Some(nhs.clone()),
                purpose: Some(kith_core::Purpose::CarePlanning),
                user_id: "u-1001".into(),
                role: "social_worker".into(),
                display_name: "Sam Patel".into(),
                team: "Adults".into(),
                ..QueryArgs::default()
            },
        )
        .await
        .expect("query");
        // Held at source, shown at detail: fetched live from the trust.
        assert_eq!(answer.records.len(), 1, "{answer:?}");
        assert_eq!(answer.records[0].level, "detail", "{answer:?}");

        // Wait for all three spans of one trace.
        let found = eventually(Duration::from_secs(20), || async {
            trace_of_three(&collector.spans()).is_some()
        })
        .await;
        let spans = collector.spans();
        assert!(
            found,
            "no trace with the agent's, the hub's and the custodian's spans: {spans:#?}"
        );
        let (query, server, detail) = trace_of_three(&spans).unwrap();
        assert!(query.service.contains("kith-agent"), "{query:?}");
        assert!(server.service.contains("kith-hub"), "{server:?}");
        assert!(detail.service.contains("kith-agent"), "{detail:?}");
        assert_eq!(
            server.parent, query.span_id,
            "the hub's span is the agent call's child"
        );
        for span in &spans {
            assert!(
                !span.text.contains(&nhs) && !span.text.contains(SECRET_NAME),
                "personal data in a span: {span:?}"
            );
        }
        agent.shutdown().await;
        let _ = hub.kill();
        let _ = hub.wait();
    });
    drop(telemetry);
}

/// The agent's query span, the hub's server span and the custodian's
/// detail span of one trace, if the collector has them.
fn trace_of_three(spans: &[Seen]) -> Option<(Seen, Seen, Seen)> {
    let traces: HashSet<&Vec<u8>> = spans.iter().map(|s| &s.trace_id).collect();
    for trace in traces {
        let of = |name: &str| {
            spans
                .iter()
                .find(|s| &s.trace_id == trace && s.name == name)
                .cloned()
        };
        if let (Some(q), Some(s), Some(d)) = (
            of("kith.query"),
            of("kith.v1.QueryService/Query"),
            of("kith.detail"),
        ) {
            return Some((q, s, d));
        }
    }
    None
}
