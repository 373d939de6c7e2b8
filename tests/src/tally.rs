//! Counting at the hub, past the hub: what its records table holds and what
//! its audit log says was accepted, to prove nothing was lost or doubled.

use std::collections::BTreeMap;

use crate::HubDb;

/// What the hub's store says about published records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Rows in the records table, by custodian.
    pub stored: BTreeMap<String, u64>,
    /// Publish entries in the audit log.
    pub publish_entries: u64,
    /// For each (custodian, record id) a publish entry names, how often it
    /// was `accepted`.
    pub accepted: BTreeMap<(String, String), u64>,
    /// Every other publish decision (`unchanged` for a resend the hub had
    /// already committed, ...), counted by decision.
    pub other_decisions: BTreeMap<String, u64>,
}

impl Tally {
    /// Records accepted more than once.
    pub fn duplicated(&self) -> Vec<&(String, String)> {
        self.accepted
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k)
            .collect()
    }

    /// Of `expected` (custodian, record id) pairs, those the log never
    /// accepted.
    pub fn missing<'a>(
        &self,
        expected: impl IntoIterator<Item = &'a (String, String)>,
    ) -> Vec<&'a (String, String)> {
        expected
            .into_iter()
            .filter(|k| !self.accepted.contains_key(*k))
            .collect()
    }

    /// Accepted records of `custodian`, once each.
    pub fn accepted_of(&self, custodian: &str) -> u64 {
        self.accepted.keys().filter(|(c, _)| c == custodian).count() as u64
    }
}

/// Reads the records table and every publish entry of the log.
pub async fn tally(db: &HubDb) -> Tally {
    let mut t = Tally::default();
    let (stored, entries): (Vec<(String, i64)>, Vec<Vec<u8>>) = match db {
        HubDb::Sqlite(pool) => (
            sqlx::query_as("SELECT custodian, COUNT(*) FROM records GROUP BY custodian")
                .fetch_all(pool)
                .await
                .expect("records"),
            sqlx::query_scalar("SELECT entry FROM audit_log ORDER BY idx")
                .fetch_all(pool)
                .await
                .expect("audit log"),
        ),
        HubDb::Postgres(pool) => (
            sqlx::query_as("SELECT custodian, COUNT(*) FROM records GROUP BY custodian")
                .fetch_all(pool)
                .await
                .expect("records"),
            sqlx::query_scalar("SELECT entry FROM audit_log ORDER BY idx")
                .fetch_all(pool)
                .await
                .expect("audit log"),
        ),
    };
    for (custodian, n) in stored {
        t.stored.insert(custodian, n as u64);
    }
    for entry in entries {
        let entry: serde_json::Value = serde_json::from_slice(&entry).expect("entry JSON");
        if entry["kind"] != "publish" {
            continue;
        }
        t.publish_entries += 1;
        for r in entry["records"].as_array().into_iter().flatten() {
            let decision = r["decision"].as_str().unwrap_or_default();
            if decision == "accepted" {
                let key = (
                    r["custodian"].as_str().unwrap_or_default().to_string(),
                    r["record_id"].as_str().unwrap_or_default().to_string(),
                );
                *t.accepted.entry(key).or_insert(0) += 1;
            } else {
                *t.other_decisions.entry(decision.to_string()).or_insert(0) += 1;
            }
        }
    }
    t
}
