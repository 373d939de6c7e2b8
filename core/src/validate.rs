//! What a record must satisfy beyond its types: sizes, character sets,
//! dates in order, a lawful basis and a way to reach someone.
//!
//! Every check reports against the field's dotted path and all failures are
//! collected, so a source-system owner fixes a line once, not once per error.

use std::collections::HashSet;

use chrono::NaiveDate;

use crate::codes::Purpose;
use crate::error::{FieldError, capped};
use crate::record::{Contact, Record};

/// Longest record id, custodian code, and free-text fields, in characters.
/// Every bound is on the value exactly as stored and hashed: nothing is
/// trimmed away after the check.
pub const MAX_ID_LEN: usize = 128;
pub const MAX_CODE_LEN: usize = 64;
pub const MAX_TEXT_LEN: usize = 200;
/// Most records (or directives) one publish call may carry: the wire
/// contract's limit, shared by the hub that enforces it and the agent that
/// batches for it.
pub const MAX_BATCH: usize = 1000;
/// Most security labels on one record.
pub const MAX_LABELS: usize = 16;
/// Most local identifiers on one record's subject.
pub const MAX_LOCAL_IDS: usize = 8;
/// Most permitted purposes on one record: each purpose once.
pub const MAX_PURPOSES: usize = Purpose::ALL.len();

/// A repeated field with more than `max` items: one error with the count,
/// whatever the items hold.
pub fn check_count(field: &str, count: usize, max: usize, errors: &mut Vec<FieldError>) {
    if count > max {
        errors.push(FieldError::new(
            field,
            format!("has {count} items; at most {max}"),
        ));
    }
}

