//! The staff console over real sockets, against a real hub over mutual
//! TLS: sign-in, sessions, CSRF, throttling, headers, a search that shows
//! records and a refusal with its reason, break glass, sign-out, and the
//! HTTPS listener with its `__Host-` cookie and HSTS. (No browser: the
//! browser tests are separate.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kith_agent::console::accounts::{Accounts, NewAccount};
use kith_agent::console::{ConsoleSection, Roles};
use kith_agent::{Agent, RunningAgent};
use kith_tests::v1 as pb;
use kith_tests::*;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PASSWORD: &str = "a long test password";

/// One HTTP/1.1 exchange's answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The value of the first hidden `csrf` field on the page.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

/// Sends one request on a fresh connection (`Connection: close`).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    cookie: &str,
    form: Option<&str>,
) -> Answer {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if let Some(body) = form {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Bodies are small: chunked framing is left in, it does not matter
    // to the assertions.
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A browser of sorts: plain HTTP to the console, remembering cookies.
struct Browser {
    addr: SocketAddr,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            cookies: Vec::new(),
        }
    }
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    async fn send(&mut self, method: &str, path: &str, form: Option<&str>) -> Answer {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let answer = exchange(stream, method, path, &self.cookie_header(), form).await;
        for c in answer.set_cookies() {
            let c = cookie::Cookie::parse(c.to_string()).unwrap();
            self.cookies.retain(|(k, _)| k != c.name());
            if !c.value().is_empty() {
                self.cookies
                    .push((c.name().to_string(), c.value().to_string()));
            }
        }
        answer
    }
    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }
    async fn post(&mut self, path: &str, form: &str) -> Answer {
        self.send("POST", path, Some(form)).await
    }
    async fn sign_in(&mut self, user: &str, password: &str) -> Answer {
        let page = self.get("/sign-in").await;
        let form = format!(
            "csrf={}&user_id={user}&password={}",
            page.csrf(),
            password.replace(' ', "+")
        );
        self.post("/sign-in", &form).await
    }
}

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_string()
}

/// The hub, kept running for the test.
type RunningHubHandle = Box<dyn std::any::Any + Send>;

struct World {
    t: TestDir,
    _hub: RunningHubHandle,
    agent: RunningAgent,
    nhs: String,
}

/// Council B's agent with a console on loopback HTTP; Council A holds a
/// child protection plan whose service field is hostile markup; the trust
/// holds a mental health record it does not share for safeguarding.
async fn world(console: impl FnOnce(&TestDir) -> ConsoleSection) -> World {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let nhs = test_nhs_number(42);
    publish_console_people(hub.addr(), &t, &nhs, &[]).await;

    let mut config = t.agent_config(COUNCIL_B, hub.addr());
    config.console = Some(console(&t));
    let outbox = kith_agent::Outbox::open(&config.outbox_path())
        .await
        .unwrap();
    let accounts = Accounts::new(&outbox);
    let roles = Roles::default_set();
    for (user, role) in [("sam", "social_worker"), ("dpo", "auditor")] {
        accounts
            .add(
                &NewAccount {
                    user_id: user.into(),
                    display_name: format!("{user} Person"),
                    team: "MASH".into(),
                    role: role.into(),
                },
                PASSWORD,
                &roles,
            )
            .await
            .unwrap();
    }
    outbox.close().await;
    let agent = Agent::start(config).await.expect("agent starts");
    World {
        t,
        _hub: Box::new(hub),
        agent,
        nhs,
    }
}

async fn plain_world() -> World {
    world(|_| ConsoleSection::plain_loopback("127.0.0.1:0".parse().unwrap())).await
}

#[tokio::test]
async fn unauthenticated_requests_go_to_sign_in_and_pages_carry_the_security_headers() {
    let w = plain_world().await;
    let mut b = Browser::new(w.agent.console_address().unwrap());
    for path in ["/", "/search"] {
        let a = b.get(path).await;
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(a.header("location"), Some("/sign-in"));
    }
    let a = b
        .post("/search", "nhs_number=9434765919&purpose=safeguarding")
        .await;
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/sign-in"));

    let page = b.get("/sign-in").await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    // Plain HTTP (loopback): no HSTS, no Secure cookie.
    assert_eq!(page.header("strict-transport-security"), None);
    let css = b.get("/assets/govuk-frontend.min.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(b.get("/nowhere").await.status, 404);
    w.agent.shutdown().await;
}

#[tokio::test]
async fn sign_in_needs_its_token_and_the_right_password_and_failures_are_throttled() {
    let w = plain_world().await;
    let addr = w.agent.console_address().unwrap();
    let mut b = Browser::new(addr);
    // Without the form's token: refused, even with the right password.
    b.get("/sign-in").await;
    let a = b
        .post(
            "/sign-in",
            &format!("user_id=sam&password={}", enc(PASSWORD)),
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("This form has expired"));

    let a = b.sign_in("sam", "not the password at all").await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("The user ID or password is not right"));
    assert!(
        !a.set_cookies()
            .iter()
            .any(|c| c.starts_with("kith-session="))
    );

    // Five failures lock the account, whatever the password next.
    for _ in 0..4 {
        assert_eq!(b.sign_in("sam", "wrong wrong wrong").await.status, 401);
    }
    let a = b.sign_in("sam", PASSWORD).await;
    assert_eq!(a.status, 429);
    assert!(a.body.contains("Too many failed sign-ins"), "{}", a.body);
    // Another account from the same address is locked too (per address).
    assert_eq!(b.sign_in("dpo", PASSWORD).await.status, 429);
    w.agent.shutdown().await;
}

