//! A live `kith-hub serve` process and an agent, scraped: every metric the
//! issue names is there with the value the traffic made, no personal data
//! is in any label or value, and `promtool check metrics` (Debian's
//! `prometheus` package) passes on both scrapes. The shipped alert rules
//! pass `promtool check rules` and their own `promtool test rules` cases.
//!
//! The hub runs as its own process, the agent in this test's process, so
//! each scrape holds only its own binary's metrics (the recorder is one
//! per process). Without promtool the test says so and checks the rest;
//! under CI (`CI` set) a missing promtool fails it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kith_agent::Agent;
use kith_tests::process::{free_port, serve_hub, wait_listening};
use kith_tests::v1 as pb;
use kith_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HUB: &str = env!("CARGO_BIN_EXE_kith-hub");

/// `GET /metrics` over plain HTTP/1.1; the body.
async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    if path == "/metrics" && status == 200 {
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
    }
    (status, body.to_string())
}

/// The value of the sample `name{labels}` exactly as rendered.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn promtool() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing under CI: .ci/run installs Debian's `prometheus` package"
        );
        eprintln!(
            "SKIPPED the promtool checks: promtool not found (apt-get install prometheus); the rest was checked"
        );
    }
    found
}

fn promtool_check_metrics(promtool: &Path, what: &str, body: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics on the {what}'s scrape:\n{}{}\n--- scrape ---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_hub_and_agent_pass_promtool_and_count_what_happened() {
    let t = TestDir::new();
    let port = free_port();
    let metrics_port = free_port();
    let mut config = t.hub_config(port);
    config.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], metrics_port)));
    let config_path = t.path().join("hub.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let log = t.path().join("hub.log");
    let mut hub = serve_hub(HUB.as_ref(), &config_path, &log);
    let hub_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let hub_metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    assert!(
        wait_listening(hub_addr, Duration::from_secs(30)).await
            && wait_listening(hub_metrics, Duration::from_secs(5)).await,
        "the hub did not start:\n{}",
        hub.log_text()
    );

    // One good line and one bad one through the agent's drop folder.
    let agent_config = t.agent_config(COUNCIL_A, hub_addr);
    let agent = Agent::start(agent_config.clone()).await.unwrap();
    let nhs = test_nhs_number(41);
    let good = record_json(
        COUNCIL_A,
        "cpp-metrics-1",
        1,
        &nhs,
        "child_protection_plan",
        &["safeguarding", "direct_care"],
    );
    drop_file(
        &agent_config,
        "batch.jsonl",
        &format!("{good}\n{{\"record_id\": 7}}\n"),
    );
    let done = agent_config.drop_dir.join("done").join("batch.jsonl");
    assert!(eventually(Duration::from_secs(20), || async { done.exists() }).await);
    agent
        .wait_until_drained(Duration::from_secs(20))
        .await
        .unwrap();
    assert!(agent.wait_until_linked(Duration::from_secs(20)).await);

    // A query from another council: counted by outcome and purpose.
    let mut q = query_client(channel(hub_addr, &t.agent_tls(COUNCIL_B)).await.unwrap());
    let answer = q
        .query(query_request(
            &nhs,
            pb::Purpose::Safeguarding,
            "social_worker",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.records.len(), 1);
    // And a refused one (no role).
    assert!(
        q.query(query_request(&nhs, pb::Purpose::Safeguarding, ""))
            .await
            .is_err()
    );

    let hub_body = scrape(hub_metrics).await;
    let agent_body = scrape(agent.metrics_addr().expect("the agent serves metrics")).await;

    let expect = |body: &str, series: &str, want: f64| {
        assert_eq!(sample(body, series), Some(want), "{series} in\n{body}");
    };
    expect(
        &hub_body,
        r#"kith_hub_queries_total{outcome="ok",purpose="safeguarding"}"#,
        1.0,
    );
    expect(
        &hub_body,
        r#"kith_hub_queries_total{outcome="invalid",purpose="safeguarding"}"#,
        1.0,
    );
    expect(
        &hub_body,
        r#"kith_hub_published_records_total{outcome="accepted"}"#,
        1.0,
    );
    expect(&hub_body, "kith_hub_agent_links", 1.0);
    let shown: f64 = ["detail", "summary", "withheld"]
        .iter()
        .filter_map(|l| {
            sample(
                &hub_body,
                &format!(r#"kith_hub_decisions_total{{level="{l}"}}"#),
            )
        })
        .sum();
    assert_eq!(shown, 1.0, "one decision shown:\n{hub_body}");
    assert!(sample(&hub_body, "kith_hub_audit_append_duration_seconds_count").unwrap() >= 2.0);
    assert!(sample(&hub_body, "kith_hub_audit_batch_entries_count").unwrap() >= 2.0);
    // Histograms (buckets), not summaries.
    assert!(
        hub_body.contains("# TYPE kith_hub_query_duration_seconds histogram"),
        "{hub_body}"
    );
    assert!(
        sample(
            &hub_body,
            r#"kith_hub_query_duration_seconds_bucket{le="+Inf"}"#
        ) == Some(1.0),
        "{hub_body}"
    );
    let own = sample(
        &hub_body,
        r#"kith_certificate_expiry_seconds{certificate="own"}"#,
    )
    .unwrap();
    assert!(
        own > 300.0 * 86_400.0,
        "the test PKI's hub certificate has about a year: {own}"
    );
    assert!(
        sample(
            &hub_body,
            r#"kith_certificate_expiry_seconds{certificate="ca"}"#
        )
        .unwrap()
            > 0.0
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            sample(
                &scrape(hub_metrics).await,
                "kith_hub_checkpoint_age_seconds",
            )
            .is_some_and(|age| age < 5.0)
        })
        .await,
        "checkpoint age:\n{hub_body}"
    );
    // The hub's scrape holds only the hub's metrics, and the agent's only
    // the agent's (separate processes).
    assert!(!hub_body.contains("kith_agent_"), "{hub_body}");
    assert!(!agent_body.contains("kith_hub_"), "{agent_body}");

    expect(
        &agent_body,
        r#"kith_agent_drop_lines_total{outcome="accepted"}"#,
        1.0,
    );
    expect(
        &agent_body,
        r#"kith_agent_drop_lines_total{outcome="rejected"}"#,
        1.0,
    );
    expect(
        &agent_body,
        r#"kith_agent_deliveries_total{queue="records",outcome="accepted"}"#,
        1.0,
    );
    expect(&agent_body, "kith_agent_outbox_pending_records", 0.0);
    expect(
        &agent_body,
        "kith_agent_outbox_oldest_pending_age_seconds",
        0.0,
    );
    expect(&agent_body, "kith_agent_hub_link_up", 1.0);
    expect(&agent_body, "kith_agent_notifications_pending", 0.0);
    assert!(
        sample(
            &agent_body,
            r#"kith_certificate_expiry_seconds{certificate="own"}"#
        )
        .unwrap()
            > 300.0 * 86_400.0
    );

    // No person, user or record in either.
    for body in [&hub_body, &agent_body] {
        for personal in [
            nhs.as_str(),
            "Amelia",
            "O'Brien",
            "Jo Smith",
            "Sam Patel",
            "u-1001",
            "cpp-metrics-1",
            "M14",
        ] {
            assert!(!body.contains(personal), "{personal} in a scrape:\n{body}");
        }
        assert!(
            body.contains("# HELP kith_certificate_expiry_seconds"),
            "{body}"
        );
    }
    // Only /metrics is served.
    assert_eq!(get(hub_metrics, "/").await.0, 404);

    if let Some(promtool) = promtool() {
        promtool_check_metrics(&promtool, "hub", &hub_body);
        promtool_check_metrics(&promtool, "agent", &agent_body);
    }
    agent.shutdown().await;
    hub.kill();
}

