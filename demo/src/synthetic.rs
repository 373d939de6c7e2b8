//! Synthetic but plausible people and relationship records, for the demo
//! and the benchmark harness.
//!
//! Everything is generated from a seed, so a run can be repeated. NHS
//! numbers come from the test range 999 000 0000 – 999 999 9999 (never issued
//! to patients) with valid check digits; telephone numbers are in Ofcom's
//! drama ranges where there is one (0161 496 0xxx for Manchester).
//! Nothing here describes a real person.

use chrono::NaiveDate;
use kith_core::{
    Article6Basis, Article9Condition, Contact, Demographics, LawfulBasis, LocalId, NhsNumber,
    Period, Provenance, Purpose, Record, RelationshipType, Residency, Sensitivity, Subject,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const GIVEN: &[&str] = &[
    "Amelia", "Oliver", "Zoë", "Muhammad", "Isla", "Noah", "Aoife", "Leo", "Chloé", "Jack",
    "Amara", "Harry", "Siân", "Oscar", "Priya", "George", "Freya", "Kacper", "Niamh", "Yusuf",
    "Ella", "Tomás", "Grace", "Arjun",
];
const FAMILY: &[&str] = &[
    "O'Brien",
    "Smith",
    "Smith-Jones",
    "Khan",
    "Nowak",
    "Jones",
    "McCarthy",
    "Patel",
    "Williams",
    "D'Souza",
    "Brown",
    "Okafor",
    "Taylor",
    "Ní Bhriain",
    "Wilson",
    "Hughes",
    "Begum",
    "Evans",
    "Kowalski",
    "Davies",
];
const POSTCODE_OUTWARD: &[&str] = &[
    "M1", "M4", "M8", "M11", "M13", "M14", "M16", "M20", "M22", "M40", "M5", "M6", "M7", "M27",
    "M30",
];
const WORKERS: &[&str] = &[
    "Jo Hargreaves",
    "Sam Okoye",
    "Priya Shah",
    "Tom Brennan",
    "Aisha Rahman",
    "Kate Lowe",
    "Dan Whitworth",
    "Ruth Nwosu",
    "Mark Ellis",
    "Helen Cross",
];

/// A synthetic person.
#[derive(Debug, Clone)]
pub struct Person {
    pub nhs_number: NhsNumber,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: NaiveDate,
    pub postcode: String,
}

/// The `n`th NHS number of the test range (valid check digit; distinct for
/// distinct `n` below 900,000).
pub fn test_nhs_number(n: u64) -> NhsNumber {
    NhsNumber::in_test_range(n)
}

/// Makes people and records from a seed.
pub struct Generator {
    rng: StdRng,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.random_range(0..from.len())]
    }

    /// The `n`th person (children and adults).
    pub fn person(&mut self, n: u64) -> Person {
        let child = self.rng.random_bool(0.5);
        let year = if child {
            self.rng.random_range(2009..=2023)
        } else {
            self.rng.random_range(1935..=2000)
        };
        let date_of_birth = NaiveDate::from_ymd_opt(
            year,
            self.rng.random_range(1..=12),
            self.rng.random_range(1..=28),
        )
        .expect("day 1 to 28 exists in every month");
        let outward = self.pick(POSTCODE_OUTWARD);
        let letters = b"ABDEFGHJLNPQRSTUWXYZ";
        let postcode = format!(
            "{outward} {}{}{}",
            self.rng.random_range(1..=9),
            letters[self.rng.random_range(0..letters.len())] as char,
            letters[self.rng.random_range(0..letters.len())] as char
        );
        Person {
            nhs_number: test_nhs_number(n),
            given_name: self.pick(GIVEN).to_string(),
            family_name: self.pick(FAMILY).to_string(),
            date_of_birth,
            postcode,
        }
    }

    fn phone(&mut self) -> String {
        format!("0161 496 0{:03}", self.rng.random_range(0..1000))
    }

    /// A record of `custodian` (of `kind`: council, nhs_trust, police, fire,
    /// ambulance) about `person`, sealed with its content hash.
    pub fn record(
        &mut self,
        custodian: &str,
        kind: &str,
        person: &Person,
        record_id: String,
    ) -> Record {
        let child = person.date_of_birth.year_ce().1 >= 2008;
        use RelationshipType::*;
        let relationship_type = match (kind, child) {
            ("council", true) => [
                ChildProtectionPlan,
                LookedAfterChild,
                ChildInNeed,
                EarlyHelp,
            ][self.rng.random_range(0..4)],
            ("council", false) => [AdultSocialCare, S42SafeguardingEnquiry, HousingSupport]
                [self.rng.random_range(0..3)],
            ("nhs_trust", _) => MentalHealth,
            ("police", _) | ("ambulance", _) => VulnerabilityMarker,
            ("fire", _) => HomeFireSafety,
            _ => AdultSocialCare,
        };
        self.record_of_type(custodian, person, record_id, relationship_type)
    }

    /// A record of a given relationship type.
    pub fn record_of_type(
        &mut self,
        custodian: &str,
        person: &Person,
        record_id: String,
        relationship_type: RelationshipType,
    ) -> Record {
        use RelationshipType::*;
        let (service, statute, article9, purposes): (&str, &str, Article9Condition, &[Purpose]) =
            match relationship_type {
                ChildProtectionPlan => (
                    "Children's Social Care, Safeguarding",
                    "Children Act 1989 s47",
                    Article9Condition::SubstantialPublicInterest,
                    &[
                        Purpose::Safeguarding,
                        Purpose::DirectCare,
                        Purpose::Emergency,
                    ],
                ),
                LookedAfterChild => (
                    "Children in Care Service",
                    "Children Act 1989 s20",
                    Article9Condition::SubstantialPublicInterest,
                    &[Purpose::Safeguarding, Purpose::DirectCare],
                ),
                ChildInNeed => (
                    "Children's Social Care, Locality Team",
                    "Children Act 1989 s17",
                    Article9Condition::SubstantialPublicInterest,
                    &[Purpose::Safeguarding, Purpose::DirectCare],
                ),
                EarlyHelp => (
                    "Early Help Hub",
                    "Children Act 2004 s10",
                    Article9Condition::SubstantialPublicInterest,
                    &[Purpose::Safeguarding],
                ),
                AdultSocialCare => (
                    "Adult Social Care, Integrated Neighbourhood Team",
                    "Care Act 2014 s9",
                    Article9Condition::HealthOrSocialCare,
                    &[
                        Purpose::DirectCare,
                        Purpose::CarePlanning,
                        Purpose::Emergency,
                    ],
                ),
                S42SafeguardingEnquiry => (
                    "Adult Safeguarding Team",
                    "Care Act 2014 s42",
                    Article9Condition::HealthOrSocialCare,
                    &[Purpose::Safeguarding, Purpose::DirectCare],
                ),
                HousingSupport => (
                    "Housing Options and Support",
                    "Housing Act 1996 Part 7",
                    Article9Condition::SubstantialPublicInterest,
                    &[
                        Purpose::CarePlanning,
                        Purpose::DirectCare,
                        Purpose::Emergency,
                    ],
                ),
                MentalHealth => (
                    "Community Mental Health Team",
                    "Mental Health Act 1983 s117",
                    Article9Condition::HealthOrSocialCare,
                    &[
                        Purpose::DirectCare,
                        Purpose::CarePlanning,
                        Purpose::Safeguarding,
                        Purpose::Emergency,
                    ],
                ),
                VulnerabilityMarker => (
                    "Vulnerability Hub",
                    "Crime and Disorder Act 1998 s115",
                    Article9Condition::SubstantialPublicInterest,
                    &[Purpose::Emergency, Purpose::Safeguarding],
                ),
                HomeFireSafety => (
                    "Prevention, Home Fire Safety",
                    "Fire and Rescue Services Act 2004 s6",
                    Article9Condition::VitalInterests,
                    &[Purpose::Emergency],
                ),
                _ => (
                    "Services",
                    "",
                    Article9Condition::SubstantialPublicInterest,
                    &[Purpose::DirectCare],
                ),
            };
        let start = NaiveDate::from_ymd_opt(
            self.rng.random_range(2022..=2025),
            self.rng.random_range(1..=12),
            self.rng.random_range(1..=28),
        )
        .expect("valid day");
        let worker = self.pick(WORKERS).to_string();
        let sensitivity = if self.rng.random_bool(0.03) {
            Sensitivity::Restricted
        } else {
            Sensitivity::Normal
        };
        let mut record = Record {
            record_id,
            version: 1,
            custodian: custodian.to_string(),
            subject: Subject {
                nhs_number: Some(person.nhs_number),
                local_ids: vec![LocalId {
                    system: "case-system".into(),
                    value: format!("P{}", person.nhs_number.as_digits()),
                }],
                demographics: Some(Demographics {
                    given_name: person.given_name.clone(),
                    family_name: person.family_name.clone(),
                    date_of_birth: Some(person.date_of_birth),
                    postcode: person.postcode.clone(),
                }),
            },
            relationship_type,
            service: service.to_string(),
            period: Period { start, end: None },
            key_worker: Contact {
                name: worker,
                role: "Key worker".into(),
                phone: self.phone(),
                email: String::new(),
            },
            out_of_hours: Contact {
                name: "Out-of-hours duty team".into(),
                role: String::new(),
                phone: self.phone(),
                email: String::new(),
            },
            sensitivity,
            security_labels: vec![],
            lawful_basis: LawfulBasis {
                article6: Article6Basis::PublicTask,
                article9: Some(article9),
                statute: statute.to_string(),
            },
            permitted_purposes: purposes.to_vec(),
            residency: Residency::England,
            provenance: Provenance {
                source_system: "case-system".into(),
                content_hash: String::new(),
            },
            retain_until: NaiveDate::from_ymd_opt(2040, 1, 1),
        };
        record.seal();
        record
    }
}

use chrono::Datelike;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_range_numbers_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..5_000 {
            let nhs = test_nhs_number(n);
            assert!(nhs.as_digits().starts_with("999"));
            assert!(seen.insert(nhs), "duplicate at {n}");
        }
    }

    #[test]
    fn generated_records_are_valid_and_repeatable() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let mut a = Generator::new(7);
        let mut b = Generator::new(7);
        for n in 0..200 {
            let (pa, pb) = (a.person(n), b.person(n));
            for (kind, code) in [
                ("council", "E08000003"),
                ("nhs_trust", "R0A"),
                ("police", "GMP"),
                ("fire", "GMFRS"),
            ] {
                let ra = a.record(code, kind, &pa, format!("r-{n}"));
                let rb = b.record(code, kind, &pb, format!("r-{n}"));
                assert_eq!(ra, rb, "same seed, same record");
                ra.validate(today)
                    .unwrap_or_else(|e| panic!("{kind} record invalid: {e:?}"));
            }
        }
    }
}
