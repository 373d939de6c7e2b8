//! Signing in with a local account, and signing out.
//!
//! The sign-in form's CSRF token is a double-submit cookie (there is no
//! session yet). Failed attempts are counted per account and per address
//! ([`crate::console::throttle`]); a locked account or address is refused
//! without its password being checked. An account whose role is not a Kith
//! role code gets a refusal page, not a session. Sign-in and sign-out are
//! logged with the user id only.

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{csrf_field, page, problem, respond};
use crate::console::server::Peer;
use crate::console::session::random_token;
use crate::console::signed_in::{Posted, cookie_value, read_form};
use crate::console::{ConsoleState, csrf};

#[derive(Debug, Default, Deserialize)]
pub struct Shown {
    #[serde(default)]
    expired: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct SignInForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    password: String,
}

fn pre_cookie(state: &ConsoleState, token: &str) -> String {
    cookie::Cookie::build((csrf::pre_cookie_name(state.tls), token.to_string()))
        .path("/")
        .http_only(true)
        .secure(state.tls)
        .same_site(cookie::SameSite::Strict)
        .build()
        .to_string()
}

pub(crate) fn render(
    state: &ConsoleState,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    user_id: &str,
) -> Response {
    let token = random_token();
    let body = page(
        "Sign in",
        None,
        html! {
            div class="govuk-grid-row" {
                div class="govuk-grid-column-two-thirds" {
                    @if let Some(error) = error {
                        div class="govuk-error-summary" data-module="govuk-error-summary" {
                            div role="alert" {
                                h2 class="govuk-error-summary__title" { "There is a problem" }
                                div class="govuk-error-summary__body" {
                                    ul class="govuk-list govuk-error-summary__list" {
                                        li { a href="#user-id" { (error) } }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(notice) = notice {
                        div class="govuk-inset-text" id="notice" { (notice) }
                    }
                    h1 class="govuk-heading-l" { "Sign in to the " (state.agent.authority) " staff console" }
                    form method="post" action="/sign-in" novalidate {
                        (csrf_field(&token))
                        div class="govuk-form-group" {
                            label class="govuk-label" for="user-id" { "User ID" }
                            input class="govuk-input govuk-!-width-two-thirds" id="user-id" name="user_id"
                                type="text" autocomplete="username" spellcheck="false" value=(user_id);
                        }
                        div class="govuk-form-group" {
                            label class="govuk-label" for="password" { "Password" }
                            input class="govuk-input govuk-!-width-two-thirds" id="password" name="password"
                                type="password" autocomplete="current-password";
                        }
                        button type="submit" class="govuk-button" { "Sign in" }
                    }
                    @if let Some(oidc) = &state.oidc {
                        h2 class="govuk-heading-m" { "Or sign in with " (oidc.section().label) }
                        a href="/oidc/start" role="button" draggable="false" id="oidc-sign-in"
                            class="govuk-button govuk-button--secondary" data-module="govuk-button" {
                            "Sign in with " (oidc.section().label)
                        }
                    }
                }
            }
        },
    );
    let mut response = respond(status, body);
    if let Ok(v) = pre_cookie(state, &token).parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `GET /sign-in`.
pub async fn form(State(state): State<ConsoleState>, Query(shown): Query<Shown>) -> Response {
    let notice = if shown.expired.is_some() {
        Some(format!(
            "You were signed out because your session ended (after {} minutes without use, or at its time limit). Sign in again to continue.",
            state.sessions_idle_minutes()
        ))
    } else if shown.signed_out.is_some() {
        Some("You have signed out.".to_string())
    } else {
        None
    };
    render(&state, StatusCode::OK, notice.as_deref(), None, "")
}

/// `POST /sign-in`.
pub async fn submit(
    State(state): State<ConsoleState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let expected = cookie_value(&parts, csrf::pre_cookie_name(state.tls)).unwrap_or_default();
    let bytes = match read_form(Request::from_parts(parts, body)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !csrf::matches(&expected, csrf::posted_token(&bytes).as_deref()) {
        return super::csrf_refused();
    }
    let form: SignInForm = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let user_id = form.user_id.trim();
    if user_id.is_empty() || form.password.is_empty() || user_id.chars().count() > 64 {
        return render(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Enter your user ID and password"),
            "",
        );
    }
    let ip = peer.ip();
    if let Some(wait) = state.throttle.blocked(user_id, ip) {
        tracing::warn!(user = user_id, "console sign-in refused: too many failures");
        let minutes = wait.as_secs().div_ceil(60);
        return render(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            None,
            Some(&format!(
                "Too many failed sign-ins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
            "",
        );
    }
    let staff = match state.accounts.verify(user_id, &form.password).await {
        Ok(Some(staff)) => staff,
        Ok(None) => {
            state.throttle.failed(user_id, ip);
            tracing::info!(user = user_id, "console sign-in failed");
            return render(
                &state,
                StatusCode::UNAUTHORIZED,
                None,
                Some("The user ID or password is not right"),
                user_id,
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot check a console sign-in");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sorry, there is a problem with the service",
                "Sign-in is not working. Try again later.",
            );
        }
    };
    state.throttle.succeeded(user_id);
    if let Err(reason) = state.roles.check(&staff.role) {
        tracing::warn!(user = user_id, "console sign-in refused: no Kith role");
        let _ = reason;
        return no_role();
    }
    match start_session(&state, &staff).await {
        Ok(cookies) => {
            tracing::info!(user = user_id, role = %staff.role, "console sign-in");
            let mut response = Redirect::to("/").into_response();
            let h = response.headers_mut();
            for c in cookies {
                if let Ok(v) = c.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(response) => response,
    }
}

/// Starts a session for `staff`: the `Set-Cookie` values to send (the
/// session cookie, and the spent sign-in token's clearing), or the problem
/// page.
pub(crate) async fn start_session(
    state: &ConsoleState,
    staff: &crate::console::StaffIdentity,
) -> Result<Vec<String>, Response> {
    match state.sessions.create(staff).await {
        Ok(id) => Ok(vec![
            state.sessions.cookie(&id),
            // The sign-in form's token is spent.
            cookie::Cookie::build((csrf::pre_cookie_name(state.tls), ""))
                .path("/")
                .http_only(true)
                .secure(state.tls)
                .same_site(cookie::SameSite::Strict)
                .max_age(cookie::time::Duration::ZERO)
                .build()
                .to_string(),
        ]),
        Err(e) => {
            tracing::error!(error = %e, "cannot store a console session");
            Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sorry, there is a problem with the service",
                "Sign-in is not working. Try again later.",
            ))
        }
    }
}

/// The refusal for someone signed in whose role maps to no Kith role.
pub fn no_role() -> Response {
    problem(
        StatusCode::FORBIDDEN,
        "You do not have a Kith role",
        "Your account is not given any of the roles Kith knows (for example social worker, \
         ED clinician or auditor), so you cannot use this console. Ask your information \
         governance lead or system administrator to give you the right role.",
    )
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// `POST /sign-out`.
pub async fn sign_out(State(state): State<ConsoleState>, posted: Posted<Nothing>) -> Response {
    if let Err(e) = state.sessions.end(&posted.session).await {
        tracing::error!(error = %e, "cannot end a console session");
    }
    tracing::info!(user = %posted.session.staff.user_id, "console sign-out");
    (
        [(header::SET_COOKIE, state.sessions.clearing_cookie())],
        Redirect::to("/sign-in?signed_out=1"),
    )
        .into_response()
}
