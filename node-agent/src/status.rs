//! `kith-agent status`: is this agent healthy?
//!
//! The node operator's first question when something is wrong. It reports the
//! outbox (pending, delivered, rejected, the last delivery and the current
//! error, if the last attempt failed), whether the certificate is usable
//! (names this authority, within its dates), whether the hub answers a gRPC
//! health check over mutual TLS, trying each configured address in order with
//! a short timeout, and whether the hub accepts this agent: a hub that is up
//! but refuses the agent (say its authority is not a federation member) is
//! not healthy either. It reads the outbox file directly, so it works whether
//! or not `kith-agent run` is up.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kith_proto::v1 as pb;
use pb::audit_service_client::AuditServiceClient;
use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::AgentConfig;
use crate::hub_client::{HubConnector, HubError, describe, is_refusal};
use crate::link::LinkState;
use crate::outbox::{Outbox, OutboxError, OutboxStats, RejectedDirective};
use crate::terminal::escape;

/// How many refused directives `status` lists.
pub const REJECTED_DIRECTIVES_SHOWN: usize = 10;

/// How long the health check, and then the authenticated call, may take,
/// per address.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// The agent's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub authority: String,
    pub outbox: OutboxStats,
    /// The directives the hub refused most recently (up to
    /// [`REJECTED_DIRECTIVES_SHOWN`]), newest first, with its reasons.
    pub rejected_directives: Vec<RejectedDirective>,
    /// When the certificate expires (`notAfter`), when it could be read.
    pub certificate_expires: Option<DateTime<Utc>>,
    /// Why the certificate cannot be used: it names another authority, is
    /// expired or not yet valid, or cannot be read. The hub is not contacted
    /// then.
    pub certificate_error: Option<String>,
    pub hub_reachable: bool,
    /// The address that answered, when one did.
    pub hub_address: Option<String>,
    /// Why no address answered (each address's failure), when none did.
    pub hub_error: Option<String>,
    /// Why the outbox cannot be written now (a probe write failed): nothing
    /// new can be accepted from the drop folder.
    pub outbox_error: Option<String>,
    /// The hub link as the running agent (`kith-agent run`) last recorded
    /// it, and when; `None` if no agent has run with this outbox.
    pub link: Option<(LinkState, DateTime<Utc>)>,
    /// Certificates expiring within 30 days (or expired): this agent's own
    /// and the soonest of its CA bundle.
    pub certificate_warnings: Vec<String>,
    /// The hub answered an authenticated call without refusing this agent.
    pub authorised: bool,
    /// Why not, when the hub was reached but refused this agent (or did not
    /// answer the authenticated call).
    pub authorisation_error: Option<String>,
}

impl Status {
    /// Usable certificate, hub reachable, and the hub accepts this agent.
    pub fn is_healthy(&self) -> bool {
        self.certificate_error.is_none()
            && self.hub_reachable
            && self.authorised
            && self.outbox_error.is_none()
    }
}

/// What asking the hub found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubCheck {
    /// The first address whose health check said SERVING.
    pub address: Option<String>,
    /// Every address's failure, when none answered.
    pub error: Option<String>,
    /// Whether the hub that answered accepts this agent.
    pub authorised: bool,
    pub authorisation_error: Option<String>,
}

/// Gathers the status: outbox counts, the certificate, hub reachability and
/// whether the hub accepts this agent.
pub async fn status(config: &AgentConfig) -> Result<Status, StatusError> {
    let outbox = Outbox::open(&config.outbox_path()).await?;
    let status = status_of(config, &outbox).await;
    outbox.close().await;
    status
}

/// The status over an outbox already open (the console's, whose agent is
/// running).
pub async fn status_of(config: &AgentConfig, outbox: &Outbox) -> Result<Status, StatusError> {
    let stats = outbox.stats().await?;
    let rejected_directives = outbox
        .rejected_directives(REJECTED_DIRECTIVES_SHOWN)
        .await?;
    let outbox_error = outbox.probe_write().await.err().map(|e| e.to_string());
    let link = outbox.recorded_link().await?;
    let certificate_warnings = certificate_warnings(config, Utc::now());
    let certificate_expires = config.certificate_validity().ok().map(|v| v.not_after);
    // The name and dates first (their messages are the plainest), then
    // every check a TLS load makes: the key matches, the CA signs it.
    let certificate_error = config
        .check_certificate_at(Utc::now())
        .err()
        .map(|e| e.to_string())
        .or_else(|| crate::tls::load(config).err().map(|e| e.to_string()));
    let hub = match &certificate_error {
        // The handshake would fail, or the hub would answer for another
        // authority: say what is wrong instead.
        Some(_) => HubCheck {
            error: Some("not contacted: the certificate cannot be used".to_string()),
            ..HubCheck::default()
        },
        None => check_hub(config).await?,
    };
    Ok(Status {
        authority: config.authority.clone(),
        outbox: stats,
        rejected_directives,
        certificate_expires,
        certificate_error,
        hub_reachable: hub.address.is_some(),
        hub_address: hub.address,
        hub_error: hub.error,
        outbox_error,
        link,
        certificate_warnings,
        authorised: hub.authorised,
        authorisation_error: hub.authorisation_error,
    })
}

