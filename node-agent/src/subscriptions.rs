//! This authority's subscriptions at the hub: `kith-agent subscribe`,
//! `unsubscribe` and `subscriptions` (issue #17).
//!
//! A subscription asks the hub to tell this authority when another
//! authority starts, changes, ends or withdraws a relationship with a person
//! it is itself involved with. The hub decides, by its policy set, whether
//! this authority may subscribe (by default only while it holds a current
//! record of its own for the person), and later what each notice may show;
//! notices arrive over the link as notifications of kind `subscription`
//! (see [`crate::notifications`]). Requests are checked here first with the
//! same contract the hub applies (`kith_core::subscription`), so a typo is
//! named without a round trip. A file of requests, one JSON object a line
//! (`*.subscriptions.jsonl`), is the bulk form: [`subscribe_lines`] reports
//! each line accepted or refused, with its reason.

use chrono::Utc;
use kith_core::error::FieldError;
use kith_core::subscription::{SubscribeRequest, SubscriptionLimits};
use kith_core::wire::{acting_user_to_wire, subscribe_to_wire};
use kith_core::{ActingUser, Purpose, RelationshipType};
use kith_proto::v1 as pb;
use pb::subscription_service_client::SubscriptionServiceClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::config::{AgentConfig, ConfigError};
use crate::hub_client::{CallError, HubError, call_with_failover};
use crate::table::{or_dash, table};

/// Most lines one bulk file may hold.
pub const MAX_LINES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("{}", kith_core::error::join(.0))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Certificate(#[from] ConfigError),
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The hub refused: its words, and what its code means.
    #[error("the hub refused ({}): {message}", meaning(*code))]
    Refused { code: tonic::Code, message: String },
    #[error("the hub at {address} failed: {code:?}: {message}")]
    Failed {
        address: String,
        code: tonic::Code,
        message: String,
    },
}

fn meaning(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::PermissionDenied => "not permitted",
        tonic::Code::InvalidArgument => "invalid request",
        tonic::Code::AlreadyExists => "duplicate",
        tonic::Code::NotFound => "not found",
        _ => "error",
    }
}

fn refusal(address: String, status: tonic::Status) -> SubscriptionError {
    let message = status.message().to_string();
    match status.code() {
        code @ (tonic::Code::PermissionDenied
        | tonic::Code::InvalidArgument
        | tonic::Code::AlreadyExists
        | tonic::Code::NotFound) => SubscriptionError::Refused { code, message },
        code => SubscriptionError::Failed {
            address,
            code,
            message,
        },
    }
}

fn from_call(e: CallError) -> SubscriptionError {
    match e {
        CallError::Hub(e) => SubscriptionError::Hub(e),
        CallError::Status { address, status } => refusal(address, status),
    }
}

/// The agent does not know the hub's limits: it checks the fields only and
/// leaves the duration to the hub.
const LOCAL_LIMITS: SubscriptionLimits = SubscriptionLimits {
    default_days: 1,
    max_days: 3650,
};

/// Checks `request` as the hub will (but for the hub's maximum duration and
/// its categories), then subscribes.
pub async fn subscribe(
    config: &AgentConfig,
    request: &SubscribeRequest,
) -> Result<pb::Subscription, SubscriptionError> {
    let checked = request
        .check(Utc::now().date_naive(), LOCAL_LIMITS, None)
        .map_err(SubscriptionError::Invalid)?;
    let mut wire = subscribe_to_wire(&checked);
    // No end given: the hub's default.
    if request
        .ends_on
        .as_deref()
        .is_none_or(|e| e.trim().is_empty())
    {
        wire.ends_on.clear();
    }
    config.check_certificate_at(Utc::now())?;
    let (_, answer) = call_with_failover(config, "subscribe", |channel| {
        let wire = wire.clone();
        async move {
            SubscriptionServiceClient::new(channel)
                .subscribe(wire)
                .await
                .map(|r| r.into_inner())
        }
    })
    .await
    .map_err(from_call)?;
    answer
        .subscription
        .ok_or_else(|| SubscriptionError::Failed {
            address: String::new(),
            code: tonic::Code::Internal,
            message: "the hub's answer had no subscription".into(),
        })
}

