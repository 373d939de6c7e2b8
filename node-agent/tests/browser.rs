//! The staff console in a real browser: Debian's chromium, driven by
//! playwright-core (tests/browser/scenarios.mjs), against a real hub and
//! Council B's agent with its console on loopback, and a real OpenID
//! provider (node's `oidc-provider`, tests/browser/provider.mjs).
//!
//! Needs `/usr/bin/chromium` and `npm ci` in tests/browser. Without them
//! the test says so loudly and passes, except under CI (env `CI` set),
//! where it fails. `KITH_CONSOLE_SCREENSHOTS=DIR` makes the scenarios write
//! PNGs of the main pages to DIR (docs/console/ holds the committed ones).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kith_agent::Agent;
use kith_agent::console::accounts::{Accounts, NewAccount};
use kith_agent::console::{ConsoleSection, Roles};
use kith_tests::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const PASSWORD: &str = "a long test password";
const CLIENT_SECRET: &str = "browser-test-client-secret-0123456789";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The most the whole scenario run may take.
const RUN_LIMIT: Duration = Duration::from_secs(540);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("browser")
}

/// Why the browser tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    let dir = browser_dir();
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    for module in ["playwright-core", "axe-core", "oidc-provider"] {
        if !dir.join("node_modules").join(module).exists() {
            return Some(format!(
                "{module} is not installed (run `npm ci` in {})",
                dir.display()
            ));
        }
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("node is not on the PATH".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_chromium_with_local_and_oidc_sign_in() {
    if let Some(why) = missing() {
        let banner = format!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! BROWSER TESTS NOT RUN: {why}\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        if std::env::var_os("CI").is_some() {
            panic!("{banner}(CI is set: the browser tests must run)");
        }
        eprintln!("{banner}");
        return;
    }
    let t = TestDir::new();
    let hub = t.start_hub().await;

    // The records searched (one with `<script>` in a field), and more
    // children with a plan for the flows that break glass (the time box,
    // once open for a user and person, leaves no button to press).
    let nhs = test_nhs_number(42);
    let spares: Vec<String> = (100..110).map(test_nhs_number).collect();
    publish_console_people(hub.addr(), &t, &nhs, &spares).await;

    // The OpenID provider, told the console's callback.
    // A free port now: the console's callback URL must be registered at
    // the provider before the console starts.
    let console_port = kith_tests::process::free_port();
    let console_url = format!("http://127.0.0.1:{console_port}");
    let redirect = format!("{console_url}/oidc/callback");
    let mut provider = Command::new("node")
        .arg("provider.mjs")
        .arg(&redirect)
        .arg(CLIENT_SECRET)
        .current_dir(browser_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts the provider");
    let mut provider_out = BufReader::new(provider.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), provider_out.next_line())
        .await
        .expect("the provider starts within 30 s")
        .unwrap()
        .expect("the provider prints its issuer");
    let issuer = serde_json::from_str::<serde_json::Value>(&first).unwrap()["issuer"]
        .as_str()
        .unwrap()
        .to_string();

    // Council B's agent: console on loopback HTTP, a one-minute idle
    // timeout, local accounts and the provider.
    let secret_file = t.path().join("oidc-client-secret");
    std::fs::write(&secret_file, CLIENT_SECRET).unwrap();
    let mut console =
        ConsoleSection::plain_loopback(format!("127.0.0.1:{console_port}").parse().unwrap());
    console.idle_timeout_minutes = 1;
    console.oidc = Some(
        toml::from_str(&format!(
            r#"
            issuer = "{issuer}"
            client_id = "kith-console"
            client_secret_file = "{}"
            redirect_url = "{redirect}"
            scopes = ["profile", "kith"]
            label = "Test Council account"
            [claims]
            user_id = "sub"
            display_name = "name"
            team = "team"
            role = "groups"
            [role_map]
            "kith-social-workers" = "social_worker"
            "kith-ed-clinicians" = "ed_clinician"
            "#,
            secret_file.display()
        ))
        .unwrap(),
    );
    let mut config = t.agent_config(COUNCIL_B, hub.addr());
    config.console = Some(console);
    let outbox = kith_agent::Outbox::open(&config.outbox_path())
        .await
        .unwrap();
    let accounts = Accounts::new(&outbox);
    for (user, name, role) in [
        ("sam.patel", "Sam Patel", "social_worker"),
        ("dpo", "Dana Price", "auditor"),
        ("lee.grant", "Lee Grant", "operator"),
    ] {
        accounts
            .add(
                &NewAccount {
                    user_id: user.into(),
                    display_name: name.into(),
                    team: "MASH".into(),
                    role: role.into(),
                },
                PASSWORD,
                &Roles::default_set(),
            )
            .await
            .unwrap();
    }
    outbox.close().await;
    let db_path = config.outbox_path();
    let drop_dir = config.drop_dir.clone();
    let agent = Agent::start(config).await.expect("agent starts");
    assert_eq!(agent.console_address().unwrap().port(), console_port);
    // A source file with one refused line (a bad NHS number), for the
    // operator's page.
    let mut bad: serde_json::Value = serde_json::from_str(&record_json(
        COUNCIL_B,
        "cin-bad-1",
        1,
        "1234567890",
        "child_in_need",
        &["safeguarding"],
    ))
    .unwrap();
    bad["subject"]["nhs_number"] = "1234567890".into();
    std::fs::write(drop_dir.join(".refused.partial"), format!("{bad}\n")).unwrap();
    std::fs::rename(
        drop_dir.join(".refused.partial"),
        drop_dir.join("refused-lines.jsonl"),
    )
    .unwrap();
    let report = drop_dir.join("done").join("refused-lines.jsonl");
    assert!(
        eventually(Duration::from_secs(20), || async { report.exists() }).await,
        "the refused file was not taken"
    );

    // The scenarios.
    let accounts_json = serde_json::json!({
        "case_worker": {"user": "sam.patel", "password": PASSWORD},
        "auditor": {"user": "dpo", "password": PASSWORD},
        "operator": {"user": "lee.grant", "password": PASSWORD},
    });
    let mut command = Command::new("node");
    command
        .arg("scenarios.mjs")
        .current_dir(browser_dir())
        .env("KITH_CONSOLE_URL", &console_url)
        .env("KITH_NHS", &nhs)
        .env("KITH_SPARE_NHS", spares.join(","))
        .env("KITH_ACCOUNTS", accounts_json.to_string())
        .env("KITH_CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    match std::env::var_os("KITH_CONSOLE_SCREENSHOTS") {
        Some(dir) => command.env("KITH_SCREENSHOTS", dir),
        None => command.env_remove("KITH_SCREENSHOTS"),
    };
    let mut run = command.spawn().expect("node starts the scenarios");
    let mut stdin = run.stdin.take().unwrap();
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    let mut report = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "KITH-AGE-SESSIONS" {
                age_sessions(&db_path, Duration::from_secs(61)).await;
                stdin.write_all(b"aged\n").await.unwrap();
                stdin.flush().await.unwrap();
                continue;
            }
            eprintln!("{line}");
            report.push(line);
        }
    };
    tokio::time::timeout(RUN_LIMIT, read)
        .await
        .expect("the scenarios finish in time");
    let status = run.wait().await.unwrap();
    drop(provider.stdin.take());
    let _ = provider.kill().await;
    agent.shutdown().await;

    let failures: Vec<&String> = report.iter().filter(|l| l.starts_with("not ok")).collect();
    assert!(failures.is_empty(), "failed scenarios:\n{failures:#?}");
    let last = report.last().cloned().unwrap_or_default();
    let passed: usize = last
        .strip_prefix("browser: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Ten flows and an axe-core check a page in tests/browser/pages.mjs.
    assert!(passed >= 20, "too few scenarios ran: {last:?}");
    assert!(last.ends_with(" 0 failed"), "{last}");
    assert!(status.success(), "the scenario script exited {status}");
}

/// Moves every console session's last use `by` into the past, in the
/// agent's own database, as if the browser had been left alone that long.
async fn age_sessions(db: &Path, by: Duration) {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let aged = sqlx::query("UPDATE console_sessions SET last_seen_at = last_seen_at - ?")
        .bind(by.as_millis() as i64)
        .execute(&pool)
        .await
        .unwrap();
    assert!(aged.rows_affected() >= 1, "no session to age");
    pool.close().await;
}
