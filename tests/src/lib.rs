//! Helpers for the cross-process tests: a development PKI, a real hub on
//! port 0 over mutual TLS with its own database, agents configured against
//! it, and raw gRPC clients that speak to the hub exactly as an agent does.
//!
//! One concern a file: `members` (the federation), `store` (each test's
//! database), `dir` (`TestDir`: PKI, policies, configs, the hub), `clients`
//! (raw gRPC as an agent speaks it), `fixtures` (records, queries, drop
//! files), `observe` (audit entries, memory, waiting); and `fault_proxy`,
//! `process`, `tally` for the fault tests.
//!
//! In the manner of zero2prod's `tests/api/helpers.rs`: every test builds
//! its own federation in its own temporary folder, so tests run in parallel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kith_agent::config::AgentConfig;
use kith_core::AuthorityCode;
use kith_core::pki::{self, CertificateAuthority, PkiLayout, Validity};
use kith_core::tls::TlsFiles;
use kith_hub::config::HubConfig;
use kith_hub::directory::Member;
use kith_hub::server::RunningHub;
use kith_proto::v1 as pb;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};

pub use kith_proto::v1;

pub mod fault_proxy;
pub mod packaging;
pub mod process;
pub mod tally;

mod clients;
mod dir;
mod fixtures;
mod members;
mod observe;
mod store;

pub use clients::*;
pub use dir::*;
pub use fixtures::*;
pub use members::*;
pub use observe::*;
pub use store::*;
