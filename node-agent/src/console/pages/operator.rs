//! `/operator`: the node operator's page (console-only role
//! [`OPERATOR_ROLE`](crate::console::roles::OPERATOR_ROLE)). What
//! `kith-agent status` shows ([`crate::status`]: outbox depth, last
//! delivery and last error, hub reachable and accepting this agent, the
//! link, certificate expiry), the drop folder's latest reports with their
//! refused lines ([`crate::drop_reports`]), and the notifications the hub
//! sent ([`crate::notifications`]). It reads only; nothing here changes
//! the agent.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::form::{label, scroll_table};
use super::{Shell, not_for_role, page, respond};
use crate::console::ConsoleState;
use crate::console::roles::{Duty, duty};
use crate::console::session::Session;
use crate::console::signed_in::SignedIn;
use crate::drop_reports::{REPORTS_SHOWN, RecentReports, ReportFile, recent_reports};
use crate::notifications::Notification;
use crate::status::Status;

const PATH: &str = "/operator";

/// How many notifications the page lists.
pub const NOTIFICATIONS_SHOWN: usize = 50;

/// Refused lines shown per report (the rest are counted).
pub const LINES_SHOWN: usize = 50;

/// The operator's routes.
pub fn routes() -> Router<ConsoleState> {
    Router::new().route(PATH, get(show))
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "Never".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn tag(ok: bool, yes: &str, no: &str) -> Markup {
    html! {
        @if ok { strong class="govuk-tag govuk-tag--green" { (yes) } }
        @else { strong class="govuk-tag govuk-tag--red" { (no) } }
    }
}

fn row(key: &str, value: Markup) -> Markup {
    html! {
        div class="govuk-summary-list__row" {
            dt class="govuk-summary-list__key" { (key) }
            dd class="govuk-summary-list__value" { (value) }
        }
    }
}

fn status_section(s: &Status) -> Markup {
    let o = &s.outbox;
    html! {
        h2 class="govuk-heading-m" { "Delivery and link" }
        p class="govuk-body" id="health" { (tag(s.is_healthy(), "Healthy", "Needs attention")) }
        dl class="govuk-summary-list" id="status" {
            (row("Authority", html! { (s.authority) }))
            (row("Certificate", html! {
                @match (&s.certificate_error, s.certificate_expires) {
                    (Some(e), _) => { (tag(false, "", "Unusable")) " " (e) },
                    (None, t) => { "Valid until " (when(t)) },
                }
                @for w in &s.certificate_warnings { br; strong { "Warning: " } (w) }
            }))
            (row("Hub", html! {
                @match (&s.hub_address, &s.hub_error) {
                    (Some(a), _) if s.authorised => { (tag(true, "Reachable", "")) " at " (a) },
                    (Some(a), _) => { (tag(false, "", "Not authorised")) " at " (a) ": " (s.authorisation_error.as_deref().unwrap_or("refused")) },
                    (None, e) => { (tag(false, "", "Unreachable")) @if let Some(e) = e { " " (e) } },
                }
            }))
            (row("Link", html! {
                @match &s.link {
                    Some((l, at)) if l.connected => {
                        (tag(true, "Open", "")) " to " (l.hub_address.as_deref().unwrap_or("the hub")) " since " (when(l.connected_since)) " (recorded " (when(Some(*at))) ")"
                    },
                    Some((l, at)) => {
                        (tag(false, "", "Down")) " (recorded " (when(Some(*at))) ")" @if let Some(e) = &l.last_error { ": " (e) }
                    },
                    None => "Never opened: the agent has not run with this database",
                }
            }))
            (row("Outbox", html! {
                span id="outbox-depth" { (o.pending) " pending" } ", " (o.delivered) " delivered, " (o.rejected) " rejected"
                @if let Some(e) = &s.outbox_error { br; (tag(false, "", "Not writable")) " " (e) }
            }))
            (row("Directives", html! { (o.directives.pending) " pending, " (o.directives.delivered) " delivered, " (o.directives.rejected) " rejected" }))
            (row("Last delivery", html! { (when(o.last_delivery_at)) }))
            (row("Last error", html! {
                @match &o.last_error { Some(e) => { (e) " (" (when(o.last_error_at)) ")" }, None => "None" }
                @if let Some(e) = &o.previous_error { br; "Earlier, cleared by a later delivery: " (e) " (" (when(o.previous_error_at)) ")" }
            }))
        }
        @if !s.rejected_directives.is_empty() {
            (scroll_table("Refused directives", html! { table class="govuk-table govuk-table--small-text-until-tablet" id="rejected-directives" {
                caption class="govuk-table__caption govuk-table__caption--s" { "Directives the hub refused, newest first" }
                thead class="govuk-table__head" { tr class="govuk-table__row" {
                    th scope="col" class="govuk-table__header" { "Directive" }
                    th scope="col" class="govuk-table__header" { "Record" }
                    th scope="col" class="govuk-table__header" { "When" }
                    th scope="col" class="govuk-table__header" { "Why" }
                } }
                tbody class="govuk-table__body" {
                    @for r in &s.rejected_directives { tr class="govuk-table__row" {
                        td class="govuk-table__cell" { (r.directive_id) " v" (r.version) }
                        td class="govuk-table__cell" { (r.record_id) }
                        td class="govuk-table__cell" { (when(r.rejected_at)) }
                        td class="govuk-table__cell" { (r.reason) }
                    } }
                }
            } }))
        }
    }
}

fn file_name(f: &ReportFile) -> String {
    f.path
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(crate::ingest::REPORT_SUFFIX)
                .to_string()
        })
        .unwrap_or_default()
}

