//! The operator's notification webhook: a JSON POST to a URL on the agent's
//! own machine.
//!
//! The agent opens no listening socket and dials only the hub over mutual
//! TLS; the one other connection it makes is this one, to a program the
//! operator runs beside it. So the URL must be plain `http://` to a loopback
//! address (`127.0.0.1` or another `127.x.y.z`, `::1`, or `localhost`, which
//! is dialled as `127.0.0.1`): anything else is refused when the config is
//! loaded, so notifications never leave the machine unencrypted. Each POST
//! is one HTTP/1.1 request on its own connection; only a 2xx answer counts as
//! delivered.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::rt::TokioIo;

/// How long one POST may take, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// A checked webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    uri: Uri,
    addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook {url}: cannot connect: {source}")]
    Connect { url: String, source: std::io::Error },
    #[error("webhook {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("webhook {url}: answered {status}")]
    Status { url: String, status: u16 },
    #[error("webhook {url}: no answer within {WEBHOOK_TIMEOUT:?}")]
    Timeout { url: String },
}

impl Webhook {
    /// Checks a URL: `http://`, a loopback host, no user info. The reason,
    /// when refused, is for the config key's error.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "{url:?} must be an http:// URL on this machine (the webhook is never reached over a network)"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{url:?} must not carry a user name or password"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ip = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            match host.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => ip,
                _ => {
                    return Err(format!(
                        "{url:?}: host {host:?} is not a loopback address; use 127.0.0.1, ::1 or localhost"
                    ));
                }
            }
        };
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            uri,
        })
    }

    /// The URL as configured.
    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// POSTs `body` as `application/json`; `Ok` only on a 2xx answer within
    /// [`WEBHOOK_TIMEOUT`].
    pub async fn post_json(&self, body: Vec<u8>) -> Result<(), WebhookError> {
        tokio::time::timeout(WEBHOOK_TIMEOUT, self.post(body))
            .await
            .map_err(|_| WebhookError::Timeout { url: self.url() })?
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), WebhookError> {
        let http = |reason: String| WebhookError::Http {
            url: self.url(),
            reason,
        };
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|source| WebhookError::Connect {
                url: self.url(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let path = self
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let request = hyper::Request::post(path)
            .header(
                hyper::header::HOST,
                self.uri.authority().map_or("", |a| a.as_str()),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("kith-agent/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.to_string()))?;
        let status = response.status();
        // Read the answer to its end so the connection closes cleanly.
        let _ = response.into_body().collect().await;
        driver.abort();
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status {
                url: self.url(),
                status: status.as_u16(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_urls_are_taken() {
        let ok = Webhook::parse("http://127.0.0.1:9000/kith?x=1").unwrap();
        assert_eq!(ok.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            Webhook::parse("http://localhost/n").unwrap().addr,
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            Webhook::parse("http://[::1]:1/").unwrap().addr,
            "[::1]:1".parse().unwrap()
        );
        for (bad, why) in [
            ("https://127.0.0.1/", "http://"),
            ("http://192.168.1.1/", "loopback"),
            ("http://kith.example/", "loopback"),
            ("http://user:pw@127.0.0.1/", "user name"),
            ("127.0.0.1:80", "http://"),
            ("", "not a URL"),
        ] {
            let err = Webhook::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
