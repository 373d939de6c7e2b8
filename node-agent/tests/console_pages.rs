//! The auditor's and operator's console pages over real sockets, against a
//! real hub over mutual TLS: each page for its role only (others refused,
//! signed-out users sent to sign-in), the navigation per role, the audit
//! search and subject report, a break-glass review recorded at the hub (and
//! refused without its CSRF token), log verification, both export formats,
//! the operator's status, drop-folder reports and notifications, and
//! hostile values shown as text. (No browser: the browser tests are
//! separate.)

use std::net::SocketAddr;
use std::time::Duration;

use kith_agent::audit::Auditor;
use kith_agent::console::ConsoleSection;
use kith_agent::console::Roles;
use kith_agent::console::accounts::{Accounts, NewAccount};
use kith_agent::{Agent, RunningAgent};
use kith_tests::v1 as pb;
use kith_tests::*;

mod console_http;
use console_http::*;

/// Every page of the auditor and the operator.
const AUDIT_PAGES: [&str; 5] = [
    "/audit/search",
    "/audit/subject",
    "/audit/break-glass",
    "/audit/verify",
    "/audit/export",
];
const OPERATOR_PAGE: &str = "/operator";

/// A hostile justification for the break glass, shown on the review queue.
const HOSTILE: &str = "<script>alert('bg')</script> child at risk, need history now";

struct World {
    t: TestDir,
    hub_addr: SocketAddr,
    /// The hub, kept running for the test (dropped with it).
    _hub: Box<dyn std::any::Any + Send>,
    agent: RunningAgent,
    nhs: String,
}

/// Council B's agent with a console on loopback HTTP and four accounts: a
/// social worker, an auditor, a second auditor and an operator. Council A
/// holds a child protection plan about the child; Council B one of its own
/// (so Council B is told when another authority sees it).
async fn world() -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(7);
    for (custodian, id) in [(COUNCIL_A, "cpp-a"), (COUNCIL_B, "cpp-b")] {
        let mut r = record_wire(
            custodian,
            id,
            1,
            &nhs,
            "child_protection_plan",
            &["safeguarding", "direct_care", "emergency"],
        );
        r.provenance.as_mut().unwrap().content_hash.clear();
        publish_accepted(hub.addr(), &t.agent_tls(custodian), vec![r]).await;
    }
    let mut config = t.agent_config(COUNCIL_B, hub.addr());
    config.console = Some(ConsoleSection::plain_loopback(
        "127.0.0.1:0".parse().unwrap(),
    ));
    add_accounts(
        &config,
        &[
            ("sam", "social_worker"),
            ("dpo", "auditor"),
            ("dpo2", "auditor"),
            ("ops", "operator"),
        ],
    )
    .await;
    let agent = Agent::start(config).await.expect("agent starts");
    World {
        t,
        hub_addr: hub.addr(),
        _hub: Box::new(hub),
        agent,
        nhs,
    }
}

impl World {
    fn addr(&self) -> SocketAddr {
        self.agent.console_address().unwrap()
    }

