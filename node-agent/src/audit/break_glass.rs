//! Reviewing break glass: `kith-agent audit break-glass` and
//! `kith-agent audit break-glass review`.
//!
//! When a case worker claims emergency access, the hub opens it, flags the
//! query for review and tells the custodians. The accessing authority's
//! auditor (role `auditor`, policy `audit_own_authority`) then lists its
//! users' break-glass accesses still awaiting review (`ListBreakGlass`) and
//! marks each appropriate or inappropriate with a note (`ReviewBreakGlass`);
//! the review is itself an audit entry. The note is checked here first
//! (required, at most 1,000 characters), as the hub will.

use kith_proto::v1 as pb;
use serde::Serialize;

use super::client::AuditClient;
use super::{AuditError, Auditor};
use crate::config::AgentConfig;
use crate::table::{or_dash, table};

/// Longest review note the hub takes.
pub const MAX_NOTE_LEN: usize = 1000;

/// What the reviewer concluded: one vocabulary with the hub's.
pub use kith_core::ReviewOutcome;

/// One break-glass access, as the auditor sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakGlassView {
    pub query_id: String,
    pub audit_index: u64,
    pub user_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_name: String,
    pub role: String,
    /// The NHS number asked about.
    pub subject: String,
    pub reason_code: String,
    pub justification: String,
    pub occurred_at: String,
    pub expires_at: String,
    pub reviewed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewView>,
}

/// A review already made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewView {
    pub reviewed_by: String,
    pub outcome: Option<ReviewOutcome>,
    pub note: String,
    pub reviewed_at: String,
}

impl BreakGlassView {
    pub fn from_wire(a: pb::BreakGlassAccess) -> Self {
        let user = a.user.unwrap_or_default();
        Self {
            query_id: a.query_id,
            audit_index: a.audit_index,
            user_id: user.user_id,
            user_name: user.display_name,
            role: user.role,
            subject: a.subject,
            reason_code: a.reason_code,
            justification: a.justification,
            occurred_at: a.occurred_at,
            expires_at: a.expires_at,
            reviewed: a.reviewed,
            review: a.reviewed.then(|| ReviewView {
                reviewed_by: a.reviewed_by,
                outcome: ReviewOutcome::from_wire(a.review_outcome),
                note: a.review_note,
                reviewed_at: a.reviewed_at,
            }),
        }
    }
}

/// The accesses as a table for people.
pub fn render_table(accesses: &[BreakGlassView], include_reviewed: bool) -> String {
    if accesses.is_empty() {
        return if include_reviewed {
            "(no break-glass accesses by your authority's users)\n".into()
        } else {
            "(no break-glass accesses awaiting review)\n".into()
        };
    }
    let headers = [
        "QUERY",
        "WHEN",
        "USER",
        "ROLE",
        "SUBJECT",
        "REASON",
        "JUSTIFICATION",
        "REVIEW",
    ];
    let rows: Vec<Vec<String>> = accesses
        .iter()
        .map(|a| {
            let user = if a.user_name.is_empty() {
                a.user_id.clone()
            } else {
                format!("{} ({})", a.user_name, a.user_id)
            };
            let review = match &a.review {
                None => "awaiting review".to_string(),
                Some(r) => format!(
                    "{} by {} on {}: {}",
                    r.outcome.map_or("reviewed", |o| match o {
                        ReviewOutcome::Appropriate => "appropriate",
                        ReviewOutcome::Inappropriate => "INAPPROPRIATE",
                    }),
                    or_dash(&r.reviewed_by),
                    or_dash(&r.reviewed_at),
                    r.note
                ),
            };
            vec![
                a.query_id.clone(),
                or_dash(&a.occurred_at),
                user,
                or_dash(&a.role),
                or_dash(&a.subject),
                or_dash(&a.reason_code),
                or_dash(&a.justification),
                review,
            ]
        })
        .collect();
    table(&headers, &rows)
}

