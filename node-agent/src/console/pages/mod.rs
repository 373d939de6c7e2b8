//! The console's pages, rendered on the server with maud (every value
//! escaped unless marked otherwise; nothing here marks any) in GOV.UK
//! Frontend markup.
//!
//! | file | pages |
//! |---|---|
//! | `mod.rs` | the page shell, home, not found, problems, the CSRF refusal |
//! | `sign_in.rs` | sign-in, sign-out |
//! | `oidc.rs` | sign-in through the identity provider: start, callback, refusals |
//! | `search.rs` | the case worker's search, results, possible matches, break glass |
//! | `subscriptions.rs` | the case worker's subscriptions: list, subscribe, unsubscribe |
//! | `form.rs` | form components shared by the pages |
//! | `nav.rs` | the navigation: the pages a role may use |
//! | `audit/` | the auditor's pages (one file each) |
//! | `operator.rs` | the node operator's page |

pub mod audit;
pub mod form;
pub mod nav;
pub mod oidc;
pub mod operator;
pub mod search;
pub mod sign_in;
pub mod subscriptions;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use super::accounts::StaffIdentity;
use super::assets::{KITH_STYLESHEET, STYLESHEET};
use super::roles::duty;
use super::session::Session;
use super::signed_in::SignedIn;

/// Who is signed in, for the page shell.
pub struct Shell<'a> {
    pub staff: &'a StaffIdentity,
    pub csrf: &'a str,
    /// The path of the page shown, marked in the navigation.
    pub current: Option<&'static str>,
}

impl<'a> From<&'a Session> for Shell<'a> {
    fn from(s: &'a Session) -> Self {
        Shell {
            staff: &s.staff,
            csrf: &s.csrf_token,
            current: None,
        }
    }
}

impl<'a> Shell<'a> {
    /// The shell for the page at `path`.
    pub fn at(s: &'a Session, path: &'static str) -> Self {
        Shell {
            current: Some(path),
            ..Shell::from(s)
        }
    }
}

/// The routes of the auditor's, operator's and subscriptions pages, merged into the
/// console's router.
pub fn staff_routes() -> axum::Router<super::ConsoleState> {
    audit::routes()
        .merge(operator::routes())
        .merge(subscriptions::routes())
}

/// The refusal for a signed-in member of staff whose role does not use
/// the page.
pub fn not_for_role(what: &str) -> Response {
    problem(
        StatusCode::FORBIDDEN,
        "You cannot use this page",
        &format!(
            "{what} Your role does not give you this page. Use the links at the top of the page."
        ),
    )
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(super::csrf::FIELD) value=(token); }
}

/// The GOV.UK page shell around `main`.
pub fn page(title: &str, shell: Option<&Shell<'_>>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" class="govuk-template govuk-template--rebranded" {
            head {
                meta charset="utf-8";
                title { (title) " – Kith staff console" }
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" href="/assets/images/favicon.ico";
                link rel="stylesheet" href=(STYLESHEET);
                link rel="stylesheet" href=(KITH_STYLESHEET);
            }
            body class="govuk-template__body" {
                a href="#main-content" class="govuk-skip-link" { "Skip to main content" }
                header class="govuk-header" {
                    div class="govuk-header__container govuk-width-container" {
                        div class="govuk-header__logo" {
                            // GOV.UK Frontend 6's class names (the v5 ones left the
                            // name in the browser's link blue on the blue header:
                            // axe-core's colour-contrast rule found it).
                            a href="/" class="govuk-header__homepage-link" {
                                span class="govuk-header__product-name" { "Kith" }
                            }
                        }
                    }
                }
                @if let Some(shell) = shell {
                    section class="govuk-service-navigation" aria-label="Service menu" {
                        div class="govuk-width-container" {
                            div class="govuk-service-navigation__container" {
                                span class="govuk-service-navigation__service-name" {
                                    a href="/" class="govuk-service-navigation__link" { "Staff console" }
                                }
                                nav aria-label="Menu" class="govuk-service-navigation__wrapper" {
                                    (nav::menu(&shell.staff.role, shell.current))
                                }
                            }
                        }
                    }
                }
                div class="govuk-width-container" {
                    @if let Some(shell) = shell {
                        div class="govuk-grid-row govuk-!-margin-top-3" {
                            div class="govuk-grid-column-two-thirds" {
                                p class="govuk-body-s" id="signed-in-as" {
                                    "Signed in as " strong { (shell.staff.display_name) }
                                    " (" (shell.staff.user_id) "), " (shell.staff.role.replace('_', " "))
                                    @if !shell.staff.team.is_empty() { ", " (shell.staff.team) }
                                }
                            }
                            div class="govuk-grid-column-one-third" {
                                form method="post" action="/sign-out" {
                                    (csrf_field(shell.csrf))
                                    button type="submit" class="govuk-button govuk-button--secondary govuk-!-margin-bottom-0" data-module="govuk-button" { "Sign out" }
                                }
                            }
                        }
                    }
                    main class="govuk-main-wrapper" id="main-content" {
                        (main)
                    }
                }
                footer class="govuk-footer" {
                    div class="govuk-width-container" {
                        p class="govuk-body-s" {
                            "Every search is recorded in the Kith audit log with your name, role and purpose."
                        }
                    }
                }
            }
        }
    }
}

/// An HTML response with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A page saying what went wrong, with no personal data.
pub fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    respond(
        status,
        page(
            title,
            None,
            html! {
                h1 class="govuk-heading-l" { (title) }
                p class="govuk-body" { (message) }
                p class="govuk-body" { a class="govuk-link" href="/" { "Go to the start page" } }
            },
        ),
    )
}

/// The refusal of a POST whose form did not carry the session's token.
pub fn csrf_refused() -> Response {
    problem(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form was not sent from this console, or your session changed since it was shown. \
         Nothing was done. Go back, reload the page and try again.",
    )
}

/// `/`: each role's start page (the first of its pages).
pub async fn home(SignedIn(session): SignedIn) -> Response {
    let first = nav::links(duty(&session.staff.role))
        .first()
        .map_or("/sign-in", |(path, _)| path);
    Redirect::to(first).into_response()
}

/// Any other path.
pub async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Page not found",
        "If you typed the web address, check it is correct.",
    )
}
