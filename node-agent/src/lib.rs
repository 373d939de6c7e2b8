//! `kith-agent`, the Kith node agent.
//!
//! Each authority runs one. It takes relationship records from the
//! authority's source systems (files dropped in a folder), keeps them in a
//! durable outbox, and publishes them to the hub over mutual TLS; it keeps an
//! outbound link open so the hub can reach it; and it carries the case
//! worker's queries and the auditor's commands. It only ever dials out.
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | the TOML configuration |
//! | [`outbox`] | the durable SQLite outbox |
//! | [`csv_format`] | the flat CSV source format |
//! | [`ingest`] | source files in the drop folder → outbox |
//! | [`drop_reports`] | the drop folder's reports, read back for the operator |
//! | [`backoff`] | retry delays |
//! | [`hub_client`] | mutual TLS channels and failover between hub addresses |
//! | [`tls`] | client TLS: checked files, reloaded configuration, the connector |
//! | [`publisher`] | outbox → hub `PublishRecords`, then `PublishDirectives` |
//! | [`link`] | the long-lived `OpenLink` stream |
//! | [`detail`] | answering the hub's detail requests, with the agent's own policy copy and directives |
//! | [`notifications`] | the hub's notifications as stored and shown |
//! | [`notify`] | storing notifications, then the file and webhook sinks, with retries |
//! | [`webhook`] | the loopback notification webhook (plain HTTP POST) |
//! | [`agent`] | the three tasks together, started and stopped as one |
//! | [`query`] | the case worker's query |
//! | [`console`] | the staff console: web pages, sign-in, sessions |
//! | [`lifecycle`] | `record end` and `record withdraw` |
//! | [`table`] | plain-text tables for command output |
//! | [`audit`] | the auditor's commands: checkpoint, verify, export, search, subject report |
//! | [`status`] | the operator's health check |
//! | [`logging`] | log output |
//! | [`metrics`] | the Prometheus metrics, named in one place |

pub mod agent;
pub mod audit;
pub mod backoff;
pub mod backup;
pub mod config;
pub mod console;
pub mod csv_format;
pub mod detail;
pub mod drop_reports;
pub mod hub_client;
pub mod ingest;
pub mod ingest_subscriptions;
pub mod lifecycle;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod notifications;
pub mod notify;
pub mod outbox;
pub mod publisher;
pub mod query;
pub mod status;
pub mod subscriptions;
pub mod table;
pub mod terminal;
pub mod tls;
pub mod webhook;

pub use agent::{Agent, AgentError, RunningAgent};
pub use config::{AgentConfig, ConfigError};
pub use ingest::{IngestReport, ingest_file};
pub use link::LinkState;
pub use outbox::{Outbox, OutboxStats};
pub use query::{QueryArgs, QueryResponse, query};
pub use status::{Status, status};
