//! The plain HTTP/1.1 client the console's page tests speak as a browser
//! would (cookies kept, CSRF token read from the page), shared by
//! `console_pages.rs` and `console_subscriptions.rs`. Each test binary uses
//! part of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PASSWORD: &str = "a long test password";

/// Adds local accounts (user id, role) to the agent's database before it
/// starts, each named "<user> Person" in team "Team", with [`PASSWORD`].
pub async fn add_accounts(config: &kith_agent::AgentConfig, users: &[(&str, &str)]) {
    use kith_agent::console::Roles;
    use kith_agent::console::accounts::{Accounts, NewAccount};
    let outbox = kith_agent::Outbox::open(&config.outbox_path())
        .await
        .unwrap();
    let accounts = Accounts::new(&outbox);
    for (user, role) in users {
        accounts
            .add(
                &NewAccount {
                    user_id: (*user).into(),
                    display_name: format!("{user} Person"),
                    team: "Team".into(),
                    role: (*role).into(),
                },
                PASSWORD,
                &Roles::default_set(),
            )
            .await
            .unwrap();
    }
    outbox.close().await;
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

/// Plain HTTP/1.1 to the console, one connection a request, keeping cookies.
pub struct Browser {
    pub addr: SocketAddr,
    pub cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            cookies: Vec::new(),
        }
    }

    pub async fn send(&mut self, method: &str, path: &str, form: Option<&str>) -> Answer {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if !cookie.is_empty() {
            request.push_str(&format!("Cookie: {}\r\n", cookie.join("; ")));
        }
        match form {
            Some(body) => request.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            None => request.push_str("\r\n"),
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
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let c = cookie::Cookie::parse(v.clone()).unwrap();
                self.cookies.retain(|(name, _)| name != c.name());
                if !c.value().is_empty() {
                    self.cookies
                        .push((c.name().to_string(), c.value().to_string()));
                }
            }
        }
        Answer {
            status,
            headers,
            body: body.to_string(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, form: &str) -> Answer {
        self.send("POST", path, Some(form)).await
    }

    /// Signs in and returns the session's CSRF token.
    pub async fn sign_in(addr: SocketAddr, user: &str) -> (Self, String) {
        let mut b = Self::new(addr);
        let page = b.get("/sign-in").await;
        let form = format!(
            "csrf={}&user_id={user}&password={}",
            page.csrf(),
            enc(PASSWORD)
        );
        let a = b.post("/sign-in", &form).await;
        assert_eq!(a.status, 303, "{user} signs in: {}", a.body);
        let home = b.get("/").await;
        assert_eq!(home.status, 303);
        let first = home.header("location").unwrap().to_string();
        let page = b.get(&first).await;
        assert_eq!(page.status, 200, "{user} at {first}: {}", page.body);
        let csrf = page.csrf();
        (b, csrf)
    }
}

pub fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_string()
}