#[tokio::test]
async fn a_case_worker_searches_sees_records_escaped_a_refusal_with_its_reason_and_breaks_glass() {
    let w = plain_world().await;
    let mut b = Browser::new(w.agent.console_address().unwrap());
    let a = b.sign_in("sam", PASSWORD).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let session = a
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("kith-session="))
        .expect("a session cookie")
        .to_string();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );

    let form = b.get("/search").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Signed in as"));
    let csrf = form.csrf();

    // A search without its token does nothing.
    let a = b
        .post(
            "/search",
            &format!("nhs_number={}&purpose=safeguarding", w.nhs),
        )
        .await;
    assert_eq!(a.status, 403);

    // A bad NHS number is named at its field.
    let a = b
        .post(
            "/search",
            &format!("csrf={csrf}&nhs_number=9434765918&purpose=safeguarding"),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(a.body.contains("href=\"#nhs-number\""), "{}", a.body);
    assert!(a.body.contains("check digit"), "{}", a.body);

    let a = b
        .post(
            "/search",
            &format!("csrf={csrf}&nhs_number={}&purpose=safeguarding", w.nhs),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = &a.body;
    for shown in [
        "Manchester City Council (E08000003)",
        "Child protection plan",
        "Since 2025-02-01",
        "Jo Smith, Social worker, 0161 234 5000",
        "Emergency Duty Team, 0161 234 5999",
        "&lt;script&gt;alert('x')&lt;/script&gt;",
        // The trust's record, withheld with its reason.
        "Withheld",
        "contact the custodian",
    ] {
        assert!(body.contains(shown), "{shown} missing from {body}");
    }
    assert!(!body.contains("<script>"), "{body}");

    // Break glass: first the reason, then the search with it.
    let a = b
        .post(
            "/break-glass",
            &format!("csrf={csrf}&nhs_number={}&purpose=safeguarding", w.nhs),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("Why is emergency access needed?"));
    assert!(!a.body.contains("Emergency access is open"));
    let a = b
        .post(
            "/break-glass",
            &format!("csrf={csrf}&nhs_number={}&purpose=safeguarding&step=claim&reason_code=life_threatening&justification=short", w.nhs),
        )
        .await;
    assert_eq!(a.status, 422);
    assert!(a.body.contains("href=\"#justification\""), "{}", a.body);
    let a = b
        .post(
            "/break-glass",
            &format!(
                "csrf={csrf}&nhs_number={}&purpose=safeguarding&step=claim&reason_code=immediate_safeguarding_risk&justification={}",
                w.nhs,
                enc("Child disclosed harm at school today; need the mental health team now")
            ),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body
            .contains("Emergency access is open for you and this person until"),
        "{}",
        a.body
    );

    // The auditor's account does not search.
    let mut auditor = Browser::new(w.agent.console_address().unwrap());
    assert_eq!(auditor.sign_in("dpo", PASSWORD).await.status, 303);
    assert_eq!(auditor.get("/search").await.status, 403);

    // Sign-out ends the session: the same cookie is no use afterwards.
    let kept = b.cookie_header();
    let a = b.post("/sign-out", &format!("csrf={csrf}")).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/sign-in?signed_out=1"));
    let stream = tokio::net::TcpStream::connect(w.agent.console_address().unwrap())
        .await
        .unwrap();
    let a = exchange(stream, "GET", "/search", &kept, None).await;
    assert_eq!(a.status, 303);
    assert!(a.header("location").unwrap().starts_with("/sign-in"));
    let _ = &w.t;
    w.agent.shutdown().await;
}

#[tokio::test]
async fn over_https_the_cookie_is_host_prefixed_and_secure_and_hsts_is_sent() {
    let ca = kith_core::pki::CertificateAuthority::generate("console test CA").unwrap();
    let leaf = ca
        .issue_hub(&["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap();
    let w = world(|t| {
        let cert = t.path().join("console.crt.pem");
        let key = t.path().join("console.key.pem");
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        ConsoleSection::https("127.0.0.1:0".parse().unwrap(), cert, key)
    })
    .await;
    let addr = w.agent.console_address().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
    roots.add(ca_der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        connector
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap()
    };
    let page = exchange(connect().await, "GET", "/sign-in", "", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let pre = page.set_cookies()[0].to_string();
    assert!(
        pre.starts_with("__Host-kith-signin=") && pre.contains("Secure"),
        "{pre}"
    );
    let token = page.csrf();
    let pre_value = pre.split(';').next().unwrap().to_string();
    let a = exchange(
        connect().await,
        "POST",
        "/sign-in",
        &pre_value,
        Some(&format!(
            "csrf={token}&user_id=sam&password={}",
            enc(PASSWORD)
        )),
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let session = a
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-kith-session="))
        .expect("a __Host- session cookie")
        .to_string();
    for part in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(part), "{part} missing from {session}");
    }
    // A plain-HTTP request to the HTTPS port gets no page.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
    let _ = pb::Purpose::Safeguarding;
    w.agent.shutdown().await;
}

/// A `[console.oidc]` section pointing at `issuer`, mapping one group.
fn oidc_section(issuer: &str, role_code: &str) -> kith_agent::console::oidc::OidcSection {
    toml::from_str(&format!(
        r#"
        issuer = "{issuer}"
        client_id = "kith-console"
        redirect_url = "http://127.0.0.1:1/oidc/callback"
        [role_map]
        "kith-social-workers" = "{role_code}"
        "#
    ))
    .unwrap()
}

#[tokio::test]
async fn an_unknown_role_code_in_the_oidc_map_stops_the_agent_naming_the_key() {
    let t = TestDir::new();
    let hub = t.start_hub().await;
    let mut config = t.agent_config(COUNCIL_B, hub.addr());
    let mut console = ConsoleSection::plain_loopback("127.0.0.1:0".parse().unwrap());
    console.oidc = Some(oidc_section("http://127.0.0.1:1", "head_chef"));
    config.console = Some(console);
    let err = match Agent::start(config).await {
        Ok(_) => panic!("the agent started with an unknown role code"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("console.oidc.role_map"), "{err}");
    assert!(err.contains("head_chef"), "{err}");
}

#[tokio::test]
async fn with_oidc_both_sign_ins_are_offered_and_an_unreachable_provider_gets_a_clear_page() {
    // A port nobody listens on: the provider is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let w = world(|_| {
        let mut c = ConsoleSection::plain_loopback("127.0.0.1:0".parse().unwrap());
        c.oidc = Some(oidc_section(&format!("http://{down}"), "social_worker"));
        c
    })
    .await;
    let mut b = Browser::new(w.agent.console_address().unwrap());
    let page = b.get("/sign-in").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("action=\"/sign-in\""), "{}", page.body);
    assert!(page.body.contains("href=\"/oidc/start\""), "{}", page.body);
    assert!(
        page.body
            .contains("Sign in with your organisation&#39;s account")
            || page
                .body
                .contains("Sign in with your organisation's account"),
        "{}",
        page.body
    );
    let a = b.get("/oidc/start").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("cannot be reached"), "{}", a.body);
    // Local accounts still work.
    assert_eq!(b.sign_in("sam", PASSWORD).await.status, 303);

    // A callback with no sign-in under way, or a forged state: refused.
    let a = b.get("/oidc/callback?code=abc&state=made-up").await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body.contains("This sign-in cannot be finished"),
        "{}",
        a.body
    );
    let a = b.get("/oidc/callback?error=access_denied&state=x").await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("access_denied"), "{}", a.body);
    let a = b.get("/oidc/callback?error=%3Cscript%3E").await;
    assert!(!a.body.contains("<script>"), "{}", a.body);
    w.agent.shutdown().await;
}

#[tokio::test]
async fn without_oidc_the_sign_in_page_offers_local_accounts_alone() {
    let w = plain_world().await;
    let mut b = Browser::new(w.agent.console_address().unwrap());
    let page = b.get("/sign-in").await;
    assert!(!page.body.contains("/oidc/start"), "{}", page.body);
    assert_eq!(b.get("/oidc/start").await.status, 404);
    assert_eq!(b.get("/oidc/callback?code=a&state=b").await.status, 404);
    w.agent.shutdown().await;
}
