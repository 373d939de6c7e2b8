//! The auditor's commands: read the hub's verifiable audit log and prove it.
//!
//! The hub keeps every publish, change, query, refusal and audit read as an
//! entry in an append-only RFC 9162 Merkle tree and signs C2SP checkpoints of
//! it with Ed25519. These modules let a Data Protection Officer, Caldicott
//! Guardian or federation auditor, through their own authority's agent:
//!
//! | module | concept | command |
//! |---|---|---|
//! | [`client`] | the `AuditService` calls, always as a named auditor | |
//! | [`trust`] | which log key to trust; checking a signed checkpoint | `audit checkpoint` |
//! | [`entry`] | one log entry: index, leaf hash, exact bytes, parsed view | |
//! | [`state`] | the checkpoint saved by the last successful verify | |
//! | [`verify`] | signature, leaf hashes, root, consistency | `audit verify` |
//! | [`export`] | JSON Lines with the exact leaf bytes | `audit export` |
//! | [`fhir`] | FHIR R4 `AuditEvent` | `audit export --format fhir` |
//! | [`search`] | filters over the entries the auditor may read | `audit search` |
//! | [`subject_report`] | who looked a person up, why, and what they saw | `audit subject-report` |
//! | [`break_glass`] | break-glass accesses awaiting review, and reviewing one | `audit break-glass [review]` |
//!
//! Every call names the acting auditor (`--as USER --role ROLE`). The hub's
//! policy decides what they may read: an `auditor` reads the entries about
//! its own authority, a `federation_auditor` at the federation's oversight
//! body reads all, anyone else is refused (`PermissionDenied`, with the
//! reason). Entries outside the auditor's scope still arrive as their leaf
//! hash alone, so every auditor can recompute every root.

pub mod break_glass;
pub mod client;
pub mod entry;
pub mod export;
pub mod fhir;
pub mod search;
pub mod state;
pub mod subject_report;
pub mod trust;
pub mod verify;

use std::path::PathBuf;

use kith_proto::v1 as pb;

pub use client::AuditClient;
pub use entry::{AuditEntry, AuditKind, LogEntry};
pub use export::{ExportFormat, ExportOptions, ExportSummary, export};
pub use search::{SearchFilter, search};
pub use state::SavedCheckpoint;
pub use subject_report::{SubjectReport, subject_report};
pub use trust::{KeySource, VerifiedCheckpoint, checkpoint};
pub use verify::{Problem, VerifyOptions, VerifyReport, verify};

use crate::hub_client::HubError;

/// The member of staff doing the audit, as their authority asserts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auditor {
    pub user_id: String,
    /// `auditor` or `federation_auditor`; the hub's policy decides.
    pub role: String,
    pub display_name: String,
    pub team: String,
}

impl Auditor {
    /// An auditor with just a user id and a role.
    pub fn new(user_id: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            role: role.into(),
            display_name: String::new(),
            team: String::new(),
        }
    }

    /// Checks both are given, before any call.
    pub fn check(&self) -> Result<(), AuditError> {
        if self.user_id.trim().is_empty() {
            return Err(AuditError::Invalid(
                "the acting auditor (--as USER) is required".into(),
            ));
        }
        if self.role.trim().is_empty() {
            return Err(AuditError::Invalid(
                "the acting auditor's role (--role auditor|federation_auditor) is required".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn to_wire(&self) -> pb::ActingUser {
        pb::ActingUser {
            user_id: self.user_id.trim().to_string(),
            display_name: self.display_name.trim().to_string(),
            role: self.role.trim().to_string(),
            team: self.team.trim().to_string(),
        }
    }
}

/// Why an audit command could not run. A log that fails verification is
/// not an error here: it is a [`VerifyReport`] with problems.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("the hub at {address} refused {call}: {code:?}: {message}")]
    Refused {
        address: String,
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error(
        "the answer of the hub at {address} to {call} is larger than this agent accepts ({limit} bytes): \
         this agent's own limit, not a refusal by the hub ({detail})"
    )]
    TooLarge {
        address: String,
        call: &'static str,
        limit: usize,
        detail: String,
    },
    #[error("the hub at {address} answered {call} with something malformed: {reason}")]
    Malformed {
        address: String,
        call: &'static str,
        reason: String,
    },
    #[error("the log key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the checkpoint's signature does not verify: {0}")]
    Signature(String),
    #[error("the saved checkpoint {path}: {reason}")]
    State { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AuditError {
    /// The gRPC code the hub answered with, when it refused a call.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            AuditError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}