/// Finds the first address whose health check says SERVING (or collects
/// every failure), then makes one authenticated call there
/// (`AuditService/GetCheckpoint`, which every member may make and which
/// writes nothing) to learn whether the hub accepts this agent.
pub async fn check_hub(config: &AgentConfig) -> Result<HubCheck, HubError> {
    let mut config = config.clone();
    config.hub.connect_timeout_ms = config
        .hub
        .connect_timeout_ms
        .min(HEALTH_TIMEOUT.as_millis() as u64);
    let hub = HubConnector::new(&config, Some(HEALTH_TIMEOUT))?;
    let addresses: Vec<String> = hub.addresses().map(str::to_string).collect();
    let mut failures = Vec::new();
    for (index, address) in addresses.iter().enumerate() {
        let attempt = async {
            let channel = hub.connect_to(index).await.map_err(|e| describe(&e))?;
            let response = HealthClient::new(channel.clone())
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
            match ServingStatus::try_from(response.into_inner().status) {
                Ok(ServingStatus::Serving) => Ok(channel),
                Ok(other) => Err(format!("health check says {}", other.as_str_name())),
                Err(_) => Err("health check gave an unknown status".to_string()),
            }
        };
        let channel = match tokio::time::timeout(HEALTH_TIMEOUT, attempt).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                failures.push(format!("{address}: {e}"));
                continue;
            }
            Err(_) => {
                failures.push(format!("{address}: no answer within {HEALTH_TIMEOUT:?}"));
                continue;
            }
        };
        let (authorised, authorisation_error) = check_authorised(channel).await;
        return Ok(HubCheck {
            address: Some(address.clone()),
            error: None,
            authorised,
            authorisation_error,
        });
    }
    Ok(HubCheck {
        error: Some(failures.join("; ")),
        ..HubCheck::default()
    })
}

/// One authenticated call. Only a refusal of the caller (PermissionDenied,
/// Unauthenticated) or no answer counts against the agent: any other answer
/// (a checkpoint, or "no checkpoint has been signed yet") came after the hub
/// accepted who the agent is.
async fn check_authorised(channel: tonic::transport::Channel) -> (bool, Option<String>) {
    let mut client = AuditServiceClient::new(channel);
    let call = client.get_checkpoint(pb::GetCheckpointRequest {});
    match tokio::time::timeout(HEALTH_TIMEOUT, call).await {
        Ok(Ok(_)) => (true, None),
        Ok(Err(s)) if is_refusal(s.code()) => (
            false,
            Some(format!(
                "the hub refuses this agent: {:?}: {}",
                s.code(),
                s.message()
            )),
        ),
        Ok(Err(s))
            if matches!(
                s.code(),
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ) =>
        {
            (
                false,
                Some(format!(
                    "no answer to an authenticated call within {HEALTH_TIMEOUT:?}"
                )),
            )
        }
        Ok(Err(_)) => (true, None),
        Err(_) => (
            false,
            Some(format!(
                "no answer to an authenticated call within {HEALTH_TIMEOUT:?}"
            )),
        ),
    }
}

