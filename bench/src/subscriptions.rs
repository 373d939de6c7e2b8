//! The subscriptions phase (issue #17.3): current subscriptions stored in a
//! fresh store before its hub starts, so that ingest can be measured with
//! them beside ingest without them in the same run.
//!
//! They go in through `kith_hub::store` (`Store::subscribe`, the statement
//! and audit entry the hub's `Subscribe` call stores), not the RPC: the RPC
//! asks the policy set, which permits a subscription only while the
//! subscriber holds a current record of the person, and these are stored
//! before any record is. Each is what the hub would have stored had the
//! subscriber asked after its own records were published:
//!
//! - the subscriber is the NHS trust ([`SUBSCRIBER`]), which the generator
//!   makes a custodian of one record of every person (at two or more
//!   records a person), as an emergency department clinician, for direct
//!   care, asking about every category the generator publishes;
//! - its people are spread evenly over the plan's people (subscription `i`
//!   is for person `i × people ÷ n`), so every part of the ingest meets
//!   them, at most one a person.
//!
//! So each subscribed person's council record is matched, decided by the
//! policy set as if that clinician had queried, and (for a child, under the
//! children's safeguarding agreement) notified at summary; the trust's own
//! record of them is matched and skipped. The seed's own audit entries
//! (one `subscribe` entry each) say they were stored by the benchmark.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use kith_core::audit::{AuditEntry, AuditKind};
use kith_core::{ActingUser, Purpose};
use kith_hub::model::Subscription;
use kith_hub::store::{Store, SubscribeOutcome};
use serde::Serialize;

use crate::generator::CUSTODIANS;

/// The authority that subscribes: the generator's NHS trust.
pub const SUBSCRIBER: &str = CUSTODIANS[1].0;

/// The categories of every type the generator publishes.
pub const CATEGORIES: [&str; 4] = ["children", "adults", "health", "housing"];

/// Concurrent `Store::subscribe` calls while seeding (SQLite serialises
/// them on its one writer; PostgreSQL commits them side by side).
const SEEDERS: usize = 4;

/// What seeding stored, and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct SeedSummary {
    pub subscriptions: u64,
    pub subscriber: String,
    pub elapsed_s: f64,
    pub per_s: f64,
}

/// The person (generator index, from 0) subscription `i` of `n` is for.
pub fn person_of(i: u64, n: u64, people: u64) -> u64 {
    // i × people ÷ n without overflow: people and n are below 2^32.
    i * people / n.max(1)
}

/// An error unless `n` subscriptions, at most one a person, fit `people`.
pub fn check(n: u64, people: u64) -> Result<(), String> {
    if n > people {
        return Err(format!(
            "--subscriptions {n} needs {n} people (one subscription each), but the records are about {people}: \
             lower --subscriptions, raise --records or lower --records-per-person"
        ));
    }
    Ok(())
}

/// Subscription `i` of `n`, made now.
pub fn subscription(i: u64, n: u64, people: u64) -> Subscription {
    let now = Utc::now();
    let person = person_of(i, n, people);
    Subscription {
        subscription_id: format!("sub-bench-{i:010}"),
        subscriber: SUBSCRIBER.to_string(),
        nhs_number: kith_demo::synthetic::test_nhs_number(person).as_digits(),
        relationship_types: Vec::new(),
        categories: CATEGORIES.iter().map(|c| c.to_string()).collect(),
        purpose: Purpose::DirectCare,
        created_by: ActingUser {
            user_id: "bench-ed-1".into(),
            display_name: "Bench ED clinician".into(),
            role: "ed_clinician".into(),
            team: "Emergency Department".into(),
        },
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ends_on: now.date_naive() + chrono::Days::new(90),
        audit_index: 0,
        ended_at: None,
        end_reason: None,
    }
}

fn entry(s: &Subscription, outcome: &SubscribeOutcome) -> AuditEntry {
    let mut e = AuditEntry::new(AuditKind::Subscribe, &s.subscriber, Utc::now());
    e.user = Some(s.created_by.user_id.clone());
    e.role = Some(s.created_by.role.clone());
    e.purpose = Some(s.purpose.as_str().to_string());
    e.subject = Some(s.nhs_number.clone());
    e.outcome = match outcome {
        SubscribeOutcome::Created => "ok".into(),
        _ => "refused".into(),
    };
    e.reason = "stored by kith-bench before the hub started (issue #17.3)".into();
    e.subscription_id = Some(s.subscription_id.clone());
    e
}

