//! The relationship record, as the domain sees it.
//!
//! This is also the shape of a JSON Lines source file (see
//! `docs/operators.md`): serde reads a line straight into a [`Record`], and
//! [`Record::validate`](crate::validate) checks what types alone cannot.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::codes::{
    Article6Basis, Article9Condition, Purpose, RelationshipType, Residency, Sensitivity,
};
use crate::nhs_number::NhsNumber;

/// A short, lawful statement that one organisation is involved with a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub record_id: String,
    pub version: u64,
    /// Authority code of the custodian. Agents fill it in from their own
    /// identity when a source file leaves it out.
    #[serde(default)]
    pub custodian: String,
    pub subject: Subject,
    pub relationship_type: RelationshipType,
    #[serde(default)]
    pub service: String,
    pub period: Period,
    #[serde(default)]
    pub key_worker: Contact,
    #[serde(default)]
    pub out_of_hours: Contact,
    /// Required: a record that said nothing would otherwise have to be
    /// guessed at, and guessing `normal` fails open.
    pub sensitivity: Sensitivity,
    #[serde(default)]
    pub security_labels: Vec<String>,
    pub lawful_basis: LawfulBasis,
    pub permitted_purposes: Vec<Purpose>,
    pub residency: Residency,
    #[serde(default)]
    pub provenance: Provenance,
    #[serde(default)]
    pub retain_until: Option<NaiveDate>,
}

/// Who a record is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    #[serde(default)]
    pub nhs_number: Option<NhsNumber>,
    #[serde(default)]
    pub local_ids: Vec<LocalId>,
    #[serde(default)]
    pub demographics: Option<Demographics>,
}

/// An identifier from a local system, scoped to the record's custodian.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalId {
    pub system: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demographics {
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
    #[serde(default)]
    pub date_of_birth: Option<NaiveDate>,
    #[serde(default)]
    pub postcode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub start: NaiveDate,
    #[serde(default)]
    pub end: Option<NaiveDate>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
            && self.role.is_empty()
            && self.phone.is_empty()
            && self.email.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LawfulBasis {
    pub article6: Article6Basis,
    #[serde(default)]
    pub article9: Option<Article9Condition>,
    #[serde(default)]
    pub statute: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    #[serde(default)]
    pub source_system: String,
    /// Lower-case hex SHA-256 of the record's content; see
    /// [`Record::content_hash`](crate::content_hash).
    #[serde(default)]
    pub content_hash: String,
}

impl Record {
    /// The record's key at the hub: custodian and record id.
    pub fn key(&self) -> (&str, &str) {
        (&self.custodian, &self.record_id)
    }
}