/// Ends one of this authority's subscriptions; returns the audit index.
pub async fn unsubscribe(
    config: &AgentConfig,
    user: &ActingUser,
    subscription_id: &str,
) -> Result<u64, SubscriptionError> {
    let mut errors = Vec::new();
    let user = user.clone().trimmed();
    user.check("acting_user", &mut errors);
    kith_core::validate::check_identifier("subscription_id", subscription_id, 64, &mut errors);
    if !errors.is_empty() {
        return Err(SubscriptionError::Invalid(errors));
    }
    config.check_certificate_at(Utc::now())?;
    let request = pb::UnsubscribeRequest {
        acting_user: Some(acting_user_to_wire(&user)),
        subscription_id: subscription_id.to_string(),
    };
    let (_, index) = call_with_failover(config, "unsubscribe", |channel: Channel| {
        let request = request.clone();
        async move {
            SubscriptionServiceClient::new(channel)
                .unsubscribe(request)
                .await
                .map(|r| r.into_inner().audit_index)
        }
    })
    .await
    .map_err(from_call)?;
    Ok(index)
}

/// This authority's subscriptions, newest first.
pub async fn list(
    config: &AgentConfig,
    include_ended: bool,
) -> Result<Vec<Listed>, SubscriptionError> {
    config.check_certificate_at(Utc::now())?;
    let (_, found) = call_with_failover(config, "list subscriptions", |channel| async move {
        SubscriptionServiceClient::new(channel)
            .list_subscriptions(pb::ListSubscriptionsRequest { include_ended })
            .await
            .map(|r| r.into_inner().subscriptions)
    })
    .await
    .map_err(from_call)?;
    Ok(found.into_iter().map(Listed::from_wire).collect())
}

/// One subscription as listed (table or `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    pub subscription_id: String,
    pub nhs_number: String,
    pub relationship_types: Vec<String>,
    pub categories: Vec<String>,
    pub purpose: String,
    pub created_by: String,
    pub created_at: String,
    pub ends_on: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ended_at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub end_reason: String,
}

impl Listed {
    fn from_wire(s: pb::Subscription) -> Self {
        Self {
            subscription_id: s.subscription_id,
            nhs_number: s.nhs_number,
            relationship_types: s
                .relationship_types
                .iter()
                .map(|t| {
                    RelationshipType::from_wire(*t)
                        .map_or_else(|| format!("unknown({t})"), |t| t.as_str().to_string())
                })
                .collect(),
            categories: s.categories,
            purpose: Purpose::from_wire(s.purpose)
                .map_or_else(|| format!("unknown({})", s.purpose), |p| p.as_str().into()),
            created_by: s.created_by.map(|u| u.user_id).unwrap_or_default(),
            created_at: s.created_at,
            ends_on: s.ends_on,
            ended_at: s.ended_at,
            end_reason: s.end_reason,
        }
    }
}

/// The subscriptions as a table (every cell escaped).
pub fn render_table(list: &[Listed]) -> String {
    if list.is_empty() {
        return "no subscriptions\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let mut what = s.relationship_types.clone();
            what.extend(s.categories.iter().map(|c| format!("category:{c}")));
            vec![
                s.subscription_id.clone(),
                s.nhs_number.clone(),
                what.join(", "),
                s.purpose.clone(),
                s.ends_on.clone(),
                or_dash(&s.end_reason),
            ]
        })
        .collect();
    table(
        &[
            "subscription",
            "nhs number",
            "types",
            "purpose",
            "ends on",
            "ended",
        ],
        &rows,
    )
}

/// One line of a `*.subscriptions.jsonl` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionLine {
    pub nhs_number: String,
    #[serde(default)]
    pub relationship_types: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    pub purpose: String,
    #[serde(default)]
    pub ends_on: Option<String>,
    /// The member of staff the subscription is made for: its notices are
    /// decided as if they had queried.
    pub user_id: String,
    pub role: String,
    #[serde(default)]
    pub team: String,
}

