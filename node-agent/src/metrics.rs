//! Every metric the agent exports, named in one place, in Prometheus
//! naming: a `kith_agent_` prefix, base units, `_total` counters.
//! [`describe`] gives each its HELP and TYPE lines; counters are recorded
//! where the thing happens (ingest, the publisher); the gauges read from
//! state (outbox backlog, link, notifications, certificate expiry) are set
//! by [`refresh`] just before each scrape. Labels are closed vocabularies
//! only: never a record, a person or a file name.

use chrono::Utc;
use kith_ops::CertificateExpiry;
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use tokio::sync::watch;

use crate::link::LinkState;
use crate::outbox::Outbox;

pub const OUTBOX_PENDING: &str = "kith_agent_outbox_pending_records";
pub const OUTBOX_OLDEST_AGE: &str = "kith_agent_outbox_oldest_pending_age_seconds";
pub const DELIVERIES: &str = "kith_agent_deliveries_total";
pub const DELIVERY_FAILURES: &str = "kith_agent_delivery_failures_total";
pub const DROP_LINES: &str = "kith_agent_drop_lines_total";
pub const LINK_UP: &str = "kith_agent_hub_link_up";
pub const NOTIFICATIONS_PENDING: &str = "kith_agent_notifications_pending";

/// Every name above.
pub const NAMES: &[&str] = &[
    OUTBOX_PENDING,
    OUTBOX_OLDEST_AGE,
    DELIVERIES,
    DELIVERY_FAILURES,
    DROP_LINES,
    LINK_UP,
    NOTIFICATIONS_PENDING,
];

/// HELP and TYPE for every agent metric. Call once the recorder is installed.
pub fn describe() {
    describe_gauge!(
        OUTBOX_PENDING,
        Unit::Count,
        "Records in the outbox waiting for the hub."
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Seconds since the oldest record still waiting for the hub was enqueued (0 when none waits)."
    );
    describe_counter!(
        DELIVERIES,
        "Outbox items the hub answered, by queue (records, directives) and outcome (accepted, unchanged, stale, rejected)."
    );
    describe_counter!(
        DELIVERY_FAILURES,
        "Publish calls that failed as a whole (the batch stays pending and is retried)."
    );
    describe_counter!(
        DROP_LINES,
        "Drop-folder lines read, by outcome (accepted, rejected)."
    );
    describe_gauge!(
        LINK_UP,
        "1 while the agent's link to the hub is open (welcomed), else 0."
    );
    describe_gauge!(
        NOTIFICATIONS_PENDING,
        Unit::Count,
        "Notifications stored but not yet delivered to every configured sink."
    );
    CertificateExpiry::describe();
    kith_ops::tls_reload::describe();
}

pub fn delivered(queue: &'static str, accepted: u64, unchanged: u64, stale: u64, rejected: u64) {
    for (outcome, n) in [
        ("accepted", accepted),
        ("unchanged", unchanged),
        ("stale", stale),
        ("rejected", rejected),
    ] {
        if n > 0 {
            counter!(DELIVERIES, "queue" => queue, "outcome" => outcome).increment(n);
        }
    }
}

pub fn delivery_failed() {
    counter!(DELIVERY_FAILURES).increment(1);
}

pub fn drop_lines(accepted: usize, rejected: usize) {
    counter!(DROP_LINES, "outcome" => "accepted").increment(accepted as u64);
    counter!(DROP_LINES, "outcome" => "rejected").increment(rejected as u64);
}

/// What the scrape reads to set the agent's gauges.
#[derive(Clone)]
pub struct Sampled {
    pub outbox: Outbox,
    pub link: watch::Receiver<LinkState>,
    pub certificates: CertificateExpiry,
}

/// Sets the gauges read from state; run before each scrape. A gauge whose
/// source cannot be read keeps its last value, and the failure is logged.
pub async fn refresh(sampled: Sampled) {
    let now = Utc::now();
    match sampled.outbox.backlog().await {
        Ok((pending, oldest)) => {
            gauge!(OUTBOX_PENDING).set(pending as f64);
            let age = oldest.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1e3);
            gauge!(OUTBOX_OLDEST_AGE).set(age);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbox backlog"),
    }
    match sampled.outbox.notifications_pending().await {
        Ok(n) => gauge!(NOTIFICATIONS_PENDING).set(n as f64),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count pending notifications"),
    }
    let up = sampled.link.borrow().connected;
    gauge!(LINK_UP).set(if up { 1.0 } else { 0.0 });
    sampled.certificates.record(now);
}
