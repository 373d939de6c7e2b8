//! Who is asking: the extractors every page uses.
//!
//! [`SignedIn`] finds the session from its cookie, or sends the browser to
//! the sign-in page. [`Posted`] is a signed-in POST whose form carried the
//! session's CSRF token, parsed into the page's form type; a POST without
//! the token gets the refusal page and does nothing.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::session::Session;
use super::{ConsoleState, MAX_FORM_BYTES, csrf, pages};

/// A request from a signed-in member of staff.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Session);

/// The value of the cookie `name` in the request, if any.
pub fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

impl<S> FromRequestParts<S> for SignedIn
where
    S: Send + Sync,
    ConsoleState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let state = ConsoleState::from_ref(state);
        let Some(id) = cookie_value(parts, state.sessions.cookie_name()) else {
            return Err(Redirect::to("/sign-in").into_response());
        };
        match state.sessions.find(&id).await {
            Ok(Some(session)) => Ok(SignedIn(session)),
            Ok(None) => Err((
                [(header::SET_COOKIE, state.sessions.clearing_cookie())],
                Redirect::to("/sign-in?expired=1"),
            )
                .into_response()),
            Err(e) => {
                tracing::error!(error = %e, "cannot read console sessions");
                Err(pages::problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sorry, there is a problem with the service",
                    "The console cannot read its sessions. Try again later.",
                ))
            }
        }
    }
}

/// A signed-in POST that carried its CSRF token, with its form.
#[derive(Debug)]
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

impl<S, T> FromRequest<S> for Posted<T>
where
    S: Send + Sync,
    ConsoleState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let SignedIn(session) = SignedIn::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let bytes = read_form(request).await?;
        if !csrf::matches(&session.csrf_token, csrf::posted_token(&bytes).as_deref()) {
            return Err(pages::csrf_refused());
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|_| {
            pages::problem(
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                "Go back and try again.",
            )
        })?;
        Ok(Posted { session, form })
    }
}

/// The body of a form POST, at most [`MAX_FORM_BYTES`].
pub async fn read_form(request: Request) -> Result<Bytes, Response> {
    axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            pages::problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form was too large",
                "Go back, shorten what you entered and try again.",
            )
        })
}
