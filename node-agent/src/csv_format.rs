//! The flat CSV source format and its mapping onto a [`Record`].
//!
//! Many source systems can export a spreadsheet but not nested JSON, so the
//! agent also takes one record per CSV row. The header names the columns; any
//! order works, optional columns may be left out, and a column the agent does
//! not know rejects the whole file (a misspelt column would otherwise be
//! silently dropped). Each cell is parsed on its own and every failure is
//! reported against the record field it feeds, e.g. `subject.nhs_number`.

use std::collections::HashMap;

use chrono::NaiveDate;
use kith_core::error::FieldError;
use kith_core::{
    Article6Basis, Article9Condition, Contact, Demographics, LawfulBasis, LocalId, NhsNumber,
    Period, Provenance, Purpose, Record, RelationshipType, Residency, Sensitivity, Subject,
};

/// Every column the agent knows, in the documented order.
pub const COLUMNS: &[&str] = &[
    "record_id",
    "version",
    "custodian",
    "nhs_number",
    "local_id_system",
    "local_id_value",
    "given_name",
    "family_name",
    "date_of_birth",
    "postcode",
    "relationship_type",
    "service",
    "period_start",
    "period_end",
    "key_worker_name",
    "key_worker_role",
    "key_worker_phone",
    "key_worker_email",
    "out_of_hours_phone",
    "sensitivity",
    "security_labels",
    "lawful_basis_article6",
    "lawful_basis_article9",
    "statute",
    "permitted_purposes",
    "residency",
    "source_system",
    "retain_until",
];

/// Columns a file must have (a record cannot be built without them).
pub const REQUIRED_COLUMNS: &[&str] = &[
    "record_id",
    "version",
    "relationship_type",
    "period_start",
    "sensitivity",
    "lawful_basis_article6",
    "permitted_purposes",
    "residency",
];

/// A header the agent cannot use: the whole file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("unknown column(s) {unknown:?}; known columns are: {known}", known = COLUMNS.join(", "))]
    Unknown { unknown: Vec<String> },
    #[error("missing required column(s) {0:?}")]
    Missing(Vec<String>),
    #[error("column {0:?} appears more than once")]
    Duplicate(String),
}

/// Where each known column is in this file.
#[derive(Debug, Clone)]
pub struct CsvHeader {
    index: HashMap<&'static str, usize>,
}

impl CsvHeader {
    /// Checks a header row.
    pub fn parse(header: &csv::StringRecord) -> Result<Self, HeaderError> {
        let mut index = HashMap::new();
        let mut unknown = Vec::new();
        for (i, raw) in header.iter().enumerate() {
            let name = raw.trim().to_ascii_lowercase();
            match COLUMNS.iter().find(|c| **c == name) {
                Some(column) => {
                    if index.insert(*column, i).is_some() {
                        return Err(HeaderError::Duplicate(name));
                    }
                }
                None => unknown.push(raw.to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(HeaderError::Unknown { unknown });
        }
        let missing: Vec<String> = REQUIRED_COLUMNS
            .iter()
            .filter(|c| !index.contains_key(**c))
            .map(|c| c.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(HeaderError::Missing(missing));
        }
        Ok(Self { index })
    }

    fn cell<'a>(&self, row: &'a csv::StringRecord, column: &str) -> &'a str {
        self.index
            .get(column)
            .and_then(|i| row.get(*i))
            .map(str::trim)
            .unwrap_or("")
    }

    /// The row's record id, if it has one (for reports).
    pub fn record_id(&self, row: &csv::StringRecord) -> Option<String> {
        Some(self.cell(row, "record_id").to_string()).filter(|s| !s.is_empty())
    }

