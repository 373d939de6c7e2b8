//! The gRPC face of the hub: thin adapters from `kith.v1` services to
//! [`crate::hub::Hub`] methods.
//!
//! Each adapter does three things only: find the caller in the client
//! certificate, convert the wire request into domain types (collecting
//! field errors), and convert the domain answer back. Decisions are made in
//! the domain.

pub mod audit;
pub mod guard;
pub mod health;
pub mod link;
pub mod query;
pub mod records;
pub mod subscriptions;

use kith_core::AuthorityCode;
use tonic::{Code, Request, Status};

use crate::error::HubError;
use crate::hub::{Caller, Hub};

/// Reads the calling authority from the request's client certificate and
/// checks it is a federation member.
pub async fn caller<T>(hub: &Hub, request: &Request<T>) -> Result<Caller, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let authority = AuthorityCode::from_certificate(leaf.as_ref())
        .map_err(|e| Status::unauthenticated(e.to_string()))?;
    hub.authenticate(authority).await.map_err(to_status)
}

/// Maps a domain error to a gRPC status. Field errors travel in the message
/// as `field: reason; field: reason`.
pub fn to_status(error: HubError) -> Status {
    let code = match &error {
        HubError::InvalidArgument(_) => Code::InvalidArgument,
        HubError::PermissionDenied(_) => Code::PermissionDenied,
        HubError::NotFound(_) => Code::NotFound,
        HubError::AlreadyExists(_) => Code::AlreadyExists,
        HubError::Unavailable(_) => Code::Unavailable,
    };
    let message = match error {
        HubError::InvalidArgument(errors) | HubError::AlreadyExists(errors) => {
            kith_core::error::join(&errors)
        }
        HubError::PermissionDenied(m) | HubError::NotFound(m) | HubError::Unavailable(m) => m,
    };
    Status::new(code, bounded_message(message))
}

/// Most bytes of a status message. It travels in the `grpc-message`
/// trailer, percent-encoded (up to three bytes a byte), and a trailer past
/// the peer's header-list limit turns a readable `INVALID_ARGUMENT` into
/// an opaque `RESOURCE_EXHAUSTED` or a reset.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 2048;

/// `message`, cut at a character boundary to [`MAX_STATUS_MESSAGE_BYTES`].
fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_STATUS_MESSAGE_BYTES {
        let mut end = MAX_STATUS_MESSAGE_BYTES - "… (cut)".len();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (cut)");
    }
    message
}
