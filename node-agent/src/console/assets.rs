//! The GOV.UK Frontend stylesheet and images, and the console's own small
//! stylesheet (`kith.css`), embedded in the binary
//! (`node-agent/assets/govuk-frontend/`, rebuilt by its `refresh.sh`), so a
//! fresh `cargo build` needs no npm and the console needs no network.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &[u8] = include_bytes!("../../assets/govuk-frontend/govuk-frontend.min.css");
const KITH_CSS: &[u8] = include_bytes!("../../assets/kith.css");
const CREST: &[u8] = include_bytes!("../../assets/govuk-frontend/images/govuk-crest.svg");
const FAVICON: &[u8] = include_bytes!("../../assets/govuk-frontend/images/favicon.ico");

/// The stylesheet's path, as pages link it.
pub const STYLESHEET: &str = "/assets/govuk-frontend.min.css";

/// The console's own few rules (`node-agent/assets/kith.css`).
pub const KITH_STYLESHEET: &str = "/assets/kith.css";

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// `GET /assets/{*path}`.
pub async fn serve(Path(path): Path<String>) -> Response {
    match path.as_str() {
        "govuk-frontend.min.css" => asset("text/css; charset=utf-8", CSS),
        "kith.css" => asset("text/css; charset=utf-8", KITH_CSS),
        "images/govuk-crest.svg" => asset("image/svg+xml", CREST),
        "images/favicon.ico" => asset("image/x-icon", FAVICON),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
