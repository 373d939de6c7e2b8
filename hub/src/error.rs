//! The hub's domain errors. The gRPC layer maps each to a status code; the
//! domain never sees one.

use kith_core::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The request is malformed; each entry names a field.
    #[error("invalid request: {}", kith_core::error::join(.0))]
    InvalidArgument(Vec<FieldError>),
    /// The caller may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The same thing is already held (a duplicate subscription); each
    /// entry names a field.
    #[error("already exists: {}", kith_core::error::join(.0))]
    AlreadyExists(Vec<FieldError>),
    /// The hub cannot do its work safely right now (for example the store
    /// or the audit log cannot be written): fail closed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::store::StoreError> for HubError {
    fn from(e: crate::store::StoreError) -> Self {
        crate::metrics::store_error();
        tracing::error!(error = %e, "store failure");
        HubError::Unavailable("the hub's store is unavailable".to_string())
    }
}
