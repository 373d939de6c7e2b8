//! Synthetic records for the store, streamed in publish batches.
//!
//! A 10M-record store must not mean 10M records in memory: [`Batches`] is an
//! iterator that makes each person and their records on demand (with
//! `kith_demo::synthetic`, NHS numbers from the 999 test range) and hands out
//! a batch as soon as one custodian has `batch_size` records waiting. At
//! most one batch per custodian is held.
//!
//! Person `p` (from 0) has NHS number `test_nhs_number(p)` and
//! `per_person` records, spread over the custodians in turn, so a query
//! for any `p` below [`Plan::people`] finds records.

use kith_core::wire::record_to_wire;
use kith_demo::synthetic::Generator;
use kith_proto::v1 as pb;

/// The custodians that publish, with their kind: a council and an NHS
/// trust, whose records the default agreements share with another
/// council's social worker for direct care.
pub const CUSTODIANS: [(&str, &str); 2] = [
    (kith_tests::COUNCIL_A, "council"),
    (kith_tests::TRUST_C, "nhs_trust"),
];

/// `test_nhs_number(n)` is distinct only for `n` below this.
pub const MAX_PEOPLE: u64 = 900_000;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub records: u64,
    pub per_person: u32,
    pub batch_size: usize,
    pub seed: u64,
}

impl Plan {
    /// How many people the records are about (the last may have fewer).
    pub fn people(&self) -> u64 {
        self.records.div_ceil(u64::from(self.per_person.max(1)))
    }

    /// An error if the test range cannot give every person their own NHS number.
    pub fn check(&self) -> Result<(), String> {
        if self.per_person == 0 {
            return Err("--records-per-person must be at least 1".into());
        }
        if self.people() > MAX_PEOPLE {
            return Err(format!(
                "{} records at {} per person need {} people, but the NHS test range gives {MAX_PEOPLE} distinct numbers: raise --records-per-person to at least {}",
                self.records,
                self.per_person,
                self.people(),
                self.records.div_ceil(MAX_PEOPLE)
            ));
        }
        Ok(())
    }
}

/// One publish call's worth of records, all of one custodian.
#[derive(Debug, Clone)]
pub struct Batch {
    pub custodian: &'static str,
    pub records: Vec<pb::RelationshipRecord>,
}

/// The records of a [`Plan`], batch by batch.
pub struct Batches {
    plan: Plan,
    generator: Generator,
    next_person: u64,
    made: u64,
    pending: Vec<Vec<pb::RelationshipRecord>>,
    ready: Vec<Batch>,
}

impl Batches {
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            generator: Generator::new(plan.seed),
            next_person: 0,
            made: 0,
            pending: CUSTODIANS.iter().map(|_| Vec::new()).collect(),
            ready: Vec::new(),
        }
    }

    /// Makes the next person's records; false when every record is made.
    fn make_person(&mut self) -> bool {
        if self.made >= self.plan.records {
            return false;
        }
        let p = self.next_person;
        self.next_person += 1;
        let person = self.generator.person(p);
        for k in 0..self.plan.per_person {
            if self.made >= self.plan.records {
                break;
            }
            let slot = (p as usize + k as usize) % CUSTODIANS.len();
            let (custodian, kind) = CUSTODIANS[slot];
            let record = self
                .generator
                .record(custodian, kind, &person, format!("bench-{p}-{k}"));
            self.pending[slot].push(record_to_wire(&record));
            self.made += 1;
            if self.pending[slot].len() >= self.plan.batch_size {
                self.ready.push(Batch {
                    custodian,
                    records: std::mem::take(&mut self.pending[slot]),
                });
            }
        }
        true
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        loop {
            if let Some(batch) = self.ready.pop() {
                return Some(batch);
            }
            if !self.make_person() {
                // Everything made: flush what is left, custodian by custodian.
                let slot = self.pending.iter().position(|p| !p.is_empty())?;
                return Some(Batch {
                    custodian: CUSTODIANS[slot].0,
                    records: std::mem::take(&mut self.pending[slot]),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_record_once_in_batches_of_one_custodian() {
        let plan = Plan {
            records: 2_501,
            per_person: 3,
            batch_size: 400,
            seed: 1,
        };
        let mut ids = HashSet::new();
        let mut people = HashSet::new();
        for batch in Batches::new(plan) {
            assert!(!batch.records.is_empty() && batch.records.len() <= 400);
            for r in &batch.records {
                assert_eq!(r.custodian, batch.custodian);
                assert!(ids.insert(r.record_id.clone()), "{} twice", r.record_id);
                people.insert(r.subject.as_ref().unwrap().nhs_number.clone());
            }
        }
        assert_eq!(ids.len(), 2_501);
        assert_eq!(people.len() as u64, plan.people());
        assert_eq!(plan.people(), 834);
    }

    #[test]
    fn records_are_valid_for_the_hub() {
        let today = chrono::Utc::now().date_naive();
        let plan = Plan {
            records: 50,
            per_person: 2,
            batch_size: 1000,
            seed: 2,
        };
        for batch in Batches::new(plan) {
            for r in batch.records {
                kith_core::wire::record_from_wire(r, today).expect("valid record");
            }
        }
    }

    #[test]
    fn too_many_people_for_the_test_range_is_refused() {
        let plan = Plan {
            records: 10_000_000,
            per_person: 2,
            batch_size: 1000,
            seed: 0,
        };
        assert!(plan.check().unwrap_err().contains("at least 12"));
        assert!(
            Plan {
                per_person: 12,
                ..plan
            }
            .check()
            .is_ok()
        );
    }
}
