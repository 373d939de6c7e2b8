//! The auditor's pages (roles `auditor` and `federation_auditor`): the
//! console's face on the same library the `kith-agent audit …` commands
//! use ([`crate::audit`]), one page a file.
//!
//! | file | page |
//! |---|---|
//! | `filter.rs` | the filter form search and export share |
//! | `search.rs` | `/audit/search`: the audit log, filtered, a page at a time |
//! | `subject.rs` | `/audit/subject`: the subject access report for a person |
//! | `break_glass.rs` | `/audit/break-glass`: the review queue and the review form |
//! | `verify.rs` | `/audit/verify`: log verification status, and verifying now |
//! | `export.rs` | `/audit/export`: JSON Lines or FHIR AuditEvent downloads |
//!
//! Every call to the hub is made as the signed-in auditor, taken from the
//! session, never from a form: the hub's policy then decides what they may
//! read. Searches, reports and exports are POSTs, so no NHS number or user
//! id reaches a URL. Other roles get the refusal page; signed-out users go
//! to sign-in (the [`SignedIn`](crate::console::signed_in::SignedIn)
//! extractor).

pub mod break_glass;
pub mod export;
pub mod filter;
pub mod search;
pub mod subject;
pub mod verify;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::{not_for_role, problem};
use crate::audit::{AuditError, Auditor};
use crate::console::ConsoleState;
use crate::console::roles::{Duty, duty};
use crate::console::session::Session;

/// The auditor's routes.
pub fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/audit/search", get(search::form).post(search::submit))
        .route("/audit/subject", get(subject::form).post(subject::submit))
        .route("/audit/break-glass", get(break_glass::queue))
        .route("/audit/break-glass/review", post(break_glass::review))
        .route("/audit/verify", get(verify::status).post(verify::run))
        .route("/audit/export", get(export::form).post(export::download))
}

/// The session's member of staff as the acting auditor; `None` for a role
/// that does not audit (answer with [`refused`]).
pub fn auditor(session: &Session) -> Option<Auditor> {
    if duty(&session.staff.role) != Duty::Audit {
        return None;
    }
    let s = &session.staff;
    Some(Auditor {
        user_id: s.user_id.clone(),
        role: s.role.clone(),
        display_name: s.display_name.clone(),
        team: s.team.clone(),
    })
}

/// The refusal page for a role that does not audit.
pub fn refused() -> Response {
    not_for_role("The audit pages are for auditors.")
}

/// The page for an audit call that could not be made. The hub's refusal is
/// shown with its reason (it names policy, never a person); other failures
/// say the hub could not be reached. Logged with the user id only.
pub fn hub_problem(session: &Session, what: &'static str, e: &AuditError) -> Response {
    tracing::warn!(user = %session.staff.user_id, page = what, error = %e, "console audit call failed");
    match e {
        AuditError::Refused { code, message, .. } => problem(
            if *code == tonic::Code::PermissionDenied {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_GATEWAY
            },
            "The hub refused this",
            message,
        ),
        AuditError::Signature(reason) => problem(
            StatusCode::BAD_GATEWAY,
            "The audit log's checkpoint does not verify",
            &format!(
                "Nothing was read: the hub's latest checkpoint is not signed by the log key this agent trusts ({reason}). Tell your federation's operators."
            ),
        ),
        AuditError::Key { .. } | AuditError::State { .. } | AuditError::Io { .. } => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sorry, there is a problem with the service",
            "This agent cannot read its audit log key or its saved checkpoint. Tell your IT service desk.",
        ),
        _ => problem(
            StatusCode::BAD_GATEWAY,
            "Kith cannot be reached",
            "The audit log could not be read because the Kith hub did not answer. Try again in a few minutes; if it goes on, tell your IT service desk.",
        ),
    }
}

/// The note shown when the checkpoint was checked only against the key
/// the hub itself sent.
pub fn key_warning(key: &crate::audit::KeySource) -> Markup {
    html! {
        @if key.warning().is_some() {
            div class="govuk-warning-text" id="key-warning" {
                span class="govuk-warning-text__icon" aria-hidden="true" { "!" }
                strong class="govuk-warning-text__text" {
                    span class="govuk-visually-hidden" { "Warning" }
                    "This agent has no copy of the audit log's key ([audit] vkey in its config), so the log was checked only against the key the hub sent. That proves nothing if the hub is not honest. Ask your operator to add the key."
                }
            }
        }
    }
}

/// The note on entries outside the auditor's scope.
pub fn withheld_note(withheld: u64) -> Markup {
    html! {
        @if withheld > 0 {
            p class="govuk-inset-text" id="withheld" {
                (withheld) " entries are outside your audit scope: you see them by their hash only, and they were not searched."
            }
        }
    }
}