    /// Sam searches the child and breaks glass, through the console.
    async fn sam_breaks_glass(&self) {
        let (mut sam, csrf) = Browser::sign_in(self.addr(), "sam").await;
        let a = sam
            .post(
                "/search",
                &format!("csrf={csrf}&nhs_number={}&purpose=safeguarding", self.nhs),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let a = sam
            .post(
                "/break-glass",
                &format!(
                    "csrf={csrf}&nhs_number={}&purpose=safeguarding&step=claim&reason_code=immediate_safeguarding_risk&justification={}",
                    self.nhs,
                    enc(HOSTILE)
                ),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body.contains("Emergency access is open"), "{}", a.body);
    }

    async fn stop(self) {
        self.agent.shutdown().await;
    }
}

/// Posts `form` to `path` until the page contains `want` (the hub signs a
/// checkpoint every 50 ms, and the audit pages read up to the latest).
async fn post_until(b: &mut Browser, path: &str, form: &str, want: &str) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let a = b.post(path, form).await;
        if a.body.contains(want) || tokio::time::Instant::now() > deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn each_page_is_for_its_role_only_and_the_navigation_shows_only_those() {
    let w = world().await;
    let addr = w.addr();

    // Signed out: every page sends the browser to sign-in, GET or POST.
    let mut anon = Browser::new(addr);
    for path in AUDIT_PAGES.iter().chain([&OPERATOR_PAGE]) {
        let a = anon.get(path).await;
        assert_eq!(
            (a.status, a.header("location")),
            (303, Some("/sign-in")),
            "{path}"
        );
    }
    for path in [
        "/audit/search",
        "/audit/export",
        "/audit/break-glass/review",
        "/audit/verify",
    ] {
        let a = anon.post(path, "nhs_number=9434765919").await;
        assert_eq!(
            (a.status, a.header("location")),
            (303, Some("/sign-in")),
            "{path}"
        );
    }

    // The auditor: every audit page renders, with the audit navigation.
    let (mut dpo, _) = Browser::sign_in(addr, "dpo").await;
    for path in AUDIT_PAGES {
        let a = dpo.get(path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(
            a.body.contains("<h1 class=\"govuk-heading-l\">"),
            "{path} has a heading"
        );
        assert!(
            a.body
                .contains(&format!("href=\"{path}\" aria-current=\"page\"")),
            "{path} marked current"
        );
        for other in AUDIT_PAGES {
            assert!(
                a.body.contains(&format!("href=\"{other}\"")),
                "{other} in the navigation of {path}"
            );
        }
        assert!(
            !a.body.contains("href=\"/operator\"") && !a.body.contains("href=\"/search\""),
            "{path}"
        );
        assert!(!a.body.contains("<script"), "no script on {path}");
    }
    for path in [OPERATOR_PAGE, "/search"] {
        assert_eq!(
            dpo.get(path).await.status,
            403,
            "{path} refused to the auditor"
        );
    }

    // The operator: the status page only.
    let (mut ops, _) = Browser::sign_in(addr, "ops").await;
    let a = ops.get(OPERATOR_PAGE).await;
    assert_eq!(a.status, 200);
    assert!(
        a.body.contains("href=\"/operator\" aria-current=\"page\""),
        "{}",
        a.body
    );
    assert!(!a.body.contains("href=\"/audit") && !a.body.contains("href=\"/search\""));
    for path in AUDIT_PAGES.iter().chain([&"/search"]) {
        let a = ops.get(path).await;
        assert_eq!(a.status, 403, "{path} refused to the operator");
        assert!(a.body.contains("You cannot use this page"));
    }

    // The case worker: neither.
    let (mut sam, csrf) = Browser::sign_in(addr, "sam").await;
    let search = sam.get("/search").await;
    assert!(!search.body.contains("href=\"/audit") && !search.body.contains("href=\"/operator\""));
    for path in AUDIT_PAGES.iter().chain([&OPERATOR_PAGE]) {
        assert_eq!(
            sam.get(path).await.status,
            403,
            "{path} refused to the case worker"
        );
    }
    // Nor by POST, with a good token: nothing is read from the hub.
    let a = sam
        .post(
            "/audit/search",
            &format!("csrf={csrf}&nhs_number={}", w.nhs),
        )
        .await;
    assert_eq!(a.status, 403);
    let a = sam
        .post("/audit/export", &format!("csrf={csrf}&format=jsonl"))
        .await;
    assert_eq!(a.status, 403);
    assert!(a.header("content-disposition").is_none());
    w.stop().await;
}

#[tokio::test]
async fn an_auditor_searches_reports_on_a_person_and_reviews_a_break_glass_recorded_at_the_hub() {
    let w = world().await;
    w.sam_breaks_glass().await;
    let (mut dpo, csrf) = Browser::sign_in(w.addr(), "dpo").await;

    // Search: without the token nothing is read; a bad NHS number is named
    // at its field; a good search finds Sam's queries, newest first.
    let a = dpo
        .post("/audit/search", &format!("nhs_number={}", w.nhs))
        .await;
    assert_eq!(a.status, 403);
    let a = dpo
        .post(
            "/audit/search",
            &format!("csrf={csrf}&nhs_number=9434765918&from_day=31&from_month=2&from_year=2026"),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(
        a.body.contains("href=\"#nhs-number\"") && a.body.contains("href=\"#from-day\""),
        "{}",
        a.body
    );
    let form = format!("csrf={csrf}&nhs_number={}&user=sam&kind=query", w.nhs);
    let a = post_until(&mut dpo, "/audit/search", &form, "2 matching").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("2 matching of"), "{}", a.body);
    assert!(a.body.contains("sam (Social worker)"), "{}", a.body);
    assert!(a.body.contains("Break glass"), "{}", a.body);
    // The justification is in no search column, and nothing is unescaped.
    assert!(!a.body.contains("<script>"), "{}", a.body);
    let a = dpo
        .post(
            "/audit/search",
            &format!("csrf={csrf}&nhs_number={}&purpose=care_planning", w.nhs),
        )
        .await;
    assert!(a.body.contains("No entry matches."), "{}", a.body);

    // The subject access report: both of Sam's queries, with the agreement.
    let a = dpo
        .post("/audit/subject", &format!("csrf={csrf}&nhs_number=12"))
        .await;
    assert_eq!(a.status, 422);
    let a = dpo
        .post(
            "/audit/subject",
            &format!("csrf={csrf}&nhs_number={}", w.nhs),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("2 accesses"), "{}", a.body);
    assert!(
        a.body.contains("E08000006/cpp-b") || a.body.contains("E08000003/cpp-a"),
        "{}",
        a.body
    );

    // The queue shows the break glass, the hostile justification as text.
    let queue = dpo.get("/audit/break-glass").await;
    assert_eq!(queue.status, 200);
    assert!(
        queue
            .body
            .contains("&lt;script&gt;alert('bg')&lt;/script&gt;"),
        "{}",
        queue.body
    );
    assert!(!queue.body.contains("<script>"));
    let at = queue.body.find("name=\"query_id\" value=\"").unwrap() + 23;
    let query_id = queue.body[at..].split('"').next().unwrap().to_string();

    // The review: refused without the token, then the form, then a
    // missing note named, then recorded.
    let a = dpo
        .post(
            "/audit/break-glass/review",
            &format!("query_id={query_id}&step=record&outcome=appropriate&note=fine"),
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("This form has expired"));
    let a = dpo
        .post(
            "/audit/break-glass/review",
            &format!("csrf={csrf}&query_id={query_id}"),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(
        a.body.contains("Was this access appropriate?"),
        "{}",
        a.body
    );
    let a = dpo
        .post(
            "/audit/break-glass/review",
            &format!("csrf={csrf}&query_id={query_id}&step=record&outcome=appropriate&note=+"),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(a.body.contains("href=\"#note\""), "{}", a.body);
    let a = dpo
        .post(
            "/audit/break-glass/review",
            &format!(
                "csrf={csrf}&query_id={query_id}&step=record&outcome=inappropriate&note={}",
                enc("No emergency: <b>routine</b> visit")
            ),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Review recorded"), "{}", a.body);

    // At the hub: reviewed, by the signed-in auditor, with the note.
    let config = w.agent.config().clone();
    let all = kith_agent::audit::break_glass::list(&config, Auditor::new("dpo2", "auditor"), true)
        .await
        .unwrap();
    let reviewed = all
        .iter()
        .find(|a| a.query_id == query_id)
        .expect("the access");
    let review = reviewed.review.as_ref().expect("reviewed at the hub");
    assert_eq!(review.reviewed_by, "dpo");
    assert_eq!(review.note, "No emergency: <b>routine</b> visit");
    // No longer awaiting review; shown reviewed, escaped, with ?all=yes.
    let queue = dpo.get("/audit/break-glass").await;
    assert!(
        queue
            .body
            .contains("No break-glass accesses are awaiting review."),
        "{}",
        queue.body
    );
    let all = dpo.get("/audit/break-glass?all=yes").await;
    assert!(
        all.body.contains("Inappropriate") && all.body.contains("&lt;b&gt;routine&lt;/b&gt;"),
        "{}",
        all.body
    );
    // A second review of the same access finds nothing to review.
    let a = dpo
        .post(
            "/audit/break-glass/review",
            &format!("csrf={csrf}&query_id={query_id}&step=record&outcome=appropriate&note=again"),
        )
        .await;
    assert_eq!(a.status, 404);
    w.stop().await;
}

#[tokio::test]
async fn the_log_verifies_and_exports_as_json_lines_and_fhir() {
    let w = world().await;
    w.sam_breaks_glass().await;
    let (mut dpo, csrf) = Browser::sign_in(w.addr(), "dpo").await;

    let a = dpo.get("/audit/verify").await;
    assert!(
        a.body
            .contains("This console has not verified the log yet."),
        "{}",
        a.body
    );
    assert_eq!(
        dpo.post("/audit/verify", "").await.status,
        403,
        "no token, no verify"
    );
    let a = dpo.post("/audit/verify", &format!("csrf={csrf}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Log verified"), "{}", a.body);
    assert!(
        a.body
            .contains("nothing: no checkpoint was verified before"),
        "{}",
        a.body
    );
    let a = dpo.get("/audit/verify").await;
    assert!(a.body.contains("id=\"saved-checkpoint\""), "{}", a.body);
    assert!(
        a.body.contains("id=\"last-run\"") && a.body.contains(">Verified<"),
        "{}",
        a.body
    );
    // Again: now proved consistent with the one saved.
    let a = dpo.post("/audit/verify", &format!("csrf={csrf}")).await;
    assert!(a.body.contains("the checkpoint verified at"), "{}", a.body);

    // JSON Lines, the whole log: every line parses, visible ones carry the
    // exact bytes, withheld ones their hash only.
    let a = dpo
        .post("/audit/export", &format!("csrf={csrf}&format=jsonl"))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("content-type"), Some("application/x-ndjson"));
    assert!(
        a.header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=\"kith-audit-")
    );
    let lines: Vec<serde_json::Value> = a
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.len() >= 4, "{}", a.body);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["index"], i as u64, "in order, none missing");
        assert_eq!(l["leaf_hash"].as_str().unwrap().len(), 64);
    }
    assert!(lines.iter().any(|l| l["entry"]["kind"] == "query"));
    assert!(
        lines.iter().any(|l| l.get("entry_base64").is_none()),
        "a withheld entry (another authority's publish) is hash only"
    );

