//! `/audit/subject`: the subject access report for one person: every query
//! about them the auditor may read, when, by whom, for what purpose, what
//! each record was decided at and under which agreement
//! ([`crate::audit::subject_report`]). The NHS number is posted, never put
//! in a URL.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::{auditor, hub_problem, key_warning, refused, withheld_note};
use crate::audit::{AuditError, SubjectReport};
use crate::console::ConsoleState;
use crate::console::pages::form::{
    FieldError, err, error_summary, label, scroll_table, text_input,
};
use crate::console::pages::{Shell, csrf_field, page, respond};
use crate::console::session::Session;
use crate::console::signed_in::{Posted, SignedIn};

const PATH: &str = "/audit/subject";

/// The report form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubjectForm {
    pub nhs_number: String,
}

fn form_page(session: &Session, form: &SubjectForm, errors: &[FieldError]) -> Markup {
    page(
        if errors.is_empty() {
            "Subject access report"
        } else {
            "Error: Subject access report"
        },
        Some(&Shell::at(session, PATH)),
        html! {
            div class="govuk-grid-row" {
                div class="govuk-grid-column-two-thirds" {
                    (error_summary(errors))
                    h1 class="govuk-heading-l" { "Subject access report" }
                    p class="govuk-body" { "Who looked a person up through Kith, when, why, and what they were shown: for a subject access request." }
                    form method="post" action=(PATH) novalidate {
                        (csrf_field(&session.csrf_token))
                        (text_input(errors, "nhs-number", "nhs_number", "NHS number", &form.nhs_number, "govuk-input--width-10", "off"))
                        button type="submit" class="govuk-button" { "Make the report" }
                    }
                }
            }
        },
    )
}

fn report_page(session: &Session, report: &SubjectReport, key: &crate::audit::KeySource) -> Markup {
    page(
        "Subject access report",
        Some(&Shell::at(session, PATH)),
        html! {
            h1 class="govuk-heading-l" { "Subject access report" }
            (key_warning(key))
            p class="govuk-body" id="report-subject" {
                "Accesses to the records of NHS number " strong { (report.nhs_number) }
                ", from the audit log up to checkpoint size " (report.tree_size) "."
            }
            (withheld_note(report.withheld))
            @if report.withheld > 0 {
                p class="govuk-body" { "A complete report for a person needs a federation auditor, or each record holder's auditor in turn." }
            }
            @if report.accesses.is_empty() {
                p class="govuk-body" id="no-accesses" { "No access to this person's records is in the entries you may read." }
            } @else {
                (scroll_table("Accesses to this person", html! { table class="govuk-table govuk-table--small-text-until-tablet" id="accesses" {
                    caption class="govuk-table__caption govuk-table__caption--m" { (report.accesses.len()) " accesses" }
                    thead class="govuk-table__head" {
                        tr class="govuk-table__row" {
                            th scope="col" class="govuk-table__header" { "When" }
                            th scope="col" class="govuk-table__header" { "Who" }
                            th scope="col" class="govuk-table__header" { "Why" }
                            th scope="col" class="govuk-table__header" { "Records and what was shown" }
                            th scope="col" class="govuk-table__header" { "Agreements" }
                        }
                    }
                    tbody class="govuk-table__body" {
                        @for a in &report.accesses {
                            tr class="govuk-table__row" {
                                td class="govuk-table__cell" { (a.at) br; "Entry " (a.index) }
                                td class="govuk-table__cell" {
                                    (a.user) @if !a.role.is_empty() { " (" (label(&a.role)) ")" } ", " (a.authority)
                                }
                                td class="govuk-table__cell" {
                                    (label(&a.purpose))
                                    @if a.break_glass { " " strong class="govuk-tag govuk-tag--red" { "Break glass" } }
                                }
                                td class="govuk-table__cell" {
                                    @if a.records.is_empty() { "None" }
                                    ul class="govuk-list" {
                                        @for r in &a.records { li { (r.custodian) "/" (r.record_id) ": " (label(&r.decision)) } }
                                    }
                                }
                                td class="govuk-table__cell" {
                                    @if a.agreements.is_empty() { "None" } @else { (a.agreements.join(", ")) }
                                }
                            }
                        }
                    }
                } }))
            }
            p class="govuk-body" { a class="govuk-link" href=(PATH) { "Report on another person" } }
        },
    )
}

/// `GET /audit/subject`.
pub async fn form(SignedIn(session): SignedIn) -> Response {
    if auditor(&session).is_none() {
        return refused();
    }
    respond(
        StatusCode::OK,
        form_page(&session, &SubjectForm::default(), &[]),
    )
}

/// `POST /audit/subject`.
pub async fn submit(State(state): State<ConsoleState>, posted: Posted<SubjectForm>) -> Response {
    let Posted { session, form } = posted;
    let Some(who) = auditor(&session) else {
        return refused();
    };
    let nhs = form.nhs_number.trim();
    if nhs.is_empty() {
        let e = [err("nhs-number", "Enter the person's NHS number")];
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            form_page(&session, &form, &e),
        );
    }
    if let Err(e) = nhs.parse::<kith_core::NhsNumber>() {
        let e = [err("nhs-number", format!("NHS number: {e}"))];
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            form_page(&session, &form, &e),
        );
    }
    match crate::audit::subject_report(&state.agent, who, nhs, None, &mut |_, _| {}).await {
        Ok((checkpoint, report)) => respond(
            StatusCode::OK,
            report_page(&session, &report, &checkpoint.key),
        ),
        Err(AuditError::Invalid(reason)) => {
            let e = [err("nhs-number", reason)];
            respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                form_page(&session, &form, &e),
            )
        }
        Err(e) => hub_problem(&session, "subject report", &e),
    }
}
