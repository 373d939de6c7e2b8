//! `kith-hub`: the central exchange.
//!
//! Layers, outside in: [`grpc`] (tonic adapters, identity from the client
//! certificate) → [`hub::Hub`] and its domain methods ([`publish`],
//! [`query`], [`disclosure`]) → [`store::Store`] (SQLite or PostgreSQL). Policy
//! decisions come from the Cedar set loaded by `kith-policy`; every act is
//! written to the audit log ([`audit`]) in the same transaction as its
//! effect, or before its answer.

pub mod accept;
pub mod audit;
pub mod audit_access;
pub mod audit_writer;
pub mod backup;
pub mod break_glass;
pub mod config;
pub mod data_location;
pub mod default_policies;
pub mod detail;
pub mod directives;
pub mod directory;
pub mod disclosure;
pub mod error;
pub mod grpc;
pub mod health;
pub mod hub;
pub mod metrics;
pub mod model;
pub mod notifier;
pub mod notify;
pub mod policy_reload;
pub mod publish;
pub mod query;
pub mod refusals;
pub mod retention;
pub mod server;
pub mod store;
pub mod subject;
pub mod subscription_notices;
pub mod subscriptions;
pub mod telemetry;
pub mod tls;
pub mod transparency;