#[test]
fn the_shipped_alert_rules_pass_promtool_and_their_own_tests() {
    let Some(promtool) = promtool() else { return };
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    for args in [
        vec!["check", "rules", "kith-alerts.yml"],
        vec!["test", "rules", "kith-alerts.test.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(&args)
            .current_dir(&deploy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `kith_…` metric names an expression text uses, histogram series
/// (`_bucket`, `_sum`, `_count`) under their histogram's name.
fn names_used(text: &str) -> std::collections::BTreeSet<String> {
    let mut used = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("kith_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        used.insert(base.to_string());
        rest = &tail[end..];
    }
    used
}

#[test]
fn the_dashboard_and_rules_use_only_metrics_that_exist() {
    let known: Vec<&str> = kith_hub::metrics::NAMES
        .iter()
        .chain(kith_agent::metrics::NAMES)
        .chain([&kith_ops::certificates::EXPIRY_GAUGE])
        .copied()
        .collect();
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("grafana/kith-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = String::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push_str(target["expr"].as_str().unwrap());
            exprs.push('\n');
        }
    }
    let rules = std::fs::read_to_string(deploy.join("prometheus/kith-alerts.yml")).unwrap();
    for (what, text) in [("dashboard", &exprs), ("alert rules", &rules)] {
        let used = names_used(text);
        assert!(used.len() >= 5, "{what}: {used:?}");
        for name in &used {
            assert!(
                known.contains(&name.as_str()),
                "{what} uses {name}, which no binary exports"
            );
        }
    }
    // Every metric is on the dashboard.
    let on_dashboard = names_used(&exprs);
    for name in &known {
        if *name != kith_hub::metrics::CHECKPOINT_TREE_SIZE {
            assert!(
                on_dashboard.contains(*name),
                "{name} is not on the dashboard"
            );
        }
    }
}
