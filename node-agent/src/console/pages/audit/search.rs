//! `/audit/search`: the audit log entries the auditor may read, filtered by
//! user, subject, purpose, decision, kind and period, newest first, a page
//! of [`PAGE_SIZE`] at a time. The filters travel in the POST body (and as
//! hidden fields of the paging forms), never in the URL.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::filter::FilterForm;
use super::{auditor, hub_problem, key_warning, refused, withheld_note};
use crate::audit::search::{Hit, SearchResult};
use crate::console::ConsoleState;
use crate::console::pages::form::{FieldError, error_summary, label, scroll_table};
use crate::console::pages::{Shell, csrf_field, page, respond};
use crate::console::session::Session;
use crate::console::signed_in::{Posted, SignedIn};

/// Entries shown per page.
pub const PAGE_SIZE: usize = 50;

const PATH: &str = "/audit/search";

/// The search form: the filters and the page wanted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SearchForm {
    #[serde(flatten)]
    pub filter: FilterForm,
    /// 1-based.
    pub page: String,
}

fn form_page(session: &Session, form: &FilterForm, errors: &[FieldError]) -> Markup {
    page(
        if errors.is_empty() {
            "Search the audit log"
        } else {
            "Error: Search the audit log"
        },
        Some(&Shell::at(session, PATH)),
        html! {
            div class="govuk-grid-row" {
                div class="govuk-grid-column-two-thirds" {
                    (error_summary(errors))
                    h1 class="govuk-heading-l" { "Search the audit log" }
                    p class="govuk-body" { "Every search, disclosure, publish and refusal is in the log. Leave a field empty to match everything. You see the entries your role may read." }
                    form method="post" action=(PATH) novalidate {
                        (csrf_field(&session.csrf_token))
                        (form.fields(errors))
                        button type="submit" class="govuk-button" { "Search" }
                    }
                }
            }
        },
    )
}

fn who(h: &Hit) -> String {
    let e = &h.entry;
    match (&e.user, &e.role) {
        (Some(u), Some(r)) => format!("{u} ({}), {}", label(r), e.authority),
        (Some(u), None) => format!("{u}, {}", e.authority),
        _ => e.authority.clone(),
    }
}

fn records(h: &Hit) -> String {
    let list: Vec<String> = h
        .entry
        .records
        .iter()
        .map(|r| format!("{}/{}: {}", r.custodian, r.record_id, r.decision))
        .collect();
    if list.is_empty() {
        "None".into()
    } else {
        list.join("; ")
    }
}

fn paging(session: &Session, form: &FilterForm, page_no: usize, pages: usize) -> Markup {
    html! {
        @if pages > 1 {
            nav class="govuk-pagination" aria-label="Results pages" {
                @if page_no > 1 {
                    form method="post" action=(PATH) class="govuk-pagination__prev" {
                        (csrf_field(&session.csrf_token)) (form.hidden())
                        input type="hidden" name="page" value=(page_no - 1);
                        button type="submit" class="govuk-button govuk-button--secondary" { "Previous page" }
                    }
                }
                p class="govuk-body govuk-pagination__item" { "Page " (page_no) " of " (pages) }
                @if page_no < pages {
                    form method="post" action=(PATH) class="govuk-pagination__next" {
                        (csrf_field(&session.csrf_token)) (form.hidden())
                        input type="hidden" name="page" value=(page_no + 1);
                        button type="submit" class="govuk-button govuk-button--secondary" { "Next page" }
                    }
                }
            }
        }
    }
}

fn results_page(
    session: &Session,
    form: &FilterForm,
    result: &SearchResult,
    page_no: usize,
    key: &crate::audit::KeySource,
) -> Markup {
    let pages = result.hits.len().div_ceil(PAGE_SIZE).max(1);
    let page_no = page_no.clamp(1, pages);
    // Newest first.
    let shown: Vec<&Hit> = result
        .hits
        .iter()
        .rev()
        .skip((page_no - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    page(
        "Audit log search results",
        Some(&Shell::at(session, PATH)),
        html! {
            h1 class="govuk-heading-l" { "Audit log search results" }
            (key_warning(key))
            p class="govuk-body" id="hit-count" {
                (result.hits.len()) " matching of " (result.visible) " entries you may read, up to checkpoint size " (result.tree_size) "."
            }
            (withheld_note(result.withheld))
            @if shown.is_empty() {
                p class="govuk-body" id="no-hits" { "No entry matches." }
            } @else {
                (scroll_table("Audit entries", html! { table class="govuk-table govuk-table--small-text-until-tablet" id="hits" {
                    caption class="govuk-table__caption govuk-table__caption--m" { "Entries, newest first" }
                    thead class="govuk-table__head" {
                        tr class="govuk-table__row" {
                            th scope="col" class="govuk-table__header" { "Entry" }
                            th scope="col" class="govuk-table__header" { "When and what" }
                            th scope="col" class="govuk-table__header" { "Who" }
                            th scope="col" class="govuk-table__header" { "About" }
                            th scope="col" class="govuk-table__header" { "Outcome and records" }
                        }
                    }
                    tbody class="govuk-table__body" {
                        @for h in &shown {
                            tr class="govuk-table__row" {
                                th scope="row" class="govuk-table__header" { (h.index) }
                                td class="govuk-table__cell" {
                                    (h.entry.at) br; (label(h.entry.kind.as_str()))
                                    @if h.entry.is_break_glass() { " " strong class="govuk-tag govuk-tag--red" { "Break glass" } }
                                }
                                td class="govuk-table__cell" { (who(h)) }
                                td class="govuk-table__cell" {
                                    (h.entry.subject.as_deref().unwrap_or("-"))
                                    @if let Some(p) = &h.entry.purpose { br; (label(p)) }
                                }
                                td class="govuk-table__cell" {
                                    (label(&h.entry.outcome))
                                    @if !h.entry.reason.is_empty() { ": " (h.entry.reason) }
                                    br; (records(h))
                                }
                            }
                        }
                    }
                } }))
                (paging(session, form, page_no, pages))
            }
            form method="post" action="/audit/export" {
                (csrf_field(&session.csrf_token)) (form.hidden())
                input type="hidden" name="format" value="jsonl";
                button type="submit" class="govuk-button govuk-button--secondary" { "Export these as JSON Lines" }
            }
            p class="govuk-body" { a class="govuk-link" href=(PATH) { "Start a new search" } }
        },
    )
}

/// `GET /audit/search`.
pub async fn form(SignedIn(session): SignedIn) -> Response {
    if auditor(&session).is_none() {
        return refused();
    }
    respond(
        StatusCode::OK,
        form_page(&session, &FilterForm::default(), &[]),
    )
}

/// `POST /audit/search`.
pub async fn submit(State(state): State<ConsoleState>, posted: Posted<SearchForm>) -> Response {
    let Posted { session, form } = posted;
    let Some(who) = auditor(&session) else {
        return refused();
    };
    let filter = match form.filter.to_filter() {
        Ok(f) => f,
        Err(errors) => {
            return respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                form_page(&session, &form.filter, &errors),
            );
        }
    };
    let page_no = form.page.trim().parse::<usize>().unwrap_or(1);
    match crate::audit::search(&state.agent, who, &filter, None, &mut |_, _| {}).await {
        Ok((checkpoint, result)) => respond(
            StatusCode::OK,
            results_page(&session, &form.filter, &result, page_no, &checkpoint.key),
        ),
        Err(e) => hub_problem(&session, "audit search", &e),
    }
}