impl SubscriptionLine {
    /// The request this line asks for: unknown codes named by field.
    pub fn request(&self) -> SubscribeRequest {
        let mut malformed = Vec::new();
        let mut relationship_types = Vec::new();
        for (i, t) in self.relationship_types.iter().enumerate() {
            match t.parse::<RelationshipType>() {
                Ok(t) => relationship_types.push(t),
                Err(e) => malformed.push(FieldError::new(
                    format!("relationship_types[{i}]"),
                    e.to_string(),
                )),
            }
        }
        let purpose = match self.purpose.parse::<Purpose>() {
            Ok(p) => Some(p),
            Err(e) => {
                malformed.push(FieldError::new("purpose", e.to_string()));
                None
            }
        };
        SubscribeRequest {
            user: ActingUser {
                user_id: self.user_id.clone(),
                display_name: String::new(),
                role: self.role.clone(),
                team: self.team.clone(),
            },
            nhs_number: self.nhs_number.clone(),
            relationship_types,
            categories: self.categories.clone(),
            purpose,
            ends_on: self.ends_on.clone(),
            malformed,
        }
    }
}

/// What became of one line of a bulk file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineResult {
    pub line: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subscription_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub refused: String,
}

/// The report of a bulk file: every line accepted or refused, with why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BulkReport {
    pub accepted: usize,
    pub rejected: usize,
    pub lines: Vec<LineResult>,
}

impl BulkReport {
    pub fn render(&self) -> String {
        let mut out = format!("{} accepted, {} rejected\n", self.accepted, self.rejected);
        for l in &self.lines {
            if l.refused.is_empty() {
                out.push_str(&format!(
                    "line {}: subscribed {}\n",
                    l.line, l.subscription_id
                ));
            } else {
                out.push_str(&format!("line {}: refused: {}\n", l.line, l.refused));
            }
        }
        out
    }
}

/// Subscribes every line of a `*.subscriptions.jsonl` text, one call a
/// line; a bad line never stops the rest. A hub that cannot be reached
/// stops the file (`Err`): nothing after it was sent, so it may be run
/// again (a line already accepted is then refused as a duplicate).
pub async fn subscribe_lines(
    config: &AgentConfig,
    text: &str,
) -> Result<BulkReport, SubscriptionError> {
    let mut report = BulkReport::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if line > MAX_LINES {
            report.rejected += 1;
            report.lines.push(LineResult {
                line,
                subscription_id: String::new(),
                refused: format!("past line {MAX_LINES}: split the file"),
            });
            break;
        }
        let refused = |why: String, report: &mut BulkReport| {
            report.rejected += 1;
            report.lines.push(LineResult {
                line,
                subscription_id: String::new(),
                refused: why,
            });
        };
        let parsed: SubscriptionLine = match serde_json::from_str(raw) {
            Ok(p) => p,
            Err(e) => {
                refused(format!("not a subscription: {e}"), &mut report);
                continue;
            }
        };
        match subscribe(config, &parsed.request()).await {
            Ok(s) => {
                report.accepted += 1;
                report.lines.push(LineResult {
                    line,
                    subscription_id: s.subscription_id,
                    refused: String::new(),
                });
            }
            Err(e @ (SubscriptionError::Invalid(_) | SubscriptionError::Refused { .. })) => {
                refused(e.to_string(), &mut report)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_its_unknown_codes() {
        let line: SubscriptionLine = serde_json::from_str(
            r#"{"nhs_number":"9434765919","relationship_types":["child_protection_plan","astrology"],
                "purpose":"gossip","user_id":"ed-1","role":"ed_clinician"}"#,
        )
        .unwrap();
        let errors = line
            .request()
            .check(Utc::now().date_naive(), LOCAL_LIMITS, None)
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["relationship_types[1]", "purpose"]);
    }

    #[test]
    fn the_hubs_refusals_keep_its_words() {
        let e = refusal(
            "h".into(),
            tonic::Status::already_exists("nhs_number: you already hold subscription sub-1"),
        );
        assert!(e.to_string().contains("duplicate"), "{e}");
        assert!(e.to_string().contains("sub-1"), "{e}");
        let e = refusal("h".into(), tonic::Status::unavailable("down"));
        assert!(matches!(e, SubscriptionError::Failed { .. }), "{e}");
    }
}
