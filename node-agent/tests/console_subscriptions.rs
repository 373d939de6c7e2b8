//! The case worker's subscriptions page over real sockets, against a real
//! hub over mutual TLS: a subscription made on the page is listed (the NHS
//! number in the page, never the URL) and held at the hub for the signed-in
//! member of staff; Unsubscribe ends it; the hub's refusals (no
//! relationship, a duplicate, an end past its maximum) are shown at their
//! field with the hub's reason; a POST without the CSRF token does nothing;
//! other roles are refused. (The `Browser` helper is
//! `console_http/`, shared with `console_pages.rs`.)

use std::net::SocketAddr;

use kith_agent::console::ConsoleSection;
use kith_agent::{Agent, RunningAgent};
use kith_tests::v1 as pb;
use kith_tests::*;

mod console_http;
use console_http::*;

struct World {
    t: TestDir,
    hub_addr: SocketAddr,
    _hub: Box<dyn std::any::Any + Send>,
    agent: RunningAgent,
    /// A child Council B holds a record of its own for.
    nhs: String,
    /// A child Council B has no record for (Council A has).
    stranger: String,
}

/// Council B's agent with a console and a social worker, an auditor and
/// an operator.
async fn world() -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(21);
    let stranger = test_nhs_number(22);
    for (custodian, id, person) in [
        (COUNCIL_A, "cpp-a", &nhs),
        (COUNCIL_B, "cpp-b", &nhs),
        (COUNCIL_A, "cpp-a2", &stranger),
    ] {
        let mut r = record_wire(
            custodian,
            id,
            1,
            person,
            "child_protection_plan",
            &["safeguarding", "direct_care"],
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
        stranger,
    }
}

impl World {
    fn addr(&self) -> SocketAddr {
        self.agent.console_address().unwrap()
    }

    /// Council B's current subscriptions, as the hub holds them.
    async fn at_hub(&self) -> Vec<pb::Subscription> {
        let mut c = subscriptions_client(
            channel(self.hub_addr, &self.t.agent_tls(COUNCIL_B))
                .await
                .unwrap(),
        );
        c.list_subscriptions(pb::ListSubscriptionsRequest {
            include_ended: false,
        })
        .await
        .unwrap()
        .into_inner()
        .subscriptions
    }
}

fn subscribe_form(csrf: &str, nhs: &str) -> String {
    format!(
        "csrf={csrf}&nhs_number={nhs}&type.child_protection_plan=on&category.children=on&purpose=safeguarding&ends_on_day=&ends_on_month=&ends_on_year="
    )
}

#[tokio::test]
async fn a_subscription_made_on_the_page_is_listed_and_unsubscribe_ends_it() {
    let w = world().await;
    let (mut sam, csrf) = Browser::sign_in(w.addr(), "sam").await;

    let page = sam.get("/subscriptions").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("id=\"no-subscriptions\""),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("href=\"/subscriptions\" aria-current=\"page\""),
        "marked in the navigation"
    );
    assert!(page.body.contains("name=\"type.child_protection_plan\""));
    assert!(page.body.contains("name=\"category.children\""));
    assert!(page.body.contains("kith-table-scroll") || page.body.contains("no-subscriptions"));

    let a = sam
        .post("/subscriptions", &subscribe_form(&csrf, &w.nhs))
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let to = a.header("location").unwrap().to_string();
    assert_eq!(to, "/subscriptions?subscribed=1");
    assert!(!to.contains(&w.nhs));

    let held = w.at_hub().await;
    assert_eq!(held.len(), 1, "{held:?}");
    let s = &held[0];
    assert_eq!(s.nhs_number, w.nhs);
    assert_eq!(s.created_by.as_ref().unwrap().user_id, "sam");
    assert_eq!(s.categories, ["children"]);
    assert_eq!(
        s.relationship_types,
        [pb::RelationshipType::ChildProtectionPlan as i32]
    );

    let page = sam.get(&to).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"notice\""), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("<td class=\"govuk-table__cell\">{}</td>", w.nhs)),
        "{}",
        page.body
    );
    assert!(page.body.contains(&s.subscription_id));
    assert!(page.body.contains("kith-table-scroll"));
    assert!(!page.body.contains("id=\"no-subscriptions\""));

    // The same again: the hub's duplicate refusal, at the NHS number.
    let a = sam
        .post("/subscriptions", &subscribe_form(&csrf, &w.nhs))
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("govuk-error-summary"), "{}", a.body);
    assert!(a.body.contains("href=\"#nhs-number\""), "{}", a.body);
    assert!(a.body.contains("id=\"nhs-number-error\""), "{}", a.body);
    assert!(a.body.contains("already hold subscription"), "{}", a.body);
    assert_eq!(w.at_hub().await.len(), 1);

    // Unsubscribe without the token: refused, nothing ended.
    let a = sam
        .post(
            "/subscriptions/unsubscribe",
            &format!("subscription_id={}", s.subscription_id),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("This form has expired"));
    assert_eq!(w.at_hub().await.len(), 1);
    // Nor subscribe without it.
    let a = sam
        .post(
            "/subscriptions",
            &subscribe_form("wrong", &w.nhs).replace("csrf=wrong&", ""),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);

    // With it: ended, and gone from the page.
    let a = sam
        .post(
            "/subscriptions/unsubscribe",
            &format!("csrf={csrf}&subscription_id={}", s.subscription_id),
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some("/subscriptions?ended=1"));
    assert!(w.at_hub().await.is_empty());
    // Ending it again: the hub's refusal (not found), shown with its words.
    let a = sam
        .post(
            "/subscriptions/unsubscribe",
            &format!("csrf={csrf}&subscription_id={}", s.subscription_id),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.body.contains("The hub refused to end this subscription"),
        "{}",
        a.body
    );
    let page = sam.get("/subscriptions?ended=1").await;
    assert!(!page.body.contains(&s.subscription_id), "{}", page.body);
    assert!(page.body.contains("id=\"no-subscriptions\""));
    w.agent.shutdown().await;
}