/// Stores `n` current subscriptions for the plan's `people` in the store
/// at `url` (opening it runs the migrations, as the hub does), then closes
/// it.
pub async fn seed(url: &str, n: u64, people: u64) -> Result<SeedSummary> {
    check(n, people).map_err(anyhow::Error::msg)?;
    let store: Arc<dyn Store> = kith_hub::store::open(url)
        .await
        .context("opening the store to seed subscriptions")?;
    let started = Instant::now();
    let today = Utc::now().date_naive();
    let mut tasks = Vec::new();
    for seeder in 0..SEEDERS as u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = seeder;
            while i < n {
                let s = subscription(i, n, people);
                let (outcome, _) = store
                    .subscribe(&s, today, &|o| entry(&s, o))
                    .await
                    .with_context(|| format!("storing subscription {i}"))?;
                if outcome != SubscribeOutcome::Created {
                    bail!("subscription {i} was not stored: {outcome:?}");
                }
                i += SEEDERS as u64;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("a seeder panicked")??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(store);
    Ok(SeedSummary {
        subscriptions: n,
        subscriber: SUBSCRIBER.to_string(),
        elapsed_s: elapsed,
        per_s: n as f64 / elapsed.max(f64::EPSILON),
    })
}

/// The notifications the store holds for [`SUBSCRIBER`] after the run, up
/// to `limit` (the hub stopped; no agent acknowledged any).
pub async fn notices_stored(url: &str, limit: u32) -> Result<u64> {
    let store = kith_hub::store::open(url).await?;
    Ok(store.pending_notifications(SUBSCRIBER, limit).await?.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn people_are_spread_and_distinct() {
        let people: HashSet<u64> = (0..1_000).map(|i| person_of(i, 1_000, 5_000)).collect();
        assert_eq!(people.len(), 1_000);
        assert_eq!(person_of(0, 1_000, 5_000), 0);
        assert_eq!(person_of(999, 1_000, 5_000), 4_995);
        assert!(people.iter().all(|p| *p < 5_000));
        // As many subscriptions as people: every person once.
        let all: HashSet<u64> = (0..700).map(|i| person_of(i, 700, 700)).collect();
        assert_eq!(all.len(), 700);
    }

    #[test]
    fn more_subscriptions_than_people_is_refused() {
        assert!(check(100_000, 500_000).is_ok());
        assert!(check(50_000, 50_000).is_ok());
        let e = check(100_000, 50_000).unwrap_err();
        assert!(
            e.contains("--subscriptions 100000") && e.contains("50000"),
            "{e}"
        );
    }

    #[test]
    fn a_subscription_is_the_trusts_current_one_for_its_person() {
        let s = subscription(3, 10, 100);
        assert_eq!(s.subscriber, kith_tests::TRUST_C);
        assert_eq!(
            s.nhs_number,
            kith_demo::synthetic::test_nhs_number(30).as_digits()
        );
        assert!(s.current(Utc::now().date_naive()));
        assert_ne!(s.subscription_id, subscription(4, 10, 100).subscription_id);
    }

    #[tokio::test]
    async fn seeding_stores_current_subscriptions_the_hub_finds() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let summary = seed(&url, 20, 40).await.unwrap();
        assert_eq!(summary.subscriptions, 20);
        let store = kith_hub::store::open(&url).await.unwrap();
        let today = Utc::now().date_naive();
        let subjects: Vec<String> = (0..40)
            .map(|p| kith_demo::synthetic::test_nhs_number(p).as_digits())
            .collect();
        let found = store
            .subscriptions_for_subjects(&subjects, today)
            .await
            .unwrap();
        assert_eq!(found.len(), 20);
        assert!(found.iter().all(|s| s.subscriber == SUBSCRIBER));
        // Every other person: 0, 2, 4, ….
        let odd = kith_demo::synthetic::test_nhs_number(1).as_digits();
        assert!(found.iter().all(|s| s.nhs_number != odd));
        assert!(seed(&url, 41, 40).await.is_err(), "more than the people");
    }
}
