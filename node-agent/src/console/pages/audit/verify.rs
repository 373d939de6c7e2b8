//! `/audit/verify`: is the audit log the one the hub signed, and an
//! extension of the one verified last time? The page shows the checkpoint
//! this agent's console last verified (its size, root and when) and, on
//! "Verify now", runs exactly what `kith-agent audit verify` runs
//! ([`crate::audit::verify`]): the signature with the agent's copy of the
//! log key, every readable entry against its leaf hash, the root, and the
//! consistency proof from the saved checkpoint. Only a clean verify saves
//! the new checkpoint.
//!
//! The console keeps its own saved checkpoint, `<data_dir>/console-audit-state.json`,
//! apart from any auditor's `~/.kith/audit-state.json`: one per agent,
//! whichever auditor verifies. Beside it, `console-audit-last.json` keeps
//! the outcome of the last run, failed or not, so the page shows a failure
//! to the next auditor too.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::{auditor, hub_problem, key_warning, refused};
use crate::audit::{SavedCheckpoint, VerifyOptions, VerifyReport};
use crate::config::AgentConfig;
use crate::console::ConsoleState;
use crate::console::pages::{Shell, csrf_field, page, respond};
use crate::console::session::Session;
use crate::console::signed_in::{Posted, SignedIn};

const PATH: &str = "/audit/verify";

/// The console's saved checkpoint.
pub fn state_path(config: &AgentConfig) -> PathBuf {
    config.data_dir.join("console-audit-state.json")
}

/// The outcome of the last run, whoever ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When it ran, RFC 3339 UTC.
    pub at: String,
    /// Who ran it (user id).
    pub by: String,
    pub ok: bool,
    pub tree_size: u64,
    /// The tree size of the checkpoint it was proved consistent with.
    pub consistent_with: Option<u64>,
    /// Each problem, as the report words it.
    pub problems: Vec<String>,
}

/// Where the last run's outcome is kept.
pub fn last_run_path(config: &AgentConfig) -> PathBuf {
    config.data_dir.join("console-audit-last.json")
}

impl LastRun {
    fn of(report: &VerifyReport, by: &str) -> Self {
        Self {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            by: by.to_string(),
            ok: report.ok(),
            tree_size: report.checkpoint.tree_size,
            consistent_with: report.consistent_with.as_ref().map(|s| s.tree_size),
            problems: report.problems.iter().map(ToString::to_string).collect(),
        }
    }

    /// Reads the last run; `None` if there was none or it cannot be read.
    pub fn load(path: &std::path::Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Writes it whole (temporary file, then rename).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serialises"))?;
        std::fs::rename(&tmp, path)
    }
}

fn last_run_rows(last: &LastRun) -> Markup {
    html! {
        dl class="govuk-summary-list" id="last-run" {
            div class="govuk-summary-list__row" {
                dt class="govuk-summary-list__key" { "Result" }
                dd class="govuk-summary-list__value" {
                    @if last.ok { strong class="govuk-tag govuk-tag--green" { "Verified" } }
                    @else { strong class="govuk-tag govuk-tag--red" { "Failed" } }
                    @if last.ok {
                        @match last.consistent_with {
                            Some(size) => { " consistent with the checkpoint of size " (size) },
                            None => " (nothing verified before to prove consistency with)",
                        }
                    }
                    @if !last.problems.is_empty() {
                        ul class="govuk-list govuk-list--bullet" { @for p in &last.problems { li { (p) } } }
                    }
                }
            }
            @for (key, value) in [("Entries (tree size)", last.tree_size.to_string()), ("When", last.at.clone()), ("By", last.by.clone())] {
                div class="govuk-summary-list__row" {
                    dt class="govuk-summary-list__key" { (key) }
                    dd class="govuk-summary-list__value" { (value) }
                }
            }
        }
    }
}

/// The verify form carries nothing but its CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct Nothing {}

fn saved_rows(saved: &SavedCheckpoint) -> Markup {
    html! {
        dl class="govuk-summary-list" id="saved-checkpoint" {
            @for (key, value) in [
                ("Log", saved.origin.clone()),
                ("Entries (tree size)", saved.tree_size.to_string()),
                ("Root hash", saved.root_hash.clone()),
                ("Verified at", saved.saved_at.clone()),
            ] {
                div class="govuk-summary-list__row" {
                    dt class="govuk-summary-list__key" { (key) }
                    dd class="govuk-summary-list__value" { (value) }
                }
            }
        }
    }
}