    /// Builds a record from a row, or lists every cell that fails to parse.
    /// Rules beyond parsing are left to [`Record::validate`].
    pub fn record(&self, row: &csv::StringRecord) -> Result<Record, Vec<FieldError>> {
        let mut errors = Vec::new();
        let cell = |column: &str| self.cell(row, column);

        let version = match cell("version").parse::<u64>() {
            Ok(v) => v,
            Err(_) => {
                let reason = if cell("version").is_empty() {
                    "is required".to_string()
                } else {
                    format!("{:?} is not a whole number", cell("version"))
                };
                errors.push(FieldError::new("version", reason));
                0
            }
        };

        let nhs_number = optional(&mut errors, "subject.nhs_number", cell("nhs_number"), |s| {
            s.parse::<NhsNumber>().map_err(|e| e.to_string())
        });

        let mut local_ids = Vec::new();
        match (cell("local_id_system"), cell("local_id_value")) {
            ("", "") => {}
            (system, value) if !system.is_empty() && !value.is_empty() => local_ids.push(LocalId {
                system: system.to_string(),
                value: value.to_string(),
            }),
            _ => errors.push(FieldError::new(
                "subject.local_ids[0]",
                "local_id_system and local_id_value go together: give both or neither",
            )),
        }

        let date_of_birth = optional_date(
            &mut errors,
            "subject.demographics.date_of_birth",
            cell("date_of_birth"),
        );
        let demographics = [
            cell("given_name"),
            cell("family_name"),
            cell("date_of_birth"),
            cell("postcode"),
        ]
        .iter()
        .any(|c| !c.is_empty())
        .then(|| Demographics {
            given_name: cell("given_name").to_string(),
            family_name: cell("family_name").to_string(),
            date_of_birth,
            postcode: cell("postcode").to_string(),
        });

        let relationship_type = required(
            &mut errors,
            "relationship_type",
            cell("relationship_type"),
            |s| s.parse::<RelationshipType>().map_err(|e| e.to_string()),
        );
        let start = required(
            &mut errors,
            "period.start",
            cell("period_start"),
            parse_date,
        );
        let end = optional_date(&mut errors, "period.end", cell("period_end"));
        // Required: guessing `normal` for an empty cell would fail open.
        let sensitivity = required(&mut errors, "sensitivity", cell("sensitivity"), |s| {
            s.parse::<Sensitivity>().map_err(|e| e.to_string())
        });
        let article6 = required(
            &mut errors,
            "lawful_basis.article6",
            cell("lawful_basis_article6"),
            |s| s.parse::<Article6Basis>().map_err(|e| e.to_string()),
        );
        let article9 = optional(
            &mut errors,
            "lawful_basis.article9",
            cell("lawful_basis_article9"),
            |s| s.parse::<Article9Condition>().map_err(|e| e.to_string()),
        );
        let mut permitted_purposes = Vec::new();
        for (i, p) in split_list(cell("permitted_purposes")).enumerate() {
            match p.parse::<Purpose>() {
                Ok(p) => permitted_purposes.push(p),
                Err(e) => errors.push(FieldError::new(
                    format!("permitted_purposes[{i}]"),
                    e.to_string(),
                )),
            }
        }
        let residency = required(&mut errors, "residency", cell("residency"), |s| {
            s.parse::<Residency>().map_err(|e| e.to_string())
        });
        let retain_until = optional_date(&mut errors, "retain_until", cell("retain_until"));

        let (
            Some(relationship_type),
            Some(start),
            Some(sensitivity),
            Some(article6),
            Some(residency),
        ) = (relationship_type, start, sensitivity, article6, residency)
        else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Record {
            record_id: cell("record_id").to_string(),
            version,
            custodian: cell("custodian").to_string(),
            subject: Subject {
                nhs_number,
                local_ids,
                demographics,
            },
            relationship_type,
            service: cell("service").to_string(),
            period: Period { start, end },
            key_worker: Contact {
                name: cell("key_worker_name").to_string(),
                role: cell("key_worker_role").to_string(),
                phone: cell("key_worker_phone").to_string(),
                email: cell("key_worker_email").to_string(),
            },
            out_of_hours: Contact {
                phone: cell("out_of_hours_phone").to_string(),
                ..Contact::default()
            },
            sensitivity,
            security_labels: split_list(cell("security_labels"))
                .map(str::to_string)
                .collect(),
            lawful_basis: LawfulBasis {
                article6,
                article9,
                statute: cell("statute").to_string(),
            },
            permitted_purposes,
            residency,
            provenance: Provenance {
                source_system: cell("source_system").to_string(),
                content_hash: String::new(),
            },
            retain_until,
        })
    }
}

/// `a;b; c` → `["a", "b", "c"]`, skipping empty items.
fn split_list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(';').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

fn optional_date(errors: &mut Vec<FieldError>, field: &str, cell: &str) -> Option<NaiveDate> {
    optional(errors, field, cell, parse_date)
}

fn optional<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    cell: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    if cell.is_empty() {
        return None;
    }
    match parse(cell) {
        Ok(v) => Some(v),
        Err(reason) => {
            errors.push(FieldError::new(field, reason));
            None
        }
    }
}

fn required<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    cell: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    if cell.is_empty() {
        errors.push(FieldError::new(field, "is required"));
        return None;
    }
    optional(errors, field, cell, parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &[&str]) -> Result<CsvHeader, HeaderError> {
        CsvHeader::parse(&csv::StringRecord::from(cols.to_vec()))
    }

    #[test]
    fn unknown_and_missing_columns_are_named() {
        let mut cols = REQUIRED_COLUMNS.to_vec();
        cols.push("favourite_colour");
        assert_eq!(
            header(&cols).unwrap_err(),
            HeaderError::Unknown {
                unknown: vec!["favourite_colour".into()]
            }
        );
        let err = header(&["record_id", "version"]).unwrap_err();
        assert!(
            matches!(&err, HeaderError::Missing(m) if m.contains(&"residency".to_string())),
            "{err}"
        );
    }

    #[test]
    fn a_row_maps_onto_the_record() {
        let h = header(COLUMNS).unwrap();
        let mut cells = vec![""; COLUMNS.len()];
        let set = |cells: &mut Vec<&'static str>, c: &str, v: &'static str| {
            cells[COLUMNS.iter().position(|x| *x == c).unwrap()] = v
        };
        set(&mut cells, "record_id", "r-1");
        set(&mut cells, "version", "3");
        set(&mut cells, "nhs_number", "943 476 5919");
        set(&mut cells, "relationship_type", "mental_health");
        set(&mut cells, "period_start", "2025-02-01");
        set(&mut cells, "lawful_basis_article6", "public_task");
        set(&mut cells, "permitted_purposes", "direct_care; emergency");
        set(&mut cells, "residency", "uk");
        set(&mut cells, "out_of_hours_phone", "0300 000 0000");
        let without_sensitivity = h.record(&csv::StringRecord::from(cells.clone()));
        assert!(
            matches!(&without_sensitivity, Err(e) if e.iter().any(|e| e.field == "sensitivity" && e.reason == "is required")),
            "{without_sensitivity:?}"
        );
        set(&mut cells, "sensitivity", "normal");
        let r = h.record(&csv::StringRecord::from(cells)).unwrap();
        assert_eq!(r.version, 3);
        assert_eq!(r.subject.nhs_number.unwrap().as_digits(), "9434765919");
        assert_eq!(
            r.permitted_purposes,
            [Purpose::DirectCare, Purpose::Emergency]
        );
        assert_eq!(r.out_of_hours.phone, "0300 000 0000");
        assert_eq!(r.sensitivity, Sensitivity::Normal);
        assert!(r.subject.demographics.is_none());
    }
}
