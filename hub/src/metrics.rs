//! Every metric the hub exports, named in one place, in Prometheus naming:
//! a `kith_hub_` prefix, base units, `_total` counters, `_seconds`
//! histograms. [`describe`] gives each its HELP and TYPE lines; the
//! recording functions are called where the thing happens (the query
//! pipeline, publish, the audit writer, the links, live fetches, policy
//! reloads, the store). Labels carry only closed vocabularies (outcomes,
//! levels, purposes) and authority codes: never a person, a user or free
//! text. The gauges read from state (links, checkpoint age, certificate
//! expiry) are set by [`refresh`] just before each scrape.

use std::sync::Arc;
use std::time::Duration;

use kith_ops::CertificateExpiry;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};

use crate::grpc::link::Links;
use crate::transparency::TransparencyLog;

pub const QUERIES: &str = "kith_hub_queries_total";
pub const QUERY_DURATION: &str = "kith_hub_query_duration_seconds";
pub const DECISIONS: &str = "kith_hub_decisions_total";
pub const PUBLISHED_RECORDS: &str = "kith_hub_published_records_total";
pub const AUDIT_APPEND_DURATION: &str = "kith_hub_audit_append_duration_seconds";
pub const AUDIT_BATCH_ENTRIES: &str = "kith_hub_audit_batch_entries";
pub const CHECKPOINT_AGE: &str = "kith_hub_checkpoint_age_seconds";
pub const CHECKPOINT_TREE_SIZE: &str = "kith_hub_checkpoint_tree_size";
pub const SEQUENCING_FAILURES: &str = "kith_hub_sequencing_failures_total";
pub const AGENT_LINKS: &str = "kith_hub_agent_links";
pub const LIVE_FETCH_DURATION: &str = "kith_hub_live_fetch_duration_seconds";
pub const LIVE_FETCH_FAILURES: &str = "kith_hub_live_fetch_failures_total";
pub const POLICY_RELOADS: &str = "kith_hub_policy_reloads_total";
pub const STORE_ERRORS: &str = "kith_hub_store_errors_total";

/// Every name above (the dashboard and alert rules may use only these and
/// [`kith_ops::certificates::EXPIRY_GAUGE`]).
pub const NAMES: &[&str] = &[
    QUERIES,
    QUERY_DURATION,
    DECISIONS,
    PUBLISHED_RECORDS,
    AUDIT_APPEND_DURATION,
    AUDIT_BATCH_ENTRIES,
    CHECKPOINT_AGE,
    CHECKPOINT_TREE_SIZE,
    SEQUENCING_FAILURES,
    AGENT_LINKS,
    LIVE_FETCH_DURATION,
    LIVE_FETCH_FAILURES,
    POLICY_RELOADS,
    STORE_ERRORS,
];

/// HELP and TYPE for every hub metric. Call once the recorder is installed.
pub fn describe() {
    describe_counter!(
        QUERIES,
        "Queries answered or refused, by outcome (ok, partial, invalid, denied, not_found, unavailable) and purpose."
    );
    describe_histogram!(
        QUERY_DURATION,
        Unit::Seconds,
        "Time from a checked query to its answer, audit commit included."
    );
    describe_counter!(
        DECISIONS,
        "Per-record disclosure decisions as finally shown, by level (hidden, withheld, summary, detail)."
    );
    describe_counter!(
        PUBLISHED_RECORDS,
        "Records in publish calls, by outcome (accepted, unchanged, stale, rejected, permission_denied)."
    );
    describe_histogram!(
        AUDIT_APPEND_DURATION,
        Unit::Seconds,
        "Time to commit one group of audit entries."
    );
    describe_histogram!(
        AUDIT_BATCH_ENTRIES,
        Unit::Count,
        "Audit entries committed together in one group commit."
    );
    describe_gauge!(
        CHECKPOINT_AGE,
        Unit::Seconds,
        "Seconds since the signed checkpoint was last known to cover every audit entry (sequencing succeeded)."
    );
    describe_gauge!(
        CHECKPOINT_TREE_SIZE,
        Unit::Count,
        "Entries covered by the latest signed checkpoint."
    );
    describe_counter!(
        SEQUENCING_FAILURES,
        "Audit log sequencing runs that failed."
    );
    describe_gauge!(AGENT_LINKS, Unit::Count, "Agent links open now.");
    describe_histogram!(
        LIVE_FETCH_DURATION,
        Unit::Seconds,
        "Time to fetch a record's detail live from its custodian's agent, by custodian authority code."
    );
    describe_counter!(
        LIVE_FETCH_FAILURES,
        "Live detail fetches that failed, by custodian authority code and reason (unreachable, refused)."
    );
    describe_counter!(
        POLICY_RELOADS,
        "Policy set reloads, by outcome (loaded, unchanged, rejected)."
    );
    describe_counter!(
        STORE_ERRORS,
        "Store operations that failed (each became Unavailable to the caller)."
    );
    CertificateExpiry::describe();
    kith_ops::tls_reload::describe();
}

pub fn query(outcome: &'static str, purpose: &'static str, took: Option<Duration>) {
    counter!(QUERIES, "outcome" => outcome, "purpose" => purpose).increment(1);
    if let Some(took) = took {
        metrics::histogram!(QUERY_DURATION).record(took.as_secs_f64());
    }
}

pub fn decision(level: kith_policy::Level) {
    counter!(DECISIONS, "level" => level.as_str()).increment(1);
}

pub fn published(outcome: &'static str, records: u64) {
    counter!(PUBLISHED_RECORDS, "outcome" => outcome).increment(records);
}

pub fn audit_append(took: Duration, entries: usize) {
    metrics::histogram!(AUDIT_APPEND_DURATION).record(took.as_secs_f64());
    metrics::histogram!(AUDIT_BATCH_ENTRIES).record(entries as f64);
}

/// `custodian` is an authority code from the directory (bounded).
pub fn live_fetch(custodian: &str, took: Duration, failure: Option<&'static str>) {
    metrics::histogram!(LIVE_FETCH_DURATION, "custodian" => custodian.to_string())
        .record(took.as_secs_f64());
    if let Some(reason) = failure {
        counter!(LIVE_FETCH_FAILURES, "custodian" => custodian.to_string(), "reason" => reason)
            .increment(1);
    }
}

pub fn policy_reload(outcome: &'static str) {
    counter!(POLICY_RELOADS, "outcome" => outcome).increment(1);
}

pub fn store_error() {
    counter!(STORE_ERRORS).increment(1);
}

pub fn sequencing_failed() {
    counter!(SEQUENCING_FAILURES).increment(1);
}

/// What the scrape reads to set the hub's gauges.
#[derive(Clone)]
pub struct Sampled {
    pub links: Arc<Links>,
    pub log: Arc<TransparencyLog>,
    pub certificates: CertificateExpiry,
}

/// Sets the gauges read from state; run before each scrape.
pub async fn refresh(sampled: Sampled) {
    gauge!(AGENT_LINKS).set(sampled.links.open_count() as f64);
    if let Some(age) = sampled.log.current_for() {
        gauge!(CHECKPOINT_AGE).set(age.as_secs_f64());
    }
    if let Some(cp) = sampled.log.latest().await {
        gauge!(CHECKPOINT_TREE_SIZE).set(cp.tree_size as f64);
    }
    sampled.certificates.record(chrono::Utc::now());
}
