//! Fetching, live, the detail of a record held at its source.
//!
//! The domain asks through [`DetailSource`]; the gRPC layer answers it over
//! the custodian agent's outbound link (`grpc::link`). Every fetch is
//! bounded in time: an unreachable custodian yields a partial answer, never
//! a failed query.

use async_trait::async_trait;
use kith_core::{Purpose, Record};

use crate::directory::Member;
use kith_core::ActingUser;

/// One record's detail, wanted for a permitted query.
#[derive(Debug, Clone)]
pub struct DetailRequest {
    pub custodian: String,
    pub record_id: String,
    pub version: u64,
    /// The requesting authority, as the directory knows it.
    pub requester: Member,
    pub user: ActingUser,
    pub purpose: Purpose,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetailError {
    /// No link open, or no answer in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The custodian's agent declined, or sent something unusable.
    #[error("refused: {0}")]
    Refused(String),
}

#[async_trait]
pub trait DetailSource: Send + Sync + 'static {
    async fn fetch(&self, request: DetailRequest) -> Result<Record, DetailError>;
}
