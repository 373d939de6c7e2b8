//! `/audit/break-glass`: the break-glass review queue. The auditor sees
//! their authority's users' emergency accesses awaiting review (or all,
//! `?all=yes`), opens one, and records an outcome (appropriate or not) with
//! a note. The review is a CSRF-checked POST made at the hub as the
//! signed-in auditor, and is itself an audit entry; the hub's policy
//! refuses a review by the user who broke glass.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::{auditor, hub_problem, refused};
use crate::audit::break_glass::{self, BreakGlassView, MAX_NOTE_LEN, ReviewOutcome};
use crate::console::ConsoleState;
use crate::console::pages::form::{
    FieldError, err, error_summary, group_class, inline_error, label,
};
use crate::console::pages::{Shell, csrf_field, page, problem, respond};
use crate::console::session::Session;
use crate::console::signed_in::{Posted, SignedIn};

const PATH: &str = "/audit/break-glass";

/// `?all=yes` lists reviewed accesses too.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Shown {
    pub all: String,
}

/// The review form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReviewForm {
    pub query_id: String,
    pub outcome: String,
    pub note: String,
    /// `record` once the outcome and note are given.
    pub step: String,
}

fn who(a: &BreakGlassView) -> String {
    if a.user_name.is_empty() {
        format!("{} ({})", a.user_id, label(&a.role))
    } else {
        format!("{} ({}, {})", a.user_name, a.user_id, label(&a.role))
    }
}

fn access_rows(a: &BreakGlassView) -> Markup {
    html! {
        dl class="govuk-summary-list" {
            @for (key, value) in [
                ("When", a.occurred_at.clone()),
                ("Who", who(a)),
                ("About NHS number", a.subject.clone()),
                ("Reason", label(&a.reason_code)),
                ("What they said was happening", a.justification.clone()),
                ("Access open until", a.expires_at.clone()),
                ("Query", a.query_id.clone()),
            ] {
                div class="govuk-summary-list__row" {
                    dt class="govuk-summary-list__key" { (key) }
                    dd class="govuk-summary-list__value" { (value) }
                }
            }
            @if let Some(r) = &a.review {
                div class="govuk-summary-list__row" {
                    dt class="govuk-summary-list__key" { "Review" }
                    dd class="govuk-summary-list__value" {
                        @match r.outcome {
                            Some(ReviewOutcome::Appropriate) => strong class="govuk-tag govuk-tag--green" { "Appropriate" },
                            Some(ReviewOutcome::Inappropriate) => strong class="govuk-tag govuk-tag--red" { "Inappropriate" },
                            None => "Reviewed",
                        }
                        " by " (r.reviewed_by) " on " (r.reviewed_at) ": " (r.note)
                    }
                }
            }
        }
    }
}

