//! Signing in through the authority's identity provider
//! ([`crate::console::oidc`]): `POST /oidc/start` sends the browser to the
//! provider; `GET /oidc/callback` takes it back, verifies what the
//! provider says and starts the session.
//!
//! The start is a link on the sign-in page. The browser binding cookie is
//! `SameSite=Lax`:
//! the provider sends the browser back from another site, and a `Strict`
//! cookie would not come with it. For the same reason the callback answers
//! with a page that moves on to the console by itself (a same-site
//! navigation, so the `Strict` session cookie is sent) rather than a
//! redirect. A user with no mapped role gets the refusal page naming the
//! claim; the agent's log gets the user id alone.

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{page, problem, respond};
use crate::console::ConsoleState;
use crate::console::oidc::{Missing, OidcError, Refusal};
use crate::console::session::random_token;
use crate::console::signed_in::cookie_value;

/// The cookie binding a sign-in under way to its browser.
pub fn binding_cookie_name(tls: bool) -> &'static str {
    if tls { "__Host-kith-oidc" } else { "kith-oidc" }
}

fn binding_cookie(state: &ConsoleState, value: &str, clear: bool) -> String {
    let mut c = cookie::Cookie::build((binding_cookie_name(state.tls), value.to_string()))
        .path("/")
        .http_only(true)
        .secure(state.tls)
        .same_site(cookie::SameSite::Lax);
    if clear {
        c = c.max_age(cookie::time::Duration::ZERO);
    }
    c.build().to_string()
}

fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "Your organisation's sign-in service cannot be reached",
        "The console could not reach the identity provider, so you cannot sign in with your \
         organisation's account just now. Try again in a few minutes, or sign in with a \
         local account if you have one. If this goes on, tell your system administrator.",
    )
}

/// `GET /oidc/start`: a link, not a form, because the console's
/// `form-action 'self'` would (rightly) stop a form's redirect to the
/// provider. Starting a sign-in needs no token: the state is bound to this
/// browser's cookie, so a sign-in started by another site can only ever
/// sign the user in as themselves.
pub async fn start(State(state): State<ConsoleState>) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return super::not_found().await;
    };
    let browser = random_token();
    match oidc.begin(&browser).await {
        Ok(url) => (
            [(header::SET_COOKIE, binding_cookie(&state, &browser, false))],
            Redirect::to(&url),
        )
            .into_response(),
        Err(OidcError::Busy) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins are under way",
            "Try again in a few minutes.",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "console OIDC sign-in cannot start");
            unavailable()
        }
    }
}

/// What the provider sends back (RFC 6749 4.1.2 and 4.1.2.1).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// RFC 9207: the issuer of the answer, when the provider says it.
    iss: Option<String>,
}

