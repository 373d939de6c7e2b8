//! The answer as a table for people: every field passed through
//! `terminal::escape`, since the text comes from other authorities.

use std::fmt::Write as _;

use super::QueryResponse;
use crate::table::table;
use crate::terminal::escape;

impl QueryResponse {
    /// The answer as a table for people.
    pub fn render_table(&self) -> String {
        let headers = [
            "AUTHORITY",
            "RELATIONSHIP",
            "SERVICE",
            "PERIOD",
            "KEY WORKER",
            "OUT OF HOURS",
            "LEVEL",
            "REASON",
        ];
        let dash = || "-".to_string();
        let rows: Vec<[String; 8]> = self
            .records
            .iter()
            .map(|r| {
                let period = match (&r.period_start, &r.period_end) {
                    (Some(s), Some(e)) => format!("{s} to {e}"),
                    (Some(s), None) => format!("since {s}"),
                    _ => dash(),
                };
                let key_worker = r.key_worker.as_ref().map_or_else(dash, |k| {
                    let mut parts = vec![k.name.as_str()];
                    if !k.phone.is_empty() {
                        parts.push(k.phone.as_str());
                    } else if !k.email.is_empty() {
                        parts.push(k.email.as_str());
                    }
                    parts.retain(|p| !p.is_empty());
                    parts.join(", ")
                });
                [
                    r.authority(),
                    r.relationship_type
                        .clone()
                        .map_or_else(dash, |t| t.replace('_', " ")),
                    if r.service.is_empty() {
                        dash()
                    } else {
                        r.service.clone()
                    },
                    period,
                    key_worker,
                    r.out_of_hours
                        .as_ref()
                        .map(|o| o.phone.clone())
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(dash),
                    r.level.clone(),
                    if r.reason.is_empty() {
                        dash()
                    } else {
                        r.reason.clone()
                    },
                ]
            })
            .collect();
        let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
        let mut out = String::new();
        if let Some(until) = &self.break_glass_until {
            let _ = writeln!(
                out,
                "BREAK GLASS: emergency access is open for you and this person until {}; it is audited and will be reviewed\n",
                escape(until)
            );
        }
        out.push_str(&table(&headers, &rows));
        if rows.is_empty() && self.candidates.is_empty() {
            let _ = writeln!(out, "(no records you may see)");
        } else if rows.is_empty() {
            let _ = writeln!(out, "(no certain match: see the possible matches below)");
        }
        // How the records shown were matched (not the candidates).
        if let Some(matched_by) = self.matched_by.as_ref().filter(|_| !rows.is_empty()) {
            let _ = writeln!(out, "matched by: {}", escape(&matched_by.replace('_', " ")));
        }
        if !self.candidates.is_empty() {
            let _ = writeln!(
                out,
                "\npossible matches (if one is the person, ask the same again with --confirm CANDIDATE_ID):"
            );
            out.push_str(&self.render_candidates());
        }
        if let Some(notice) = &self.notice {
            let _ = writeln!(out, "note: {}", escape(notice));
        }
        for s in self.authority_statuses.iter().filter(|s| s.state != "ok") {
            let _ = writeln!(
                out,
                "partial answer: {} was asked for detail it holds and is {} ({}); its summary is shown",
                escape(&s.authority),
                escape(&s.state),
                escape(&s.detail)
            );
        }
        let _ = writeln!(
            out,
            "\nquery {} via {}; audit entry {}",
            escape(&self.query_id),
            escape(&self.hub_address),
            self.audit_index
        );
        out
    }
}

impl QueryResponse {
    fn render_candidates(&self) -> String {
        let headers = [
            "CANDIDATE",
            "SCORE",
            "RULES",
            "AGREED",
            "DISAGREED",
            "AUTHORITY",
            "RELATIONSHIP",
            "LEVEL",
        ];
        let list = |fields: &[String]| {
            if fields.is_empty() {
                "-".to_string()
            } else {
                fields.join(", ")
            }
        };
        let rows: Vec<Vec<String>> = self
            .candidates
            .iter()
            .map(|c| {
                vec![
                    c.candidate_id.clone(),
                    format!("{:.1}", c.score),
                    c.rule_version.clone(),
                    list(&c.agreed),
                    list(&c.disagreed),
                    c.record.authority(),
                    c.record
                        .relationship_type
                        .as_deref()
                        .map_or_else(|| "-".into(), |t| t.replace('_', " ")),
                    c.record.level.clone(),
                ]
            })
            .collect();
        table(&headers, &rows)
    }
}