fn queue_page(session: &Session, accesses: &[BreakGlassView], all: bool) -> Markup {
    page(
        "Break-glass reviews",
        Some(&Shell::at(session, PATH)),
        html! {
            h1 class="govuk-heading-l" { "Break-glass reviews" }
            p class="govuk-body" {
                "When one of your authority's users claims emergency access, it waits here for review. Record whether it was appropriate, with a note."
            }
            p class="govuk-body" {
                @if all { a class="govuk-link" href=(PATH) { "Show only those awaiting review" } }
                @else { a class="govuk-link" href={ (PATH) "?all=yes" } { "Show reviewed accesses too" } }
            }
            @if accesses.is_empty() {
                p class="govuk-body" id="no-accesses" {
                    @if all { "No break-glass accesses by your authority's users." } @else { "No break-glass accesses are awaiting review." }
                }
            }
            @for a in accesses {
                div class="govuk-summary-card" {
                    div class="govuk-summary-card__title-wrapper" {
                        h2 class="govuk-summary-card__title" {
                            (who(a))
                            @if !a.reviewed { " – awaiting review" }
                        }
                    }
                    div class="govuk-summary-card__content" {
                        (access_rows(a))
                        @if !a.reviewed {
                            form method="post" action={ (PATH) "/review" } {
                                (csrf_field(&session.csrf_token))
                                input type="hidden" name="query_id" value=(a.query_id);
                                button type="submit" class="govuk-button govuk-!-margin-bottom-0" {
                                    "Review" span class="govuk-visually-hidden" { " the access by " (who(a)) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn review_page(
    session: &Session,
    a: &BreakGlassView,
    form: &ReviewForm,
    errors: &[FieldError],
) -> Markup {
    page(
        if errors.is_empty() {
            "Review a break-glass access"
        } else {
            "Error: Review a break-glass access"
        },
        Some(&Shell::at(session, PATH)),
        html! {
            div class="govuk-grid-row" {
                div class="govuk-grid-column-two-thirds" {
                    (error_summary(errors))
                    h1 class="govuk-heading-l" { "Review a break-glass access" }
                    (access_rows(a))
                    form method="post" action={ (PATH) "/review" } novalidate {
                        (csrf_field(&session.csrf_token))
                        input type="hidden" name="query_id" value=(a.query_id);
                        input type="hidden" name="step" value="record";
                        div class=(group_class(errors, &["outcome"])) {
                            fieldset class="govuk-fieldset" {
                                legend class="govuk-fieldset__legend govuk-fieldset__legend--m" { "Was this access appropriate?" }
                                (inline_error(errors, "outcome"))
                                div class="govuk-radios" {
                                    @for (id, value, text) in [("outcome", "appropriate", "Yes, appropriate"), ("outcome-inappropriate", "inappropriate", "No, inappropriate")] {
                                        div class="govuk-radios__item" {
                                            input class="govuk-radios__input" id=(id) name="outcome" type="radio" value=(value) checked[form.outcome == value];
                                            label class="govuk-label govuk-radios__label" for=(id) { (text) }
                                        }
                                    }
                                }
                            }
                        }
                        div class=(group_class(errors, &["note"])) {
                            label class="govuk-label govuk-label--s" for="note" { "Note" }
                            div class="govuk-hint" id="note-hint" { "Why it was or was not appropriate. Up to " (MAX_NOTE_LEN) " characters." }
                            (inline_error(errors, "note"))
                            textarea class="govuk-textarea" id="note" name="note" rows="4" aria-describedby="note-hint" { (form.note) }
                        }
                        button type="submit" class="govuk-button" { "Record the review" }
                    }
                    p class="govuk-body" { a class="govuk-link" href=(PATH) { "Back to the queue" } }
                }
            }
        },
    )
}

fn reviewed_page(session: &Session, query_id: &str, index: u64) -> Markup {
    page(
        "Review recorded",
        Some(&Shell::at(session, PATH)),
        html! {
            div class="govuk-panel govuk-panel--confirmation" {
                h1 class="govuk-panel__title" { "Review recorded" }
                div class="govuk-panel__body" id="review-recorded" { "Audit entry " strong { (index) } }
            }
            p class="govuk-body" { "The review of query " (query_id) " is in the audit log." }
            p class="govuk-body" { a class="govuk-link" href=(PATH) { "Back to the queue" } }
        },
    )
}

/// The form's errors, each at its field: an outcome, and a note of 1 to
/// [`MAX_NOTE_LEN`] characters.
pub fn check(form: &ReviewForm) -> Result<ReviewOutcome, Vec<FieldError>> {
    let mut errors = Vec::new();
    let outcome = match form.outcome.trim() {
        "" => {
            errors.push(err("outcome", "Select whether the access was appropriate"));
            None
        }
        o => match o.parse::<ReviewOutcome>() {
            Ok(o) => Some(o),
            Err(_) => {
                errors.push(err("outcome", "Select appropriate or inappropriate"));
                None
            }
        },
    };
    let note = form.note.trim();
    if note.is_empty() {
        errors.push(err("note", "Enter a note saying why"));
    } else if note.chars().count() > MAX_NOTE_LEN {
        errors.push(err(
            "note",
            format!("The note must be {MAX_NOTE_LEN} characters or fewer"),
        ));
    }
    match outcome {
        Some(o) if errors.is_empty() => Ok(o),
        _ => Err(errors),
    }
}

/// `GET /audit/break-glass`.
pub async fn queue(
    State(state): State<ConsoleState>,
    SignedIn(session): SignedIn,
    Query(shown): Query<Shown>,
) -> Response {
    let Some(who) = auditor(&session) else {
        return refused();
    };
    let all = shown.all == "yes";
    match break_glass::list(&state.agent, who, all).await {
        Ok(accesses) => respond(StatusCode::OK, queue_page(&session, &accesses, all)),
        Err(e) => hub_problem(&session, "break-glass queue", &e),
    }
}

/// `POST /audit/break-glass/review`: first the form for one access, then
/// (`step=record`) the review.
pub async fn review(State(state): State<ConsoleState>, posted: Posted<ReviewForm>) -> Response {
    let Posted { session, form } = posted;
    let Some(who) = auditor(&session) else {
        return refused();
    };
    let accesses = match break_glass::list(&state.agent, who.clone(), false).await {
        Ok(a) => a,
        Err(e) => return hub_problem(&session, "break-glass review", &e),
    };
    let Some(access) = accesses.iter().find(|a| a.query_id == form.query_id.trim()) else {
        return problem(
            StatusCode::NOT_FOUND,
            "This access is not awaiting review",
            "It may have been reviewed already, or it is not one of your authority's. Go back to the queue.",
        );
    };
    if form.step != "record" {
        return respond(StatusCode::OK, review_page(&session, access, &form, &[]));
    }
    let outcome = match check(&form) {
        Ok(o) => o,
        Err(errors) => {
            return respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                review_page(&session, access, &form, &errors),
            );
        }
    };
    match break_glass::review(&state.agent, who, &access.query_id, outcome, &form.note).await {
        Ok(index) => {
            tracing::info!(user = %session.staff.user_id, query = %access.query_id, "console break-glass review");
            respond(
                StatusCode::OK,
                reviewed_page(&session, &access.query_id, index),
            )
        }
        Err(e) => hub_problem(&session, "break-glass review", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_needs_an_outcome_and_a_bounded_note() {
        let ok = ReviewForm {
            query_id: "q".into(),
            outcome: "inappropriate".into(),
            note: " no emergency ".into(),
            step: "record".into(),
        };
        assert_eq!(check(&ok), Ok(ReviewOutcome::Inappropriate));
        let fields = |f: &ReviewForm| {
            check(f)
                .unwrap_err()
                .iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(&ReviewForm {
                outcome: String::new(),
                note: String::new(),
                ..ok.clone()
            }),
            ["outcome", "note"]
        );
        assert_eq!(
            fields(&ReviewForm {
                outcome: "maybe".into(),
                ..ok.clone()
            }),
            ["outcome"]
        );
        assert_eq!(
            fields(&ReviewForm {
                note: "x".repeat(MAX_NOTE_LEN + 1),
                ..ok.clone()
            }),
            ["note"]
        );
        assert!(
            check(&ReviewForm {
                note: "x".repeat(MAX_NOTE_LEN),
                ..ok
            })
            .is_ok()
        );
    }
}