/// Checks an identifier: 1 to `max` characters from `[A-Za-z0-9._:-]`.
pub fn check_identifier(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) {
    if value.is_empty() {
        errors.push(FieldError::new(field, "is required"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
    {
        errors.push(FieldError::new(
            field,
            "may contain only letters, digits and . _ : -",
        ));
    }
}

fn check_text(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value.chars().count() > MAX_TEXT_LEN {
        errors.push(FieldError::new(
            field,
            format!("is longer than {MAX_TEXT_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "contains control characters"));
    }
}

fn check_contact(field: &str, contact: &Contact, errors: &mut Vec<FieldError>) {
    check_text(&format!("{field}.name"), &contact.name, errors);
    check_text(&format!("{field}.role"), &contact.role, errors);
    if !contact.phone.is_empty() {
        let digits = contact.phone.chars().filter(char::is_ascii_digit).count();
        let allowed = contact
            .phone
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '(' | ')' | '-'));
        if !allowed || !(6..=15).contains(&digits) {
            errors.push(FieldError::new(
                format!("{field}.phone"),
                "must be a telephone number: 6 to 15 digits, with spaces, +, (, ) or - only",
            ));
        }
    }
    if !contact.email.is_empty() {
        let ok = contact.email.len() <= 254
            && contact
                .email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !contact.email.chars().any(char::is_whitespace);
        if !ok {
            errors.push(FieldError::new(
                format!("{field}.email"),
                "is not an email address",
            ));
        }
    }
}

impl Record {
    /// Checks the record as of `today`; `Err` lists every failing field, up
    /// to [`MAX_FIELD_ERRORS`](crate::error::MAX_FIELD_ERRORS) and a count
    /// of the rest.
    pub fn validate(&self, today: NaiveDate) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        self.collect_errors(today, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(capped(errors))
        }
    }

    /// Every failing field, uncapped: for callers that add their own
    /// errors before capping the whole list.
    pub(crate) fn collect_errors(&self, today: NaiveDate, errors: &mut Vec<FieldError>) {
        check_identifier("record_id", &self.record_id, MAX_ID_LEN, errors);
        if self.version == 0 {
            errors.push(FieldError::new("version", "must be 1 or more"));
        }
        check_identifier("custodian", &self.custodian, MAX_CODE_LEN, errors);

        let subject = &self.subject;
        if subject.nhs_number.is_none() && subject.local_ids.is_empty() {
            errors.push(FieldError::new(
                "subject",
                "needs an NHS number or at least one local identifier",
            ));
        }
        check_count(
            "subject.local_ids",
            subject.local_ids.len(),
            MAX_LOCAL_IDS,
            errors,
        );
        for (i, id) in subject.local_ids.iter().take(MAX_LOCAL_IDS).enumerate() {
            check_identifier(
                &format!("subject.local_ids[{i}].system"),
                &id.system,
                MAX_CODE_LEN,
                errors,
            );
            check_identifier(
                &format!("subject.local_ids[{i}].value"),
                &id.value,
                MAX_ID_LEN,
                errors,
            );
        }
        if let Some(d) = &subject.demographics {
            check_text("subject.demographics.given_name", &d.given_name, errors);
            check_text("subject.demographics.family_name", &d.family_name, errors);
            if let Some(dob) = d.date_of_birth
                && dob > today
            {
                errors.push(FieldError::new(
                    "subject.demographics.date_of_birth",
                    "is in the future",
                ));
            }
            if !d.postcode.is_empty() && !is_uk_postcode(&d.postcode) {
                errors.push(FieldError::new(
                    "subject.demographics.postcode",
                    "is not a UK postcode",
                ));
            }
        }

        check_text("service", &self.service, errors);
        if let Some(end) = self.period.end
            && end < self.period.start
        {
            errors.push(FieldError::new("period.end", "is before period.start"));
        }
        check_contact("key_worker", &self.key_worker, errors);
        check_contact("out_of_hours", &self.out_of_hours, errors);
        if self.key_worker.phone.is_empty()
            && self.key_worker.email.is_empty()
            && self.out_of_hours.phone.is_empty()
        {
            errors.push(FieldError::new(
                "key_worker",
                "a key worker phone or email, or an out-of-hours phone, is required",
            ));
        }
        check_count(
            "security_labels",
            self.security_labels.len(),
            MAX_LABELS,
            errors,
        );
        for (i, label) in self.security_labels.iter().take(MAX_LABELS).enumerate() {
            check_identifier(
                &format!("security_labels[{i}]"),
                label,
                MAX_CODE_LEN,
                errors,
            );
        }
        check_text("lawful_basis.statute", &self.lawful_basis.statute, errors);
        if self.permitted_purposes.is_empty() {
            errors.push(FieldError::new(
                "permitted_purposes",
                "needs at least one purpose",
            ));
        }
        check_count(
            "permitted_purposes",
            self.permitted_purposes.len(),
            MAX_PURPOSES,
            errors,
        );
        let mut seen = HashSet::new();
        for p in self.permitted_purposes.iter().take(MAX_PURPOSES) {
            if !seen.insert(p) {
                errors.push(FieldError::new(
                    "permitted_purposes",
                    format!("lists {p} twice"),
                ));
            }
        }
        check_text(
            "provenance.source_system",
            &self.provenance.source_system,
            errors,
        );
        let hash = &self.provenance.content_hash;
        if !hash.is_empty()
            && (hash.len() != 64
                || !hash
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
        {
            errors.push(FieldError::new(
                "provenance.content_hash",
                "must be 64 lower-case hex digits (SHA-256)",
            ));
        }
        if let Some(retain) = self.retain_until
            && retain < self.period.start
        {
            errors.push(FieldError::new("retain_until", "is before period.start"));
        }
    }
}

/// A loose UK postcode shape: outward code of 2 to 4, inward of 3 (digit,
/// letter, letter), case and the space not minding.
pub fn is_uk_postcode(raw: &str) -> bool {
    let p: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = p.as_bytes();
    if !(5..=7).contains(&bytes.len()) || !bytes[0].is_ascii_alphabetic() {
        return false;
    }
    let (outward, inward) = bytes.split_at(bytes.len() - 3);
    inward[0].is_ascii_digit()
        && inward[1].is_ascii_alphabetic()
        && inward[2].is_ascii_alphabetic()
        && outward.iter().all(u8::is_ascii_alphanumeric)
        && outward.iter().any(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::*;
    use crate::record::*;

    pub(crate) fn sample() -> Record {
        Record {
            record_id: "asc-1001".into(),
            version: 1,
            custodian: "E08000003".into(),
            subject: Subject {
                nhs_number: Some("9434765919".parse().unwrap()),
                local_ids: vec![],
                demographics: Some(Demographics {
                    given_name: "Zoë".into(),
                    family_name: "O'Brien".into(),
                    date_of_birth: NaiveDate::from_ymd_opt(1950, 3, 1),
                    postcode: "M1 1AE".into(),
                }),
            },
            relationship_type: RelationshipType::AdultSocialCare,
            service: "Adult Social Care".into(),
            period: Period {
                start: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
                end: None,
            },
            key_worker: Contact {
                name: "J. Smith".into(),
                role: "Social worker".into(),
                phone: "0161 000 0000".into(),
                email: String::new(),
            },
            out_of_hours: Contact::default(),
            sensitivity: Sensitivity::Normal,
            security_labels: vec![],
            lawful_basis: LawfulBasis {
                article6: Article6Basis::PublicTask,
                article9: Some(Article9Condition::HealthOrSocialCare),
                statute: "Care Act 2014".into(),
            },
            permitted_purposes: vec![Purpose::DirectCare],
            residency: Residency::England,
            provenance: Provenance::default(),
            retain_until: None,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    }

    fn fields(r: &Record) -> Vec<String> {
        r.validate(today())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_complete_record_is_valid() {
        assert_eq!(sample().validate(today()), Ok(()));
    }

    #[test]
    fn every_failure_is_reported_against_its_field() {
        let mut r = sample();
        r.record_id = "has space".into();
        r.version = 0;
        r.period.end = NaiveDate::from_ymd_opt(2020, 1, 1);
        r.permitted_purposes.clear();
        r.key_worker.phone = "call me".into();
        assert_eq!(
            fields(&r),
            [
                "record_id",
                "version",
                "period.end",
                "key_worker.phone",
                "permitted_purposes"
            ]
        );
    }

    #[test]
    fn someone_must_be_reachable() {
        let mut r = sample();
        r.key_worker.phone.clear();
        assert_eq!(fields(&r), ["key_worker"]);
        r.out_of_hours.phone = "0161 000 0001".into();
        assert_eq!(r.validate(today()), Ok(()));
    }

    #[test]
    fn a_subject_needs_an_identifier() {
        let mut r = sample();
        r.subject.nhs_number = None;
        assert_eq!(fields(&r), ["subject"]);
        r.subject.local_ids.push(LocalId {
            system: "mosaic".into(),
            value: "12345".into(),
        });
        assert_eq!(r.validate(today()), Ok(()));
    }

    #[test]
    fn oversized_and_control_text_is_refused() {
        let mut r = sample();
        r.service = "x".repeat(MAX_TEXT_LEN + 1);
        r.key_worker.name = "J\u{0}Smith".into();
        assert_eq!(fields(&r), ["service", "key_worker.name"]);
    }

    #[test]
    fn dates_must_make_sense() {
        let mut r = sample();
        r.subject.demographics.as_mut().unwrap().date_of_birth =
            NaiveDate::from_ymd_opt(2030, 1, 1);
        r.retain_until = NaiveDate::from_ymd_opt(2000, 1, 1);
        assert_eq!(
            fields(&r),
            ["subject.demographics.date_of_birth", "retain_until"]
        );
    }

    #[test]
    fn duplicate_purposes_and_bad_hashes_are_refused() {
        let mut r = sample();
        r.permitted_purposes = vec![Purpose::DirectCare, Purpose::DirectCare];
        r.provenance.content_hash = "ABC".into();
        assert_eq!(
            fields(&r),
            ["permitted_purposes", "provenance.content_hash"]
        );
    }

    #[test]
    fn a_source_line_without_sensitivity_is_refused_not_taken_as_normal() {
        let mut line = serde_json::to_value(sample()).unwrap();
        line.as_object_mut().unwrap().remove("sensitivity");
        let err = serde_json::from_value::<Record>(line).unwrap_err();
        assert!(
            err.to_string().contains("missing field `sensitivity`"),
            "{err}"
        );
    }

    #[test]
    fn postcodes_with_and_without_the_space() {
        for ok in ["M1 1AE", "m11ae", "SW1A 1AA", "EC1A1BB", "B33 8TH"] {
            assert!(is_uk_postcode(ok), "{ok}");
        }
        for bad in ["", "12345", "M1", "SW1A 1A", "ABCDEFG"] {
            assert!(!is_uk_postcode(bad), "{bad}");
        }
    }

    #[test]
    fn content_hash_ignores_its_own_field_and_sees_every_other() {
        let mut a = sample();
        let before = a.content_hash();
        a.seal();
        assert_eq!(a.content_hash(), before, "sealing must not change the hash");
        a.key_worker.phone = "0161 000 0001".into();
        assert_ne!(a.content_hash(), before);
    }
}