    // FHIR, filtered to Sam's queries: AuditEvents, each a query by Sam.
    let a = dpo
        .post(
            "/audit/export",
            &format!("csrf={csrf}&format=fhir&user=sam&kind=query"),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/fhir+ndjson"));
    let events: Vec<serde_json::Value> = a
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{}", a.body);
    for e in &events {
        assert_eq!(e["resourceType"], "AuditEvent");
        assert_eq!(e["type"]["code"], "110112");
        assert_eq!(e["agent"][0]["altId"], "sam");
    }
    // A bad format or filter is named at its field, not downloaded.
    let a = dpo
        .post(
            "/audit/export",
            &format!("csrf={csrf}&format=xml&purpose=gossip"),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(a.header("content-disposition").is_none());
    assert!(
        a.body.contains("href=\"#format\"") && a.body.contains("href=\"#purpose\""),
        "{}",
        a.body
    );
    w.stop().await;
}

#[tokio::test]
async fn the_operator_sees_status_refused_lines_escaped_and_notifications() {
    let w = world().await;
    // A source file with one good line and one refused, its record id
    // hostile markup.
    let config = w.agent.config().clone();
    let good = record_json(
        COUNCIL_B,
        "asc-1",
        1,
        &test_nhs_number(9),
        "adult_social_care",
        &["care_planning"],
    );
    let mut bad: serde_json::Value = serde_json::from_str(&good).unwrap();
    bad["record_id"] = "<script>x</script>".into();
    bad["subject"]["nhs_number"] = "9434765918".into();
    drop_file(&config, "today.jsonl", &format!("{good}\n{bad}\n"));
    assert!(
        eventually(Duration::from_secs(10), || async {
            config
                .drop_dir
                .join("done")
                .join("today.jsonl.report.json")
                .exists()
        })
        .await
    );
    // Council A's social worker sees Council B's plan: Council B is told.
    let request = query_request(&w.nhs, pb::Purpose::Safeguarding, "social_worker");
    ask_as(w.hub_addr, &w.t.agent_tls(COUNCIL_A), request)
        .await
        .unwrap();

    let (mut ops, _) = Browser::sign_in(w.addr(), "ops").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let a = ops.get(OPERATOR_PAGE).await;
        if a.body.contains("id=\"notifications\"") || tokio::time::Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let body = &page.body;
    assert_eq!(page.status, 200);
    for shown in [
        "Reachable",
        "Open",
        "E08000006",
        "today.jsonl",
        "Lines refused",
        "2 read, 1 accepted",
        "&lt;script&gt;x&lt;/script&gt;",
        "check digit",
        "id=\"notifications\"",
        "cpp-b",
        "Manchester City Council (E08000003)",
    ] {
        assert!(body.contains(shown), "{shown} missing from {body}");
    }
    assert!(!body.contains("<script>"), "{body}");
    // Tables have header cells; the page has one h1.
    assert!(body.contains("<th scope=\"col\""));
    assert_eq!(body.matches("<h1").count(), 1);
    w.stop().await;
}

#[tokio::test]
async fn search_results_come_a_page_at_a_time_the_filters_kept_in_the_form() {
    let w = world().await;
    // 51 queries by Council A's social worker reach Council B's plan: 51
    // `access` entries Council B's auditor may read.
    let tls = w.t.agent_tls(COUNCIL_A);
    for _ in 0..51 {
        let request = query_request(&w.nhs, pb::Purpose::Safeguarding, "social_worker");
        ask_as(w.hub_addr, &tls, request).await.unwrap();
    }
    let (mut dpo, csrf) = Browser::sign_in(w.addr(), "dpo").await;
    let form = format!("csrf={csrf}&kind=access&user=u-1001");
    let first = post_until(&mut dpo, "/audit/search", &form, "51 matching").await;
    assert!(first.body.contains("51 matching"), "{}", first.body);
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    assert_eq!(first.body.matches("<th scope=\"row\"").count(), 50);
    assert!(first.body.contains("Next page") && !first.body.contains("Previous page"));
    // The next page's form carries the filters as hidden fields.
    assert!(
        first.body.contains("name=\"kind\" value=\"access\""),
        "{}",
        first.body
    );
    let second = dpo.post("/audit/search", &format!("{form}&page=2")).await;
    assert!(second.body.contains("Page 2 of 2"), "{}", second.body);
    assert_eq!(second.body.matches("<th scope=\"row\"").count(), 1);
    assert!(second.body.contains("Previous page") && !second.body.contains("Next page"));
    // A page past the end shows the last; nonsense shows the first.
    let past = dpo.post("/audit/search", &format!("{form}&page=99")).await;
    assert!(past.body.contains("Page 2 of 2"));
    let junk = dpo.post("/audit/search", &format!("{form}&page=-1")).await;
    assert!(junk.body.contains("Page 1 of 2"));
    w.stop().await;
}

#[tokio::test]
async fn an_entry_changed_in_the_hubs_database_fails_verification_on_the_page_and_saves_nothing() {
    let w = world().await;
    w.sam_breaks_glass().await;
    let (mut dpo, csrf) = Browser::sign_in(w.addr(), "dpo").await;
    let a = dpo.post("/audit/verify", &format!("csrf={csrf}")).await;
    assert!(a.body.contains("Log verified"), "{}", a.body);
    let saved = dpo.get("/audit/verify").await.body;
    let saved = &saved[saved.find("id=\"saved-checkpoint\"").unwrap()..];
    let saved = saved[..saved.find("</dl>").unwrap()].to_string();

    // Someone with database access edits one byte of an entry this
    // auditor may read (Sam's first query).
    let config = w.agent.config().clone();
    let (_, entries) = kith_agent::audit::client::read_log(
        &config,
        Auditor::new("dpo2", "auditor"),
        None,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let target = entries
        .iter()
        .find(|e| e.view().is_some_and(|v| v.user.as_deref() == Some("sam")))
        .expect("an entry of Sam's")
        .index as i64;
    let db = HubDb::connect(&w.t).await;
    db.execute(
        "DROP TRIGGER audit_log_is_append_only_update",
        "DROP TRIGGER audit_log_is_append_only_update ON audit_log",
    )
    .await;
    let mut bytes = db.audit_entry(target).await;
    let at = bytes.windows(6).position(|w| w == b"\"at\":\"").unwrap() + 6;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    db.rewrite_audit_entry(target, &bytes, None).await;

    let a = dpo.post("/audit/verify", &format!("csrf={csrf}")).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("Log verification failed"), "{}", a.body);
    assert!(
        a.body.contains(&format!(
            "entry {target}: its content no longer matches the leaf hash logged for it"
        )),
        "{}",
        a.body
    );
    // The next auditor to look sees the failure; the saved checkpoint is
    // the one verified before.
    let page = dpo.get("/audit/verify").await.body;
    assert!(
        page.contains(">Failed<") && page.contains(&format!("entry {target}:")),
        "{page}"
    );
    assert!(
        page.contains(&saved),
        "the saved checkpoint did not change: {page}"
    );
    w.stop().await;
}

#[tokio::test]
async fn with_the_hub_down_the_operator_page_says_so_and_still_renders() {
    let t = TestDir::new();
    // Nothing listens here.
    let closed: SocketAddr = format!("127.0.0.1:{}", kith_tests::process::free_port())
        .parse()
        .unwrap();
    let mut config = t.agent_config(COUNCIL_B, closed);
    config.console = Some(ConsoleSection::plain_loopback(
        "127.0.0.1:0".parse().unwrap(),
    ));
    let outbox = kith_agent::Outbox::open(&config.outbox_path())
        .await
        .unwrap();
    Accounts::new(&outbox)
        .add(
            &NewAccount {
                user_id: "ops".into(),
                display_name: "Ops Person".into(),
                team: String::new(),
                role: "operator".into(),
            },
            PASSWORD,
            &Roles::default_set(),
        )
        .await
        .unwrap();
    outbox.close().await;
    let agent = Agent::start(config).await.expect("agent starts");
    let (mut ops, _) = Browser::sign_in(agent.console_address().unwrap(), "ops").await;
    let page = ops.get(OPERATOR_PAGE).await;
    assert_eq!(page.status, 200);
    for shown in [
        "Needs attention",
        "Unreachable",
        &closed.to_string(),
        "No file has been taken from the drop folder yet.",
        "The hub has sent no notifications.",
    ] {
        assert!(
            page.body.contains(shown),
            "{shown} missing from {}",
            page.body
        );
    }
    agent.shutdown().await;
}
