//! `audit subject-report`: who looked a person up, for a subject access
//! request.
//!
//! For one NHS number, every query about that person the auditor may read:
//! when, which authority, user and role, for what purpose, which records
//! were decided at which level, and the policies that decided — agreement
//! policies are named `<agreement>.<level>`, so the agreement the access
//! rested on is read from them. Entries withheld from the auditor cannot be
//! read and are counted: a complete report for a person needs a federation
//! auditor, or each custodian's auditor in turn.

use std::fmt::Write as _;
use std::path::Path;

use kith_core::NhsNumber;
use serde::Serialize;

use super::client::read_log;
use super::entry::{AuditKind, AuditedRecord, LogEntry};
use super::trust::VerifiedCheckpoint;
use super::{AuditError, Auditor};
use crate::config::AgentConfig;
use crate::table::table;
use crate::terminal::escape;

/// One access to the person's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// The audit entry's index.
    pub index: u64,
    pub at: String,
    pub authority: String,
    pub user: String,
    pub role: String,
    pub purpose: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    pub break_glass: bool,
    /// Each record and the level decided for it.
    pub records: Vec<AuditedRecord>,
    /// The agreements whose policies decided any record.
    pub agreements: Vec<String>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectReport {
    pub nhs_number: String,
    /// The tree size read up to.
    pub tree_size: u64,
    /// Entries withheld from this auditor (not searched).
    pub withheld: u64,
    pub accesses: Vec<Access>,
}

/// Builds the report for `nhs` (digits) from entries already read.
///
/// A custodian's auditor sees another authority's query that reached its
/// records through its `access` entry (naming only its own records); where
/// the `query` entry is visible too, the `access` entries of the same query
/// are not counted again, and the records they name that the query entry
/// leaves out (other custodians' records the querier was not shown) are
/// added to it.
pub fn report_from(nhs: &str, tree_size: u64, entries: &[LogEntry]) -> SubjectReport {
    let about: Vec<_> = entries
        .iter()
        .filter_map(|e| Some((e.index, e.view()?)))
        .filter(|(_, v)| {
            (v.kind == AuditKind::Query || v.kind == AuditKind::Access)
                && v.subject.as_deref() == Some(nhs)
        })
        .collect();
    let whole: std::collections::HashSet<Option<String>> = about
        .iter()
        .filter(|(_, v)| v.kind == AuditKind::Query)
        .map(|(_, v)| v.query_id.clone())
        .collect();
    let mut shares: std::collections::HashMap<Option<String>, Vec<AuditedRecord>> =
        std::collections::HashMap::new();
    for (_, v) in &about {
        if v.kind == AuditKind::Access && whole.contains(&v.query_id) {
            shares
                .entry(v.query_id.clone())
                .or_default()
                .extend(v.records.iter().cloned());
        }
    }
    let accesses = about
        .into_iter()
        .filter(|(_, v)| v.kind == AuditKind::Query || !whole.contains(&v.query_id))
        .map(|(index, mut v)| {
            if v.kind == AuditKind::Query
                && let Some(extra) = shares.get(&v.query_id)
            {
                for r in extra {
                    if !v
                        .records
                        .iter()
                        .any(|x| x.custodian == r.custodian && x.record_id == r.record_id)
                    {
                        v.records.push(r.clone());
                    }
                }
            }
            (index, v)
        })
        .map(|(index, v)| Access {
            index,
            break_glass: v.is_break_glass(),
            agreements: v.agreements(),
            at: v.at,
            authority: v.authority,
            user: v.user.unwrap_or_default(),
            role: v.role.unwrap_or_default(),
            purpose: v.purpose.unwrap_or_default(),
            outcome: v.outcome,
            query_id: v.query_id,
            records: v.records,
        })
        .collect();
    SubjectReport {
        nhs_number: nhs.to_string(),
        tree_size,
        withheld: entries.iter().filter(|e| e.entry.is_none()).count() as u64,
        accesses,
    }
}