/// `GET /oidc/callback`.
pub async fn callback(
    State(state): State<ConsoleState>,
    Query(back): Query<Callback>,
    request: Request,
) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return super::not_found().await;
    };
    let (parts, _) = request.into_parts();
    let browser = cookie_value(&parts, binding_cookie_name(state.tls));
    let clear = binding_cookie(&state, "", true);
    let with_clear = |r: Response| ([(header::SET_COOKIE, clear.clone())], r).into_response();
    if let Some(error) = back.error {
        // Spend the pending entry: it cannot be finished now.
        if let Some(s) = &back.state {
            let _ = oidc.pending.take(s, browser.as_deref());
        }
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        tracing::info!(error = %code, "console OIDC sign-in: the provider did not sign the user in");
        return with_clear(problem(
            StatusCode::FORBIDDEN,
            "You were not signed in",
            &format!(
                "Your organisation's sign-in service did not sign you in (it said: {code}). \
                 Go to the start page to try again."
            ),
        ));
    }
    let (Some(code), Some(st)) = (back.code, back.state) else {
        return with_clear(problem(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not complete",
            "Go to the start page and sign in again.",
        ));
    };
    // RFC 9207: an answer from another issuer (a mix-up attack) is refused.
    if let Some(iss) = &back.iss
        && iss.trim_end_matches('/') != oidc.section().issuer.trim_end_matches('/')
    {
        let _ = oidc.pending.take(&st, browser.as_deref());
        tracing::warn!("console OIDC callback from another issuer refused");
        return with_clear(problem(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            "It did not come from your organisation's sign-in service. Go to the start page and sign in again.",
        ));
    }
    if code.len() > 4096 {
        return with_clear(problem(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            "Go to the start page and sign in again.",
        ));
    }
    let staff = match oidc.finish(&st, &code, browser.as_deref()).await {
        Ok(staff) => staff,
        Err(OidcError::Refused(refusal)) => {
            tracing::warn!(
                user = refusal.user_id().unwrap_or("(none)"),
                claim = refusal.claim(),
                "console OIDC sign-in refused: no Kith role"
            );
            return with_clear(refused(&refusal));
        }
        Err(OidcError::NotPending(why)) => {
            tracing::info!(reason = ?why, "console OIDC callback with no sign-in under way");
            let message = match why {
                Missing::Expired => {
                    "The sign-in took too long. Go to the start page and sign in again."
                }
                _ => {
                    "This sign-in was not started in this browser, or it was already used. \
                     Go to the start page and sign in again."
                }
            };
            return with_clear(problem(
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be finished",
                message,
            ));
        }
        Err(e @ OidcError::Discovery(_)) => {
            tracing::warn!(error = %e, "console OIDC sign-in cannot finish");
            return with_clear(unavailable());
        }
        Err(e) => {
            tracing::warn!(error = %e, "console OIDC sign-in failed");
            return with_clear(problem(
                StatusCode::FORBIDDEN,
                "You were not signed in",
                "Your organisation's sign-in service's answer could not be checked, so you \
                 were not signed in. Go to the start page to try again; if this goes on, tell \
                 your system administrator.",
            ));
        }
    };
    if state.roles.check(&staff.role).is_err() {
        tracing::warn!(user = %staff.user_id, "console OIDC sign-in refused: no Kith role");
        return with_clear(super::sign_in::no_role());
    }
    let cookies = match super::sign_in::start_session(&state, &staff).await {
        Ok(c) => c,
        Err(r) => return with_clear(r),
    };
    tracing::info!(user = %staff.user_id, role = %staff.role, via = "oidc", "console sign-in");
    // A page, not a redirect: the browser arrived from the provider's
    // site, so a redirect would still be cross-site and the `Strict`
    // session cookie would not be sent with it.
    let mut response = respond(
        StatusCode::OK,
        page(
            "Signed in",
            None,
            html! {
                meta http-equiv="refresh" content="0;url=/";
                h1 class="govuk-heading-l" { "You are signed in" }
                p class="govuk-body" {
                    a class="govuk-link" href="/" id="continue" { "Continue to the staff console" }
                }
            },
        ),
    );
    let h = response.headers_mut();
    for c in cookies.into_iter().chain([clear]) {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The refusal page for a verified user with no usable role: says which
/// claim, and whom to ask.
fn refused(refusal: &Refusal) -> Response {
    let claim = refusal.claim();
    let what = match refusal {
        Refusal::NoUserId { .. } => format!(
            "Your organisation's sign-in did not include your user ID (the \u{201c}{claim}\u{201d} claim)."
        ),
        Refusal::NoRoleClaim { .. } => format!(
            "Your organisation's sign-in did not include your role (the \u{201c}{claim}\u{201d} claim)."
        ),
        Refusal::NoMappedRole { .. } => format!(
            "None of the roles or groups in your organisation's sign-in (the \u{201c}{claim}\u{201d} \
             claim) is one that Kith is set up to accept."
        ),
        Refusal::SeveralRoles { .. } => format!(
            "The roles or groups in your organisation's sign-in (the \u{201c}{claim}\u{201d} claim) \
             give you more than one Kith role, and the console does not choose between them."
        ),
    };
    respond(
        StatusCode::FORBIDDEN,
        page(
            "You do not have a Kith role",
            None,
            html! {
                h1 class="govuk-heading-l" { "You do not have a Kith role" }
                p class="govuk-body" id="refusal-reason" { (what) }
                p class="govuk-body" {
                    "You cannot use this console until you have one. Contact your information \
                     governance lead or system administrator and ask for the Kith role your work needs."
                }
                p class="govuk-body" { a class="govuk-link" href="/sign-in" { "Go to the sign-in page" } }
            },
        ),
    )
}