fn reports_section(reports: &Result<RecentReports, String>) -> Markup {
    html! {
        h2 class="govuk-heading-m" { "Drop folder" }
        @match reports {
            Err(e) => p class="govuk-body" id="reports-unreadable" { "The drop folder's reports cannot be read: " (e) },
            Ok(r) if r.shown.is_empty() => p class="govuk-body" id="no-reports" { "No file has been taken from the drop folder yet." },
            Ok(r) => {
                p class="govuk-body" { "The latest " (r.shown.len()) " files taken, newest first." @if r.older > 0 { " " (r.older) " older reports are in the folder's done/." } }
                @for f in &r.shown {
                    div class="govuk-summary-card" {
                        div class="govuk-summary-card__title-wrapper" {
                            h3 class="govuk-summary-card__title" { (file_name(f)) }
                        }
                        div class="govuk-summary-card__content" {
                            @match &f.report {
                                Err(e) => p class="govuk-body" { (e) },
                                Ok(rep) => {
                                    dl class="govuk-summary-list" {
                                        (row("Taken", html! { (when(Some(rep.finished_at))) }))
                                        @if let Some(e) = &rep.file_error {
                                            (row("Result", html! { (tag(false, "", "Refused whole")) " " (e) }))
                                        } @else {
                                            (row("Result", html! {
                                                (tag(rep.rejected.is_empty(), "All lines taken", "Lines refused"))
                                                " " (rep.records_read) " read, " (rep.accepted) " accepted (" (rep.enqueued) " new, " (rep.duplicates) " already queued), " (rep.rejected.len()) " refused"
                                            }))
                                        }
                                    }
                                    @if !rep.rejected.is_empty() {
                                        (scroll_table("Refused lines", html! { table class="govuk-table govuk-table--small-text-until-tablet" {
                                            caption class="govuk-table__caption govuk-table__caption--s" { "Refused lines" }
                                            thead class="govuk-table__head" { tr class="govuk-table__row" {
                                                th scope="col" class="govuk-table__header" { "Line" }
                                                th scope="col" class="govuk-table__header" { "Record" }
                                                th scope="col" class="govuk-table__header" { "What is wrong" }
                                            } }
                                            tbody class="govuk-table__body" {
                                                @for l in rep.rejected.iter().take(LINES_SHOWN) { tr class="govuk-table__row" {
                                                    th scope="row" class="govuk-table__header" { (l.line) }
                                                    td class="govuk-table__cell" {
                                                        (l.record_id.as_deref().unwrap_or("Unknown"))
                                                        @if let Some(d) = &l.directive_id { " (directive " (d) ")" }
                                                    }
                                                    td class="govuk-table__cell" {
                                                        ul class="govuk-list" { @for e in &l.errors { li { (e.to_string()) } } }
                                                    }
                                                } }
                                            }
                                        } }))
                                        @if rep.rejected.len() > LINES_SHOWN {
                                            p class="govuk-body" { (rep.rejected.len() - LINES_SHOWN) " more refused lines are in the report on the agent's host." }
                                        }
                                    }
                                },
                            }
                        }
                    }
                }
            },
        }
    }
}

fn notifications_section(notifications: &Result<Vec<Notification>, String>) -> Markup {
    html! {
        h2 class="govuk-heading-m" { "Notifications received" }
        @match notifications {
            Err(e) => p class="govuk-body" { "The notifications cannot be read: " (e) },
            Ok(list) if list.is_empty() => p class="govuk-body" id="no-notifications" { "The hub has sent no notifications." },
            Ok(list) => {
                (scroll_table("Notifications", html! { table class="govuk-table govuk-table--small-text-until-tablet" id="notifications" {
                    caption class="govuk-table__caption govuk-table__caption--s" { "The latest " (list.len()) ", newest first" }
                    thead class="govuk-table__head" { tr class="govuk-table__row" {
                        th scope="col" class="govuk-table__header" { "When" }
                        th scope="col" class="govuk-table__header" { "Kind" }
                        th scope="col" class="govuk-table__header" { "What happened" }
                    } }
                    tbody class="govuk-table__body" {
                        @for n in list { tr class="govuk-table__row" {
                            td class="govuk-table__cell" { (n.occurred_at) }
                            td class="govuk-table__cell" { (label(n.kind.as_str())) }
                            td class="govuk-table__cell" { (n.sentence()) }
                        } }
                    }
                } }))
            },
        }
    }
}

fn operator_page(
    session: &Session,
    status: &Result<Status, String>,
    reports: &Result<RecentReports, String>,
    notifications: &Result<Vec<Notification>, String>,
) -> Markup {
    page(
        "Agent status",
        Some(&Shell::at(session, PATH)),
        html! {
            h1 class="govuk-heading-l" { "Agent status" }
            @match status {
                Ok(s) => (status_section(s)),
                Err(e) => p class="govuk-body" id="status-unreadable" { "The agent's status cannot be read: " (e) },
            }
            (reports_section(reports))
            (notifications_section(notifications))
        },
    )
}

/// `GET /operator`.
pub async fn show(State(state): State<ConsoleState>, SignedIn(session): SignedIn) -> Response {
    if duty(&session.staff.role) != Duty::Operate {
        return not_for_role("The agent status page is for the node's operators.");
    }
    let status = crate::status::status_of(&state.agent, &state.outbox)
        .await
        .map_err(|e| e.to_string());
    let drop_dir = state.agent.drop_dir.clone();
    let reports = tokio::task::spawn_blocking(move || recent_reports(&drop_dir, REPORTS_SHOWN))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let notifications = crate::notifications::NotificationStore::new(&state.outbox)
        .list(None, NOTIFICATIONS_SHOWN)
        .await
        .map_err(|e| e.to_string());
    respond(
        StatusCode::OK,
        operator_page(&session, &status, &reports, &notifications),
    )
}