/// A line for each certificate expiring within
/// [`kith_ops::certificates::WARN_BEFORE`] of `now`.
pub fn certificate_warnings(config: &AgentConfig, now: DateTime<Utc>) -> Vec<String> {
    let expiry = kith_ops::CertificateExpiry::new();
    if expiry.load(&config.tls.cert, &config.tls.ca).is_err() {
        // An unreadable certificate is `certificate_error`'s to report.
        return Vec::new();
    }
    expiry
        .expiring(now)
        .into_iter()
        .map(|(role, not_after)| {
            let what = match role {
                kith_ops::CertificateRole::Own => "this agent's certificate",
                kith_ops::CertificateRole::Ca => "the federation CA certificate",
            };
            let days = (not_after - now).num_days();
            if not_after <= now {
                format!("{what} EXPIRED on {}", when(Some(not_after)))
            } else {
                format!(
                    "{what} expires in {days} days ({}): renew it (`kith-agent pki request`)",
                    when(Some(not_after))
                )
            }
        })
        .collect()
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Errors quote the hub and the operating system: escaped, like
        // every other field printed for people.
        writeln!(f, "authority      {}", escape(&self.authority))?;
        match (&self.certificate_error, self.certificate_expires) {
            (Some(e), _) => writeln!(f, "certificate    UNUSABLE: {}", escape(e))?,
            (None, Some(t)) => writeln!(f, "certificate    valid until {}", when(Some(t)))?,
            (None, None) => writeln!(f, "certificate    ok")?,
        }
        for w in &self.certificate_warnings {
            writeln!(f, "  WARNING      {}", escape(w))?;
        }
        match (&self.hub_address, &self.hub_error) {
            (Some(a), _) if self.authorised => {
                writeln!(f, "hub            reachable at {}", escape(a))?
            }
            (Some(a), _) => writeln!(
                f,
                "hub            reachable at {} but NOT AUTHORISED: {}",
                escape(a),
                escape(self.authorisation_error.as_deref().unwrap_or("refused"))
            )?,
            (None, Some(e)) if self.certificate_error.is_some() => {
                writeln!(f, "hub            {}", escape(e))?
            }
            (None, Some(e)) => writeln!(f, "hub            UNREACHABLE: {}", escape(e))?,
            (None, None) => writeln!(f, "hub            UNREACHABLE")?,
        }
        match &self.link {
            Some((l, at)) if l.connected => writeln!(
                f,
                "link           open to {} since {} (recorded {})",
                escape(l.hub_address.as_deref().unwrap_or("the hub")),
                when(l.connected_since),
                when(Some(*at))
            )?,
            Some((l, at)) => writeln!(
                f,
                "link           DOWN (recorded {}){}",
                when(Some(*at)),
                l.last_error
                    .as_deref()
                    .map(|e| format!(": {}", escape(e)))
                    .unwrap_or_default()
            )?,
            None => writeln!(
                f,
                "link           never opened (`kith-agent run` has not run here)"
            )?,
        }
        let o = &self.outbox;
        writeln!(
            f,
            "outbox         {} pending, {} delivered, {} rejected",
            o.pending, o.delivered, o.rejected
        )?;
        if let Some(e) = &self.outbox_error {
            writeln!(f, "  NOT WRITABLE {}", escape(e))?;
        }
        let d = &o.directives;
        writeln!(
            f,
            "directives     {} pending, {} delivered, {} rejected",
            d.pending, d.delivered, d.rejected
        )?;
        for r in &self.rejected_directives {
            writeln!(
                f,
                "  rejected     directive {} version {} (record {}) at {}: {}",
                escape(&r.directive_id),
                r.version,
                escape(&r.record_id),
                when(r.rejected_at),
                escape(&r.reason)
            )?;
        }
        writeln!(f, "last delivery  {}", when(o.last_delivery_at))?;
        match &o.last_error {
            Some(e) => writeln!(
                f,
                "last error     {} ({})",
                escape(e),
                when(o.last_error_at)
            )?,
            None => writeln!(f, "last error     none")?,
        }
        if let Some(e) = &o.previous_error {
            writeln!(
                f,
                "previous error {} ({}), cleared by a later delivery",
                escape(e),
                when(o.previous_error_at)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_quoting_the_hub_are_printed_escaped() {
        let mut s = healthy();
        s.hub_address = None;
        s.hub_error = Some("refused: \x1b]0;owned\x07\nFAKE".into());
        s.outbox.last_error = Some("\u{202e}rorre".into());
        let text = s.to_string();
        assert!(
            !text
                .chars()
                .any(|c| crate::terminal::is_dangerous(c) && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains("UNREACHABLE: refused: \\u{1b}]0;owned\\u{7}\\u{a}FAKE"),
            "{text}"
        );
        assert!(text.contains("last error     \\u{202e}rorre"), "{text}");
    }

    fn healthy() -> Status {
        Status {
            authority: "E08000003".into(),
            outbox: OutboxStats::default(),
            rejected_directives: Vec::new(),
            certificate_expires: DateTime::from_timestamp(1_900_000_000, 0),
            certificate_error: None,
            hub_reachable: true,
            hub_address: Some("https://hub:7443".into()),
            hub_error: None,
            outbox_error: None,
            link: Some((
                LinkState {
                    connected: true,
                    hub_address: Some("https://hub:7443".into()),
                    connected_since: DateTime::from_timestamp(1_800_000_000, 0),
                    ..LinkState::default()
                },
                DateTime::from_timestamp(1_800_000_100, 0).unwrap(),
            )),
            certificate_warnings: Vec::new(),
            authorised: true,
            authorisation_error: None,
        }
    }

    #[test]
    fn an_unwritable_outbox_and_a_down_link_are_said() {
        let ok = healthy();
        assert!(
            ok.to_string()
                .contains("link           open to https://hub:7443 since 2027-01-15 08:00:00 UTC"),
            "{ok}"
        );
        let full = Status {
            outbox_error: Some("database or disk is full".into()),
            link: Some((
                LinkState {
                    last_error: Some("the hub closed the link".into()),
                    ..LinkState::default()
                },
                DateTime::from_timestamp(1_800_000_100, 0).unwrap(),
            )),
            ..healthy()
        };
        assert!(!full.is_healthy());
        let text = full.to_string();
        assert!(
            text.contains("  NOT WRITABLE database or disk is full"),
            "{text}"
        );
        assert!(
            text.contains(
                "link           DOWN (recorded 2027-01-15 08:01:40 UTC): the hub closed the link"
            ),
            "{text}"
        );
    }

    #[test]
    fn certificates_expiring_within_30_days_are_warned_of() {
        let dir = tempfile::tempdir().unwrap();
        let code = kith_core::AuthorityCode::new("E08000003").unwrap();
        let pki = kith_core::pki::init(
            &dir.path().join("pki"),
            &["localhost".into()],
            std::slice::from_ref(&code),
        )
        .unwrap();
        let mut config = AgentConfig::example();
        config.tls = crate::config::TlsConfig {
            ca: pki.ca_cert(),
            cert: pki.authority_cert(&code),
            key: pki.authority_key(&code),
            reload_interval_ms: crate::config::DEFAULT_TLS_RELOAD_INTERVAL_MS,
        };
        let own = kith_ops::certificates::not_after(&config.tls.cert, false).unwrap();
        assert!(certificate_warnings(&config, own - chrono::Duration::days(31)).is_empty());
        let soon = certificate_warnings(&config, own - chrono::Duration::days(10));
        assert_eq!(soon.len(), 1, "{soon:?}");
        assert!(
            soon[0].starts_with("this agent's certificate expires in 10 days"),
            "{soon:?}"
        );
        let late = certificate_warnings(&config, own + chrono::Duration::days(1));
        assert!(late.iter().any(|w| w.contains("EXPIRED")), "{late:?}");
        let status = Status {
            certificate_warnings: soon,
            ..healthy()
        };
        assert!(
            status
                .to_string()
                .contains("  WARNING      this agent's certificate expires in 10 days")
        );
    }

    #[test]
    fn a_refused_agent_is_not_shown_as_fine() {
        let ok = healthy();
        assert!(ok.is_healthy());
        assert!(
            ok.to_string()
                .contains("hub            reachable at https://hub:7443\n")
        );

        let refused = Status {
            authorised: false,
            authorisation_error: Some(
                "the hub refuses this agent: PermissionDenied: not a member".into(),
            ),
            ..healthy()
        };
        assert!(!refused.is_healthy());
        let text = refused.to_string();
        assert!(
            text.contains("reachable at https://hub:7443 but NOT AUTHORISED: the hub refuses this agent: PermissionDenied: not a member"),
            "{text}"
        );
    }

    #[test]
    fn a_cleared_error_is_shown_as_previous_not_current() {
        let mut status = healthy();
        status.outbox.previous_error = Some("hub unreachable".into());
        status.outbox.previous_error_at = DateTime::from_timestamp(1_800_000_000, 0);
        let text = status.to_string();
        assert!(text.contains("last error     none\n"), "{text}");
        assert!(
            text.contains("previous error hub unreachable (2027-01-15 08:00:00 UTC), cleared"),
            "{text}"
        );
    }

    #[test]
    fn a_certificate_problem_is_named() {
        let status = Status {
            certificate_error: Some("certificate /c.pem: expired on 2020-01-01".into()),
            hub_reachable: false,
            hub_address: None,
            hub_error: Some("not contacted: the certificate cannot be used".into()),
            authorised: false,
            ..healthy()
        };
        assert!(!status.is_healthy());
        let text = status.to_string();
        assert!(
            text.contains("certificate    UNUSABLE: certificate /c.pem: expired"),
            "{text}"
        );
        assert!(text.contains("hub            not contacted"), "{text}");
    }
}