/// `audit subject-report`: reads the log and reports on one person.
pub async fn subject_report(
    config: &AgentConfig,
    auditor: Auditor,
    nhs_number: &str,
    vkey: Option<&Path>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(VerifiedCheckpoint, SubjectReport), AuditError> {
    let nhs: NhsNumber = nhs_number
        .parse()
        .map_err(|e| AuditError::Invalid(format!("NHS number {nhs_number:?}: {e}")))?;
    let (checkpoint, entries) = read_log(config, auditor, vkey, progress).await?;
    let report = report_from(&nhs.as_digits(), checkpoint.tree_size, &entries);
    Ok((checkpoint, report))
}

impl SubjectReport {
    /// The report as a table for people.
    pub fn render_table(&self) -> String {
        let mut out = format!(
            "Accesses to the records of NHS number {} (audit log up to entry {})\n\n",
            escape(&self.nhs_number),
            self.tree_size.saturating_sub(1)
        );
        let rows: Vec<Vec<String>> = self
            .accesses
            .iter()
            .map(|a| {
                let records: Vec<String> = a
                    .records
                    .iter()
                    .map(|r| format!("{}/{}: {}", r.custodian, r.record_id, r.decision))
                    .collect();
                let policies: Vec<&str> = a
                    .records
                    .iter()
                    .flat_map(|r| &r.decided_by)
                    .map(String::as_str)
                    .collect();
                let mut purpose = a.purpose.clone();
                if a.break_glass {
                    purpose.push_str(" (BREAK GLASS)");
                }
                vec![
                    a.at.clone(),
                    a.authority.clone(),
                    a.user.clone(),
                    a.role.clone(),
                    purpose,
                    if records.is_empty() {
                        "(no records)".into()
                    } else {
                        records.join("; ")
                    },
                    if a.agreements.is_empty() {
                        "-".into()
                    } else {
                        a.agreements.join(", ")
                    },
                    if policies.is_empty() {
                        "-".into()
                    } else {
                        policies.join(" ")
                    },
                    a.index.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "WHEN",
                "AUTHORITY",
                "USER",
                "ROLE",
                "PURPOSE",
                "RECORDS: LEVEL",
                "AGREEMENT",
                "DECIDED BY",
                "ENTRY",
            ],
            &rows,
        ));
        if self.accesses.is_empty() {
            out.push_str("(no queries about this person that you may read)\n");
        }
        if self.withheld > 0 {
            let _ = writeln!(
                out,
                "\n{} entries are outside your audit scope and were not read; a complete report \
                 needs a federation auditor or each custodian's auditor",
                self.withheld
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_tlog::leaf_hash;

    fn entry(index: u64, json: &str) -> LogEntry {
        LogEntry {
            index,
            leaf_hash: leaf_hash(json.as_bytes()),
            entry: Some(json.as_bytes().to_vec()),
        }
    }

    #[test]
    fn only_queries_about_the_person_are_reported_with_their_agreements() {
        let entries = [
            entry(
                0,
                r#"{"kind":"query","at":"t0","authority":"B","user":"u1","role":"social_worker",
                    "purpose":"safeguarding","subject":"9434765919","outcome":"ok",
                    "records":[{"custodian":"A","record_id":"cpp-1","version":1,"decision":"detail",
                                "decided_by":["children-safeguarding.detail"]}]}"#,
            ),
            entry(1, r#"{"kind":"query","subject":"9999999999"}"#),
            entry(2, r#"{"kind":"publish","subject":"9434765919"}"#),
            LogEntry {
                index: 3,
                leaf_hash: [0; 32],
                entry: None,
            },
        ];
        let r = report_from("9434765919", 4, &entries);
        assert_eq!(r.accesses.len(), 1);
        assert_eq!(r.withheld, 1);
        let a = &r.accesses[0];
        assert_eq!(
            (a.purpose.as_str(), a.role.as_str()),
            ("safeguarding", "social_worker")
        );
        assert_eq!(a.agreements, ["children-safeguarding"]);
        let table = r.render_table();
        assert!(table.contains("A/cpp-1: detail"), "{table}");
        assert!(table.contains("outside your audit scope"), "{table}");
    }

    #[test]
    fn a_custodians_share_of_a_query_counts_once() {
        let q = |kind: &str, id: &str| {
            format!(
                r#"{{"kind":"{kind}","at":"t0","authority":"B","subject":"9434765919","outcome":"ok","query_id":"{id}"}}"#
            )
        };
        // A custodian's auditor sees only its share of q1; a federation
        // auditor sees q2 whole and its shares.
        let entries = [
            entry(0, &q("access", "q1")),
            entry(1, &q("query", "q2")),
            entry(2, &q("access", "q2")),
            entry(3, &q("access", "q2")),
        ];
        let r = report_from("9434765919", 4, &entries);
        let ids: Vec<_> = r
            .accesses
            .iter()
            .map(|a| a.query_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["q1", "q2"]);
    }

    #[test]
    fn a_federation_auditor_sees_the_records_a_query_entry_leaves_to_the_shares() {
        // The query entry names what B was shown; C's hidden record is in
        // C's share only.
        let entries = [
            entry(
                0,
                r#"{"kind":"query","at":"t0","authority":"B","subject":"9434765919","outcome":"ok","query_id":"q1",
                    "records":[{"custodian":"A","record_id":"cpp-1","version":1,"decision":"detail"}]}"#,
            ),
            entry(
                1,
                r#"{"kind":"access","at":"t0","authority":"B","subject":"9434765919","outcome":"ok","query_id":"q1",
                    "records":[{"custodian":"A","record_id":"cpp-1","version":1,"decision":"detail"}]}"#,
            ),
            entry(
                2,
                r#"{"kind":"access","at":"t0","authority":"B","subject":"9434765919","outcome":"ok","query_id":"q1",
                    "records":[{"custodian":"C","record_id":"mh-1","version":1,"decision":"hidden"}]}"#,
            ),
        ];
        let r = report_from("9434765919", 3, &entries);
        assert_eq!(r.accesses.len(), 1);
        let levels: Vec<_> = r.accesses[0]
            .records
            .iter()
            .map(|x| (x.record_id.as_str(), x.decision.as_str()))
            .collect();
        assert_eq!(levels, [("cpp-1", "detail"), ("mh-1", "hidden")]);
    }
}