fn verify_button(session: &Session) -> Markup {
    html! {
        form method="post" action=(PATH) {
            (csrf_field(&session.csrf_token))
            button type="submit" class="govuk-button" { "Verify now" }
        }
    }
}

fn status_page(
    session: &Session,
    saved: Result<Option<SavedCheckpoint>, String>,
    last: Option<LastRun>,
) -> Markup {
    page(
        "Log verification",
        Some(&Shell::at(session, PATH)),
        html! {
            h1 class="govuk-heading-l" { "Log verification" }
            p class="govuk-body" { "Proves that the audit log the hub serves is the one it signed, and that nothing logged before was changed or removed." }
            h2 class="govuk-heading-m" { "Last verified checkpoint" }
            @match &saved {
                Ok(Some(s)) => (saved_rows(s)),
                Ok(None) => p class="govuk-body" id="never-verified" { "This console has not verified the log yet." },
                Err(reason) => p class="govuk-body" id="state-unreadable" { "The saved checkpoint cannot be read: " (reason) },
            }
            @if let Some(last) = &last {
                h2 class="govuk-heading-m" { "Last run" }
                (last_run_rows(last))
            }
            (verify_button(session))
        },
    )
}

fn report_page(session: &Session, r: &VerifyReport) -> Markup {
    let cp = &r.checkpoint;
    page(
        if r.ok() {
            "Log verified"
        } else {
            "Log verification failed"
        },
        Some(&Shell::at(session, PATH)),
        html! {
            @if r.ok() {
                div class="govuk-panel govuk-panel--confirmation" {
                    h1 class="govuk-panel__title" id="verify-result" { "Log verified" }
                    div class="govuk-panel__body" { (r.entries) " entries, consistent" }
                }
            } @else {
                div class="govuk-error-summary" {
                    div role="alert" {
                        h1 class="govuk-error-summary__title" id="verify-result" { "Log verification failed" }
                        div class="govuk-error-summary__body" {
                            ul class="govuk-list" id="problems" {
                                @for p in &r.problems { li { (p.to_string()) } }
                            }
                            p class="govuk-body" { "The saved checkpoint was not updated. Tell your Data Protection Officer and the federation's operators." }
                        }
                    }
                }
            }
            (key_warning(&cp.key))
            dl class="govuk-summary-list" id="checkpoint" {
                @for (key, value) in [
                    ("Log", cp.origin.clone()),
                    ("Hub", r.hub_address.clone()),
                    ("Entries (tree size)", cp.tree_size.to_string()),
                    ("Root hash", hex::encode(cp.root_hash)),
                    ("Entries you may read", (r.entries - r.withheld).to_string()),
                    ("Checked by hash only", r.withheld.to_string()),
                    ("Consistent with", match &r.consistent_with {
                        Some(s) => format!("the checkpoint verified at {} (size {})", s.saved_at, s.tree_size),
                        None if r.ok() => "nothing: no checkpoint was verified before".to_string(),
                        None => "not proved".to_string(),
                    }),
                ] {
                    div class="govuk-summary-list__row" {
                        dt class="govuk-summary-list__key" { (key) }
                        dd class="govuk-summary-list__value" { (value) }
                    }
                }
            }
            (verify_button(session))
        },
    )
}

/// `GET /audit/verify`.
pub async fn status(State(state): State<ConsoleState>, SignedIn(session): SignedIn) -> Response {
    if auditor(&session).is_none() {
        return refused();
    }
    let saved = SavedCheckpoint::load(&state_path(&state.agent)).map_err(|e| e.to_string());
    let last = LastRun::load(&last_run_path(&state.agent));
    respond(StatusCode::OK, status_page(&session, saved, last))
}

/// `POST /audit/verify`: verifies now.
pub async fn run(State(state): State<ConsoleState>, posted: Posted<Nothing>) -> Response {
    let session = posted.session;
    let Some(who) = auditor(&session) else {
        return refused();
    };
    let options = VerifyOptions {
        vkey: None,
        state: Some(state_path(&state.agent)),
    };
    match crate::audit::verify(&state.agent, who, &options, &mut |_, _| {}).await {
        Ok(report) => {
            let last = LastRun::of(&report, &session.staff.user_id);
            if let Err(e) = last.save(&last_run_path(&state.agent)) {
                tracing::warn!(error = %e, "cannot keep the last verification's outcome");
            }
            if !report.ok() {
                tracing::error!(user = %session.staff.user_id, problems = report.problems.len(), "console audit log verification FAILED");
            }
            respond(StatusCode::OK, report_page(&session, &report))
        }
        Err(e) => hub_problem(&session, "log verification", &e),
    }
}
