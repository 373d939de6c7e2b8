//! `/audit/export`: the entries the auditor may read, downloaded as JSON
//! Lines (index, leaf hash, exact entry bytes) or as FHIR R4 `AuditEvent`
//! resources, one per line: the same lines `kith-agent audit export`
//! writes ([`crate::audit::export::write_lines`]). The filters are the
//! search's, posted; with none, the whole log up to the latest checkpoint
//! (in JSON Lines, withheld entries as their leaf hash alone, so the root
//! can be recomputed from the file).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::filter::FilterForm;
use super::{auditor, hub_problem, refused};
use crate::audit::export::write_lines;
use crate::audit::{ExportFormat, SearchFilter};
use crate::console::ConsoleState;
use crate::console::pages::form::{FieldError, err, error_summary, group_class, inline_error};
use crate::console::pages::{Shell, csrf_field, page, respond};
use crate::console::session::Session;
use crate::console::signed_in::{Posted, SignedIn};

const PATH: &str = "/audit/export";

/// The export form: the filters and the format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExportForm {
    #[serde(flatten)]
    pub filter: FilterForm,
    /// `jsonl` or `fhir`.
    pub format: String,
}

fn form_page(session: &Session, form: &ExportForm, errors: &[FieldError]) -> Markup {
    page(
        if errors.is_empty() {
            "Export the audit log"
        } else {
            "Error: Export the audit log"
        },
        Some(&Shell::at(session, PATH)),
        html! {
            div class="govuk-grid-row" {
                div class="govuk-grid-column-two-thirds" {
                    (error_summary(errors))
                    h1 class="govuk-heading-l" { "Export the audit log" }
                    p class="govuk-body" { "Download the entries you may read, for another tool. Leave the filters empty for the whole log." }
                    form method="post" action=(PATH) novalidate {
                        (csrf_field(&session.csrf_token))
                        div class=(group_class(errors, &["format"])) {
                            fieldset class="govuk-fieldset" {
                                legend class="govuk-fieldset__legend govuk-fieldset__legend--m" { "Format" }
                                (inline_error(errors, "format"))
                                div class="govuk-radios" {
                                    @for (id, value, text, hint) in [
                                        ("format", "jsonl", "JSON Lines", "Each entry's exact bytes and leaf hash: the log's root can be recomputed from them."),
                                        ("format-fhir", "fhir", "FHIR AuditEvent", "One FHIR R4 AuditEvent per entry, for audit repositories that speak FHIR."),
                                    ] {
                                        div class="govuk-radios__item" {
                                            input class="govuk-radios__input" id=(id) name="format" type="radio" value=(value)
                                                checked[form.format == value || (form.format.is_empty() && value == "jsonl")]
                                                aria-describedby={ (id) "-hint" };
                                            label class="govuk-label govuk-radios__label" for=(id) { (text) }
                                            div class="govuk-hint govuk-radios__hint" id={ (id) "-hint" } { (hint) }
                                        }
                                    }
                                }
                            }
                        }
                        h2 class="govuk-heading-m" { "Filters" }
                        (form.filter.fields(errors))
                        button type="submit" class="govuk-button" { "Download" }
                    }
                }
            }
        },
    )
}

/// `GET /audit/export`.
pub async fn form(SignedIn(session): SignedIn) -> Response {
    if auditor(&session).is_none() {
        return refused();
    }
    respond(
        StatusCode::OK,
        form_page(&session, &ExportForm::default(), &[]),
    )
}

/// `POST /audit/export`: the download.
pub async fn download(State(state): State<ConsoleState>, posted: Posted<ExportForm>) -> Response {
    let Posted { session, form } = posted;
    let Some(who) = auditor(&session) else {
        return refused();
    };
    let mut errors = Vec::new();
    let format = match form.format.trim() {
        "" => Some(ExportFormat::Jsonl),
        f => f.parse::<ExportFormat>().ok(),
    };
    if format.is_none() {
        errors.push(err("format", "Select JSON Lines or FHIR AuditEvent"));
    }
    let filter = form.filter.to_filter().map_err(|e| errors.extend(e)).ok();
    let (Some(format), Some(filter), true) = (format, filter, errors.is_empty()) else {
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            form_page(&session, &form, &errors),
        );
    };
    let (checkpoint, entries) =
        match crate::audit::client::read_log(&state.agent, who, None, &mut |_, _| {}).await {
            Ok(read) => read,
            Err(e) => return hub_problem(&session, "audit export", &e),
        };
    let filter = (filter != SearchFilter::default()).then_some(filter);
    let mut body = Vec::new();
    let (written, _) =
        write_lines(&entries, format, filter.as_ref(), &mut body).expect("writing to memory");
    tracing::info!(user = %session.staff.user_id, lines = written, "console audit export");
    let (content_type, ext) = match format {
        ExportFormat::Jsonl => ("application/x-ndjson", "jsonl"),
        ExportFormat::Fhir => ("application/fhir+ndjson", "fhir.ndjson"),
    };
    let disposition = format!(
        "attachment; filename=\"kith-audit-{}.{ext}\"",
        checkpoint.tree_size
    );
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("an ASCII header"),
            ),
        ],
        body,
    )
        .into_response()
}
