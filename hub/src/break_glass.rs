//! Break glass: emergency access a case worker claims with a reason.
//!
//! A claim is checked (a known reason code and a real justification), then
//! the query runs with `context.break_glass` true and the policy set decides
//! what that opens; nothing here decides a disclosure. The access lasts for
//! that user and subject for the configured window (4 hours by default):
//! later queries by the same user about the same person within it run as
//! break glass too, each flagged in the audit. Every access is listed for
//! review by the user's own authority's auditors, and a review is itself
//! audited. The custodians whose records it reached are notified
//! ([`crate::notify`]).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use kith_core::acting_user::check_printable;
use kith_core::{FieldError, ReviewOutcome};
use kith_policy::AuditScope;

use crate::audit::{AuditEntry, AuditKind};
use crate::disclosure::{self, ActingUser};
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};
use crate::store::ChangeOutcome;

/// How long a break-glass access lasts, unless configured otherwise.
pub const DEFAULT_WINDOW: Duration = crate::config::DEFAULT_BREAK_GLASS_WINDOW;

/// What a case worker claims (checked by the query contract,
/// [`kith_core::query`]), a break-glass access and its review: plain
/// records, kept in [`crate::model`].
pub use crate::model::{BreakGlassAccess, BreakGlassClaim, Review};

/// Longest query id a review may name (the hub's own are 32 hex digits).
const MAX_QUERY_ID_CHARS: usize = 64;

