//! The `[console]` section of the agent's config: where the staff console
//! listens, the certificate it serves, and how long a sign-in lasts.
//!
//! HTTPS is the default. Plain HTTP is accepted only when the section says
//! `plain_http = true` *and* the listen address is a loopback one (the
//! embedded demo, or a console behind a TLS-terminating proxy on the same
//! machine): anything else is refused as a config error, so a typo cannot
//! put staff passwords on the network in clear.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `[console]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// Address and port to listen on, e.g. `0.0.0.0:8443`.
    pub listen: SocketAddr,
    /// The console's HTTPS certificate and key (PEM); required unless
    /// `plain_http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ConsoleTls>,
    /// Serve plain HTTP instead of HTTPS: only on a loopback address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
    /// A session unused this long ends (minutes, 1 to 480).
    #[serde(default = "default_idle_minutes")]
    pub idle_timeout_minutes: u64,
    /// A session ends this long after sign-in, however busy (hours, 1 to 24).
    #[serde(default = "default_absolute_hours")]
    pub absolute_timeout_hours: u64,
    /// Failed sign-ins allowed per account, and per address, within
    /// `lockout_minutes` before further attempts are refused (1 to 100).
    #[serde(default = "default_max_failures")]
    pub max_failed_sign_ins: u32,
    /// The window failed sign-ins are counted over, and how long a locked
    /// account or address waits (minutes, 1 to 1,440).
    #[serde(default = "default_lockout_minutes")]
    pub lockout_minutes: u64,
    /// Sign-in through the authority's identity provider (OpenID Connect);
    /// local accounts stay available beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<super::oidc::OidcSection>,
}

