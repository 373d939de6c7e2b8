//! `audit search`: the entries an auditor may read, filtered.
//!
//! Every filter given must match (they combine with AND). Searching is done
//! here, over the entries the hub lets this auditor read, up to the latest
//! checkpoint; withheld entries cannot match and are counted so the auditor
//! knows the answer covers only their scope.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::client::read_log;
use super::entry::{AuditEntry, LogEntry};
use super::trust::VerifiedCheckpoint;
use super::{AuditError, Auditor};
use crate::config::AgentConfig;
use crate::table::table;

/// What to look for. Empty filters match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// The NHS number asked about (spaces ignored).
    pub subject: Option<String>,
    /// The acting user.
    pub user: Option<String>,
    /// The acting authority.
    pub authority: Option<String>,
    /// An authority whose record the entry names.
    pub custodian: Option<String>,
    pub purpose: Option<String>,
    /// The entry's outcome (`ok`, `refused`) or any record's decision
    /// (`detail`, `summary`, `withheld`, `hidden`, `accepted`, ...).
    pub decision: Option<String>,
    /// `publish`, `end`, `withdraw`, `query`, `refusal`, `audit_read`.
    pub kind: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// At or before.
    pub to: Option<DateTime<Utc>>,
    /// Only break-glass accesses.
    pub break_glass: bool,
}

impl SearchFilter {
    /// Whether `e` passes every filter given.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        let subject = self
            .subject
            .as_ref()
            .map(|s| s.chars().filter(|c| !c.is_whitespace()).collect::<String>());
        if !(eq(&subject, e.subject.as_deref())
            && eq(&self.user, e.user.as_deref())
            && eq(&self.authority, Some(&e.authority))
            && eq(&self.purpose, e.purpose.as_deref())
            && eq(&self.kind, Some(e.kind.as_str())))
        {
            return false;
        }
        if let Some(c) = &self.custodian
            && !e.records.iter().any(|r| &r.custodian == c)
        {
            return false;
        }
        if let Some(d) = &self.decision
            && &e.outcome != d
            && !e.records.iter().any(|r| &r.decision == d)
        {
            return false;
        }
        if self.break_glass && !e.is_break_glass() {
            return false;
        }
        if self.from.is_some() || self.to.is_some() {
            let Ok(at) = DateTime::parse_from_rfc3339(&e.at) else {
                return false;
            };
            let at = at.with_timezone(&Utc);
            if self.from.is_some_and(|f| at < f) || self.to.is_some_and(|t| at > t) {
                return false;
            }
        }
        true
    }
}

/// One matching entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    pub index: u64,
    pub entry: AuditEntry,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchResult {
    /// The tree size searched up to.
    pub tree_size: u64,
    /// Entries this auditor could read.
    pub visible: u64,
    /// Entries withheld from this auditor (not searched).
    pub withheld: u64,
    pub hits: Vec<Hit>,
}

/// Applies `filter` to entries already read.
pub fn filter_entries(tree_size: u64, entries: &[LogEntry], filter: &SearchFilter) -> SearchResult {
    let withheld = entries.iter().filter(|e| e.entry.is_none()).count() as u64;
    let hits = entries
        .iter()
        .filter_map(|e| Some((e.index, e.view()?)))
        .filter(|(_, v)| filter.matches(v))
        .map(|(index, entry)| Hit { index, entry })
        .collect();
    SearchResult {
        tree_size,
        visible: entries.len() as u64 - withheld,
        withheld,
        hits,
    }
}

/// `audit search`: reads the log up to the latest checkpoint and filters it.
pub async fn search(
    config: &AgentConfig,
    auditor: Auditor,
    filter: &SearchFilter,
    vkey: Option<&Path>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(VerifiedCheckpoint, SearchResult), AuditError> {
    let (checkpoint, entries) = read_log(config, auditor, vkey, progress).await?;
    let result = filter_entries(checkpoint.tree_size, &entries, filter);
    Ok((checkpoint, result))
}

fn or_dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

impl SearchResult {
    /// The hits as a table for people.
    pub fn render_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .hits
            .iter()
            .map(|h| {
                let e = &h.entry;
                let decisions: Vec<String> = e
                    .records
                    .iter()
                    .map(|r| format!("{}/{}:{}", r.custodian, r.record_id, r.decision))
                    .collect();
                vec![
                    h.index.to_string(),
                    e.at.clone(),
                    e.kind.to_string(),
                    e.authority.clone(),
                    or_dash(e.user.as_deref()),
                    or_dash(e.role.as_deref()),
                    or_dash(e.purpose.as_deref()),
                    or_dash(e.subject.as_deref()),
                    e.outcome.clone(),
                    if decisions.is_empty() {
                        "-".into()
                    } else {
                        decisions.join(" ")
                    },
                ]
            })
            .collect();
        let mut out = table(
            &[
                "INDEX",
                "AT",
                "KIND",
                "AUTHORITY",
                "USER",
                "ROLE",
                "PURPOSE",
                "SUBJECT",
                "OUTCOME",
                "RECORDS",
            ],
            &rows,
        );
        let _ = writeln!(
            out,
            "\n{} matching of {} entries you may read, up to checkpoint size {}",
            self.hits.len(),
            self.visible,
            self.tree_size
        );
        if self.withheld > 0 {
            let _ = writeln!(
                out,
                "{} entries are outside your audit scope and were not searched",
                self.withheld
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: &str) -> AuditEntry {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_filter_given_must_match() {
        let e = view(
            r#"{"kind":"query","at":"2026-03-01T10:00:00.000Z","authority":"B","user":"u1",
                "purpose":"safeguarding","subject":"9990000018","outcome":"ok",
                "records":[{"custodian":"A","record_id":"r","decision":"withheld"}]}"#,
        );
        let mut f = SearchFilter {
            subject: Some("999 000 0018".into()),
            ..Default::default()
        };
        assert!(f.matches(&e));
        f.decision = Some("withheld".into());
        f.custodian = Some("A".into());
        assert!(f.matches(&e));
        f.from = Some("2026-03-01T10:00:00Z".parse().unwrap());
        f.to = Some("2026-03-02T00:00:00Z".parse().unwrap());
        assert!(f.matches(&e));
        f.to = Some("2026-03-01T09:00:00Z".parse().unwrap());
        assert!(!f.matches(&e));
        f.to = None;
        f.break_glass = true;
        assert!(!f.matches(&e));
        f.break_glass = false;
        f.authority = Some("A".into());
        assert!(!f.matches(&e));
    }
}