/// `audit break-glass`: this authority's break-glass accesses awaiting
/// review, or all of them.
pub async fn list(
    config: &AgentConfig,
    auditor: Auditor,
    include_reviewed: bool,
) -> Result<Vec<BreakGlassView>, AuditError> {
    let mut client = AuditClient::connect(config, auditor).await?;
    let accesses = client.list_break_glass(include_reviewed).await?;
    Ok(accesses
        .into_iter()
        .map(BreakGlassView::from_wire)
        .collect())
}

/// Checks a review before any call: a query id and a note of at most
/// [`MAX_NOTE_LEN`] characters.
pub fn check_review(query_id: &str, note: &str) -> Result<(), AuditError> {
    if query_id.trim().is_empty() {
        return Err(AuditError::Invalid("QUERY_ID: is required".into()));
    }
    if note.trim().is_empty() {
        return Err(AuditError::Invalid(
            "--note: is required: say why the access was or was not appropriate".into(),
        ));
    }
    let len = note.chars().count();
    if len > MAX_NOTE_LEN {
        return Err(AuditError::Invalid(format!(
            "--note: is {len} characters; at most {MAX_NOTE_LEN}"
        )));
    }
    Ok(())
}

/// `audit break-glass review`: marks one access reviewed; the audit index
/// of the review.
pub async fn review(
    config: &AgentConfig,
    auditor: Auditor,
    query_id: &str,
    outcome: ReviewOutcome,
    note: &str,
) -> Result<u64, AuditError> {
    check_review(query_id, note)?;
    let mut client = AuditClient::connect(config, auditor).await?;
    client
        .review_break_glass(query_id.trim(), outcome.to_wire(), note.trim())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(reviewed: bool) -> pb::BreakGlassAccess {
        pb::BreakGlassAccess {
            query_id: "q-7".into(),
            audit_index: 12,
            user: Some(pb::ActingUser {
                user_id: "para-1".into(),
                display_name: "Sam Lee".into(),
                role: "paramedic".into(),
                team: String::new(),
            }),
            subject: "9434765919".into(),
            reason_code: "life_threatening".into(),
            justification: "unconscious at scene, no history available".into(),
            occurred_at: "2026-03-01T10:00:00Z".into(),
            expires_at: "2026-03-01T14:00:00Z".into(),
            reviewed,
            reviewed_by: if reviewed {
                "dpo".into()
            } else {
                String::new()
            },
            review_outcome: if reviewed {
                pb::BreakGlassReviewOutcome::Inappropriate as i32
            } else {
                0
            },
            review_note: if reviewed {
                "no emergency".into()
            } else {
                String::new()
            },
            reviewed_at: if reviewed {
                "2026-03-02T09:00:00Z".into()
            } else {
                String::new()
            },
        }
    }

    #[test]
    fn accesses_show_who_why_and_the_review() {
        let pending = BreakGlassView::from_wire(access(false));
        let done = BreakGlassView::from_wire(access(true));
        assert!(pending.review.is_none());
        assert_eq!(
            done.review.as_ref().and_then(|r| r.outcome),
            Some(ReviewOutcome::Inappropriate)
        );
        let text = render_table(&[pending, done.clone()], true);
        assert!(text.contains("Sam Lee (para-1)"), "{text}");
        assert!(text.contains("awaiting review"), "{text}");
        assert!(
            text.contains("INAPPROPRIATE by dpo on 2026-03-02T09:00:00Z: no emergency"),
            "{text}"
        );
        assert_eq!(
            render_table(&[], false),
            "(no break-glass accesses awaiting review)\n"
        );
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["review"]["outcome"], "inappropriate");
        assert_eq!(json["subject"], "9434765919");
    }

    #[test]
    fn a_review_needs_a_note_of_sensible_length() {
        assert!(check_review("q-1", "checked with the crew").is_ok());
        let err = check_review("q-1", "  ").unwrap_err().to_string();
        assert!(err.contains("--note: is required"), "{err}");
        let err = check_review("q-1", &"x".repeat(1001))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 1000"), "{err}");
        assert!(check_review(" ", "fine").is_err());
        assert!("maybe".parse::<ReviewOutcome>().is_err());
        assert_eq!("appropriate".parse(), Ok(ReviewOutcome::Appropriate));
    }
}