/// Longest review note, in characters (after trimming: the trimmed note is
/// what is stored and audited).
pub const MAX_REVIEW_NOTE_CHARS: usize = 1000;

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Hub {
    /// The caller's user's open break-glass access to `subject`, if any.
    pub(crate) async fn open_break_glass(
        &self,
        caller: &Caller,
        user: &ActingUser,
        subject: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<BreakGlassAccess>, HubError> {
        Ok(self
            .store
            .open_break_glass(
                caller.authority.as_str(),
                &user.user_id,
                subject,
                &rfc3339(at),
            )
            .await?)
    }

    /// Checks that `user` may review `caller`'s break-glass accesses (an
    /// auditor of that authority, by policy); audits a refusal.
    async fn may_review(
        &self,
        caller: &Caller,
        user: &ActingUser,
        what: &str,
    ) -> Result<(), HubError> {
        let access = self
            .policies()
            .audit_scope(&disclosure::requester(caller, user));
        if access.scope != AuditScope::None {
            return Ok(());
        }
        let mut entry = AuditEntry::new(
            AuditKind::BreakGlassReview,
            caller.authority.as_str(),
            now(),
        );
        entry.user = Some(user.user_id.clone());
        entry.role = Some(user.role.clone());
        entry.outcome = "refused".into();
        entry.reason = format!("{what}: {}", access.reason);
        self.audit.append(entry).await?;
        Err(HubError::PermissionDenied(access.reason))
    }

    /// Checks, by policy (`review_break_glass`), that `user` may review
    /// `access` (`None`: no such access, so only whether they review at
    /// all); audits a refusal.
    async fn may_review_access(
        &self,
        caller: &Caller,
        user: &ActingUser,
        access: Option<&BreakGlassAccess>,
    ) -> Result<(), HubError> {
        let reviewer = disclosure::requester(caller, user);
        // Accesses are looked up by the caller's authority, so the accessor
        // is one of its users; no access: a user id no one has.
        let accessor = match access {
            Some(a) => disclosure::requester(caller, &a.user),
            None => kith_policy::Requester {
                user_id: String::new(),
                ..reviewer.clone()
            },
        };
        let decision = self.policies().may_review_break_glass(&reviewer, &accessor);
        if decision.allowed {
            return Ok(());
        }
        let mut entry = AuditEntry::new(
            AuditKind::BreakGlassReview,
            caller.authority.as_str(),
            now(),
        );
        entry.user = Some(user.user_id.clone());
        entry.role = Some(user.role.clone());
        // The access's own id (as stored), never the caller's text as sent.
        entry.query_id = access.map(|a| a.query_id.clone());
        entry.outcome = "refused".into();
        entry.reason = format!("review a break-glass access: {}", decision.reason);
        self.audit.append(entry).await?;
        Err(HubError::PermissionDenied(decision.reason))
    }

    /// The caller's authority's break-glass accesses, newest first:
    /// those awaiting review, or all.
    pub async fn list_break_glass(
        &self,
        caller: &Caller,
        user: &ActingUser,
        include_reviewed: bool,
    ) -> Result<Vec<BreakGlassAccess>, HubError> {
        let mut errors = Vec::new();
        user.check("acting_user", &mut errors);
        if !errors.is_empty() {
            return Err(HubError::InvalidArgument(errors));
        }
        self.may_review(caller, user, "list break-glass accesses")
            .await?;
        let accesses = self
            .store
            .break_glass_accesses(caller.authority.as_str(), include_reviewed)
            .await?;
        let mut entry = AuditEntry::new(AuditKind::AuditRead, caller.authority.as_str(), now());
        entry.user = Some(user.user_id.clone());
        entry.role = Some(user.role.clone());
        entry.reason = format!(
            "break-glass accesses listed ({}, {} shown)",
            if include_reviewed {
                "all"
            } else {
                "awaiting review"
            },
            accesses.len()
        );
        self.audit.append(entry).await?;
        Ok(accesses)
    }

    /// Records the review of one access by the caller's authority's
    /// auditor; returns the review's audit index.
    pub async fn review_break_glass(
        &self,
        caller: &Caller,
        user: &ActingUser,
        query_id: &str,
        outcome: Option<ReviewOutcome>,
        note: &str,
    ) -> Result<u64, HubError> {
        let mut errors = Vec::new();
        user.check("acting_user", &mut errors);
        let query_id = query_id.trim();
        if query_id.is_empty() {
            errors.push(FieldError::new("query_id", "is required"));
        } else {
            check_printable("query_id", query_id, MAX_QUERY_ID_CHARS, &mut errors);
        }
        if outcome.is_none() {
            errors.push(FieldError::new(
                "outcome",
                format!("is required: one of {}", ReviewOutcome::expected()),
            ));
        }
        // The bound is on the note as kept: trimmed.
        let note = note.trim();
        if note.is_empty() {
            errors.push(FieldError::new("note", "is required"));
        } else if note.chars().any(|c| c.is_control() && c != '\n') {
            errors.push(FieldError::new("note", "contains control characters"));
        } else if note.chars().count() > MAX_REVIEW_NOTE_CHARS {
            errors.push(FieldError::new(
                "note",
                format!("is longer than {MAX_REVIEW_NOTE_CHARS} characters"),
            ));
        }
        let (Some(outcome), true) = (outcome, errors.is_empty()) else {
            return Err(HubError::InvalidArgument(errors));
        };
        // Separation of duties, by policy: the access's own authority's
        // auditors review it, never the user who broke glass.
        let found = self
            .store
            .break_glass_access(caller.authority.as_str(), query_id)
            .await?;
        self.may_review_access(caller, user, found.as_ref()).await?;
        let at = now();
        let review = Review {
            outcome,
            note: note.to_string(),
            reviewed_by: user.user_id.clone(),
            reviewed_at: rfc3339(at),
            audit_index: 0,
        };
        let authority = caller.authority.as_str();
        let audit = |o: ChangeOutcome| {
            let mut entry = AuditEntry::new(AuditKind::BreakGlassReview, authority, at);
            entry.user = Some(user.user_id.clone());
            entry.role = Some(user.role.clone());
            entry.query_id = Some(query_id.to_string());
            entry.outcome = match o {
                ChangeOutcome::Done => "ok".into(),
                ChangeOutcome::NotFound => "not_found".into(),
            };
            entry.reason = format!("reviewed as {outcome}: {note}");
            entry
        };
        match self
            .store
            .review_break_glass(authority, query_id, &review, &audit)
            .await?
        {
            (ChangeOutcome::Done, index) => Ok(index),
            (ChangeOutcome::NotFound, _) => Err(HubError::NotFound(format!(
                "no break-glass access by {authority}'s users with query id {query_id}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_claim_needs_a_known_reason_and_a_real_justification() {
        // (The check itself is the query contract's, kith_core::query; the
        // assertions are the ones this module had.)
        let mut errors = Vec::new();
        kith_core::query::BreakGlassRequest {
            reason_code: "because".into(),
            justification: "urgent".into(),
        }
        .check(&mut errors);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["break_glass.reason_code", "break_glass.justification"]
        );
        assert!(errors[0].reason.contains("life_threatening"), "{errors:?}");

        let mut errors = Vec::new();
        kith_core::query::BreakGlassRequest {
            reason_code: "life_threatening".into(),
            justification: "Unconscious patient in ED, no history available".into(),
        }
        .check(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }
}