#[tokio::test]
async fn the_hubs_refusals_and_bad_fields_are_shown_at_their_field() {
    let w = world().await;
    let (mut sam, csrf) = Browser::sign_in(w.addr(), "sam").await;

    // No relationship of Council B's own with this child: the policy's reason.
    let a = sam
        .post("/subscriptions", &subscribe_form(&csrf, &w.stranger))
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("<title>Error: Subscriptions"), "{}", a.body);
    assert!(a.body.contains("href=\"#nhs-number\""), "{}", a.body);
    assert!(
        a.body.contains("no current relationship record"),
        "{}",
        a.body
    );
    // The form keeps what was entered.
    assert!(a.body.contains(&format!("value=\"{}\"", w.stranger)));

    // An end past the hub's maximum (365 days by default): at the date.
    let late = chrono::Utc::now().date_naive() + chrono::Duration::days(400);
    let form = subscribe_form(&csrf, &w.nhs).replace(
        "ends_on_day=&ends_on_month=&ends_on_year=",
        &late
            .format("ends_on_day=%d&ends_on_month=%m&ends_on_year=%Y")
            .to_string(),
    );
    let a = sam.post("/subscriptions", &form).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("href=\"#ends-on-day\""), "{}", a.body);
    assert!(
        a.body.contains("past the longest subscription"),
        "{}",
        a.body
    );

    // An unknown category (not one of the policy set's): the hub names it.
    let form = format!(
        "csrf={csrf}&nhs_number={}&category.astrology=on&purpose=safeguarding",
        w.nhs
    );
    let a = sam.post("/subscriptions", &form).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.body.contains("href=\"#relationship-types\""),
        "{}",
        a.body
    );
    assert!(a.body.contains("unknown category"), "{}", a.body);

    // An unknown type, nothing chosen, no purpose, a bad NHS number, a date
    // that is not one: each at its field, before the hub.
    for (form, field, words) in [
        (
            format!(
                "csrf={csrf}&nhs_number={}&type.astrology=on&purpose=safeguarding",
                w.nhs
            ),
            "relationship-types",
            "Relationship types",
        ),
        (
            format!("csrf={csrf}&nhs_number={}&purpose=safeguarding", w.nhs),
            "relationship-types",
            "Select at least one relationship type or category",
        ),
        (
            format!(
                "csrf={csrf}&nhs_number={}&type.child_protection_plan=on",
                w.nhs
            ),
            "purpose",
            "Select why you need to know",
        ),
        (
            format!("csrf={csrf}&type.child_protection_plan=on&purpose=safeguarding"),
            "nhs-number",
            "Enter the person's NHS number",
        ),
        (
            format!(
                "csrf={csrf}&nhs_number=1234567890&type.child_protection_plan=on&purpose=safeguarding"
            ),
            "nhs-number",
            "NHS number",
        ),
        (
            format!(
                "csrf={csrf}&nhs_number={}&type.child_protection_plan=on&purpose=safeguarding&ends_on_day=31&ends_on_month=2&ends_on_year=2030",
                w.nhs
            ),
            "ends-on-day",
            "End date must be a real date",
        ),
    ] {
        let a = sam.post("/subscriptions", &form).await;
        assert_eq!(a.status, 422, "{form}: {}", a.body);
        assert!(
            a.body.contains(&format!("href=\"#{field}\">{words}")),
            "{form}: {}",
            a.body
        );
        assert!(a.body.contains(words), "{form}: {words}: {}", a.body);
    }
    assert!(w.at_hub().await.is_empty(), "nothing was subscribed");
    w.agent.shutdown().await;
}

#[tokio::test]
async fn other_roles_and_signed_out_users_are_refused() {
    let w = world().await;
    let mut anon = Browser::new(w.addr());
    let a = anon.get("/subscriptions").await;
    assert_eq!((a.status, a.header("location")), (303, Some("/sign-in")));
    let a = anon.post("/subscriptions", "nhs_number=9434765919").await;
    assert_eq!((a.status, a.header("location")), (303, Some("/sign-in")));

    for user in ["dpo", "ops"] {
        let (mut b, csrf) = Browser::sign_in(w.addr(), user).await;
        let home = b.get("/").await;
        let first = home.header("location").unwrap().to_string();
        let page = b.get(&first).await;
        assert!(
            !page.body.contains("href=\"/subscriptions\""),
            "{user}: not in the navigation"
        );
        let a = b.get("/subscriptions").await;
        assert_eq!(a.status, 403, "{user}");
        assert!(a.body.contains("You cannot use this page"));
        // Nor by POST with a good token: nothing reaches the hub.
        let a = b
            .post("/subscriptions", &subscribe_form(&csrf, &w.nhs))
            .await;
        assert_eq!(a.status, 403, "{user}");
        let a = b
            .post(
                "/subscriptions/unsubscribe",
                &format!("csrf={csrf}&subscription_id=sub-1"),
            )
            .await;
        assert_eq!(a.status, 403, "{user}");
    }
    assert!(w.at_hub().await.is_empty());
    w.agent.shutdown().await;
}
