//! Security headers on every console response.
//!
//! A Content-Security-Policy that allows only the console's own styles and
//! images and no script at all (so no `unsafe-inline`, and an injected
//! `<script>` could not run even if escaping failed), `frame-ancestors
//! 'none'` against clickjacking, HSTS over TLS, `nosniff`, no referrer, and
//! `Cache-Control: no-store` on pages (they carry personal data; the
//! embedded assets alone may be cached).

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The policy. No `script-src`: `default-src 'none'` covers it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// HSTS for a year (sent only over HTTPS).
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Adds the headers; `tls` is whether the console serves HTTPS.
pub async fn security_headers(State(tls): State<bool>, request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if tls {
        set(header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY);
    }
    if !is_asset {
        set(header::CACHE_CONTROL, "no-store");
    }
    response
}