/// `[console.tls]`: the certificate browsers see. Not the agent's client
/// certificate for the hub: that one names the authority, this one the
/// console's host name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn default_idle_minutes() -> u64 {
    15
}
fn default_absolute_hours() -> u64 {
    10
}
fn default_max_failures() -> u32 {
    5
}
fn default_lockout_minutes() -> u64 {
    15
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl ConsoleSection {
    /// HTTPS on `listen` with the given certificate, and the defaults.
    pub fn https(listen: SocketAddr, cert: PathBuf, key: PathBuf) -> Self {
        Self {
            listen,
            tls: Some(ConsoleTls { cert, key }),
            plain_http: false,
            idle_timeout_minutes: default_idle_minutes(),
            absolute_timeout_hours: default_absolute_hours(),
            max_failed_sign_ins: default_max_failures(),
            lockout_minutes: default_lockout_minutes(),
            oidc: None,
        }
    }

    /// Plain HTTP on a loopback `listen` (checked by [`Self::check`]).
    pub fn plain_loopback(listen: SocketAddr) -> Self {
        Self {
            tls: None,
            plain_http: true,
            ..Self::https(listen, PathBuf::new(), PathBuf::new())
        }
    }

    /// The example in `kith-agent example-config`.
    pub fn example() -> Self {
        Self::https(
            "127.0.0.1:8443".parse().expect("a socket address"),
            "pki/console.crt.pem".into(),
            "pki/console.key.pem".into(),
        )
    }

    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        if let Some(oidc) = &mut self.oidc {
            oidc.resolve_paths(base);
        }
        if let Some(tls) = &mut self.tls {
            for p in [&mut tls.cert, &mut tls.key] {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
    }

    /// Checks the section on its own: HTTPS unless plain HTTP on loopback,
    /// and timeouts in range.
    pub fn check(&self) -> Result<(), ConfigError> {
        match (&self.tls, self.plain_http) {
            (Some(_), true) => {
                return Err(invalid(
                    "console.plain_http",
                    "give either [console.tls] (HTTPS) or plain_http = true, not both",
                ));
            }
            (None, false) => {
                return Err(invalid(
                    "console.tls",
                    "the console serves HTTPS: give [console.tls] cert and key \
                     (plain_http = true is allowed only on a loopback address)",
                ));
            }
            (None, true) if !self.listen.ip().is_loopback() => {
                return Err(invalid(
                    "console.plain_http",
                    format!(
                        "plain HTTP is allowed only on a loopback address (127.0.0.1 or ::1), \
                         not {}: staff passwords and records would cross the network in clear; \
                         give [console.tls] instead",
                        self.listen
                    ),
                ));
            }
            _ => {}
        }
        if let Some(tls) = &self.tls {
            if tls.cert.as_os_str().is_empty() {
                return Err(invalid("console.tls.cert", "must not be empty"));
            }
            if tls.key.as_os_str().is_empty() {
                return Err(invalid("console.tls.key", "must not be empty"));
            }
        }
        if !(1..=480).contains(&self.idle_timeout_minutes) {
            return Err(invalid(
                "console.idle_timeout_minutes",
                format!("must be 1 to 480, found {}", self.idle_timeout_minutes),
            ));
        }
        if !(1..=24).contains(&self.absolute_timeout_hours) {
            return Err(invalid(
                "console.absolute_timeout_hours",
                format!("must be 1 to 24, found {}", self.absolute_timeout_hours),
            ));
        }
        if self.absolute_timeout() < self.idle_timeout() {
            return Err(invalid(
                "console.absolute_timeout_hours",
                "must not be shorter than console.idle_timeout_minutes",
            ));
        }
        if !(1..=100).contains(&self.max_failed_sign_ins) {
            return Err(invalid(
                "console.max_failed_sign_ins",
                format!("must be 1 to 100, found {}", self.max_failed_sign_ins),
            ));
        }
        if !(1..=1440).contains(&self.lockout_minutes) {
            return Err(invalid(
                "console.lockout_minutes",
                format!("must be 1 to 1440, found {}", self.lockout_minutes),
            ));
        }
        if let Some(oidc) = &self.oidc {
            oidc.check()?;
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_minutes * 60)
    }

    pub fn absolute_timeout(&self) -> Duration {
        Duration::from_secs(self.absolute_timeout_hours * 3600)
    }

    pub fn lockout(&self) -> Duration {
        Duration::from_secs(self.lockout_minutes * 60)
    }

    /// Whether the console serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(e: ConfigError) -> &'static str {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("not a key error: {other}"),
        }
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let off = ConsoleSection::plain_loopback("0.0.0.0:8080".parse().unwrap());
        let err = off.check().unwrap_err();
        assert!(err.to_string().contains("only on a loopback"), "{err}");
        assert_eq!(key_of(err), "console.plain_http");
        let lan = ConsoleSection::plain_loopback("192.168.1.4:8080".parse().unwrap());
        assert_eq!(key_of(lan.check().unwrap_err()), "console.plain_http");
        ConsoleSection::plain_loopback("127.0.0.1:8080".parse().unwrap())
            .check()
            .unwrap();
        ConsoleSection::plain_loopback("[::1]:8080".parse().unwrap())
            .check()
            .unwrap();
    }

    #[test]
    fn https_is_the_default_and_needs_a_certificate() {
        let mut c = ConsoleSection::example();
        c.check().unwrap();
        assert!(c.is_tls());
        c.tls = None;
        assert_eq!(key_of(c.check().unwrap_err()), "console.tls");
        let mut both = ConsoleSection::example();
        both.plain_http = true;
        assert_eq!(key_of(both.check().unwrap_err()), "console.plain_http");
    }

    #[test]
    fn timeouts_and_limits_are_bounded() {
        let mut c = ConsoleSection::example();
        assert_eq!(c.idle_timeout(), Duration::from_secs(15 * 60));
        c.idle_timeout_minutes = 0;
        assert_eq!(
            key_of(c.check().unwrap_err()),
            "console.idle_timeout_minutes"
        );
        let mut c = ConsoleSection::example();
        c.absolute_timeout_hours = 25;
        assert_eq!(
            key_of(c.check().unwrap_err()),
            "console.absolute_timeout_hours"
        );
        let mut c = ConsoleSection::example();
        c.max_failed_sign_ins = 0;
        assert_eq!(
            key_of(c.check().unwrap_err()),
            "console.max_failed_sign_ins"
        );
    }

    #[test]
    fn the_section_parses_from_toml_with_defaults() {
        let c: ConsoleSection =
            toml::from_str("listen = \"127.0.0.1:9000\"\nplain_http = true\n").unwrap();
        assert_eq!(c.idle_timeout_minutes, 15);
        assert!(c.plain_http);
        c.check().unwrap();
        let err = toml::from_str::<ConsoleSection>("listen = \"127.0.0.1:9000\"\nidle = 3\n")
            .unwrap_err();
        assert!(err.to_string().contains("idle"), "{err}");
    }
}
