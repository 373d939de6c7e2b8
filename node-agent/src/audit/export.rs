//! `audit export`: the entries an auditor may read, for other tools.
//!
//! Two formats, one item per line:
//!
//! - `jsonl` (default): `{"index":N,"leaf_hash":"<hex>","entry_base64":"<exact
//!   bytes>","entry":{...}}`. `entry_base64` is exactly what the leaf hash
//!   commits to, so any RFC 9162 implementation recomputes the root:
//!   `SHA-256(0x00 || base64decode(entry_base64))` per line, then the Merkle
//!   tree hash. `entry` is the same entry parsed, for convenience (left out if
//!   the bytes are not JSON). A withheld entry is `{"index":N,"leaf_hash":"<hex>"}`.
//! - `fhir`: one FHIR R4 `AuditEvent` per visible entry ([`super::fhir`]).
//!
//! The export is taken against the latest checkpoint, whose signature is
//! checked first; the summary carries that signed note so the export and the
//! note can be checked together later.

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;

use super::client::AuditClient;
use super::entry::LogEntry;
use super::search::SearchFilter;
use super::trust::{self, VerifiedCheckpoint};
use super::{AuditError, Auditor};
use crate::config::AgentConfig;

/// The export format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportFormat {
    /// JSON Lines with index, leaf hash and exact entry bytes.
    #[default]
    Jsonl,
    /// FHIR R4 AuditEvent, one per line.
    Fhir,
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "fhir" => Ok(ExportFormat::Fhir),
            other => Err(format!("unknown format {other:?} (expected jsonl or fhir)")),
        }
    }
}

/// What to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    pub format: ExportFormat,
    /// First index (default 0).
    pub from: Option<u64>,
    /// End index, exclusive (default: the checkpoint's tree size).
    pub to: Option<u64>,
    /// The log's vkey file (else the config's, else the hub's own).
    pub vkey: Option<PathBuf>,
}

/// What was exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The checkpoint the export was read against.
    pub checkpoint: VerifiedCheckpoint,
    pub from: u64,
    pub to: u64,
    /// Lines written.
    pub written: u64,
    /// Entries withheld from this auditor (hash-only lines in `jsonl`, left
    /// out in `fhir`).
    pub withheld: u64,
}

/// One `jsonl` line, in the order the fields are documented.
#[derive(Debug, Serialize)]
struct JsonlLine {
    index: u64,
    leaf_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<Value>,
}

/// The `jsonl` line (without its newline) for one entry.
pub fn jsonl_line(e: &LogEntry) -> String {
    let line = JsonlLine {
        index: e.index,
        leaf_hash: e.leaf_hash_hex(),
        entry_base64: e.entry.as_ref().map(|b| STANDARD.encode(b)),
        entry: e
            .entry
            .as_ref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok()),
    };
    serde_json::to_string(&line).expect("a line serialises")
}

/// Writes `entries` to `out` in `format`, one line each, and returns
/// (lines written, entries withheld). With a `filter`, only the entries it
/// matches are written (a withheld entry matches no filter, so none is
/// written); without one, every entry (`jsonl` gives a withheld entry as
/// its leaf hash alone, `fhir` leaves it out). The command line and the
/// console's export both write through here.
pub fn write_lines(
    entries: &[LogEntry],
    format: ExportFormat,
    filter: Option<&SearchFilter>,
    out: &mut dyn Write,
) -> std::io::Result<(u64, u64)> {
    let mut written = 0;
    let mut withheld = 0;
    for e in entries {
        if e.entry.is_none() {
            withheld += 1;
        }
        if let Some(filter) = filter
            && !e.view().is_some_and(|v| filter.matches(&v))
        {
            continue;
        }
        let line = match format {
            ExportFormat::Jsonl => Some(jsonl_line(e)),
            ExportFormat::Fhir => e
                .view()
                .map(|v| super::fhir::audit_event(e.index, &v).to_string()),
        };
        if let Some(line) = line {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    Ok((written, withheld))
}

/// Writes entries `from .. to` of the latest checkpoint to `out`.
pub async fn export(
    config: &AgentConfig,
    auditor: Auditor,
    options: &ExportOptions,
    out: &mut dyn Write,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<ExportSummary, AuditError> {
    let trusted = trust::trusted_key(config, options.vkey.as_deref())?;
    let mut client = AuditClient::connect(config, auditor).await?;
    let checkpoint = trust::fetch(&mut client, trusted.as_ref()).await?;
    let from = options.from.unwrap_or(0);
    let to = options
        .to
        .unwrap_or(checkpoint.tree_size)
        .min(checkpoint.tree_size);
    if from > to {
        return Err(AuditError::Invalid(format!(
            "--from {from} is beyond --to {to} (the checkpoint covers {} entries)",
            checkpoint.tree_size
        )));
    }
    let entries = client.entries(from, to, progress).await?;
    let io = |source| AuditError::Io {
        path: PathBuf::from("(export output)"),
        source,
    };
    let (written, withheld) = write_lines(&entries, options.format, None, out).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(ExportSummary {
        checkpoint,
        from,
        to,
        written,
        withheld,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_tlog::leaf_hash;

    #[test]
    fn a_line_carries_the_exact_bytes_and_a_withheld_one_only_its_hash() {
        let bytes = br#"{"kind":"query"}"#.to_vec();
        let e = LogEntry {
            index: 4,
            leaf_hash: leaf_hash(&bytes),
            entry: Some(bytes.clone()),
        };
        let text = jsonl_line(&e);
        assert!(text.starts_with(r#"{"index":4,"leaf_hash":""#), "{text}");
        let line: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            STANDARD
                .decode(line["entry_base64"].as_str().unwrap())
                .unwrap(),
            bytes
        );
        assert_eq!(line["entry"]["kind"], "query");
        let mut out = Vec::new();
        let withheld = LogEntry {
            index: 5,
            leaf_hash: [1; 32],
            entry: None,
        };
        let both = [e.clone(), withheld.clone()];
        assert_eq!(
            write_lines(&both, ExportFormat::Jsonl, None, &mut out).unwrap(),
            (2, 1)
        );
        let publish = SearchFilter {
            kind: Some("publish".into()),
            ..Default::default()
        };
        assert_eq!(
            write_lines(&both, ExportFormat::Jsonl, Some(&publish), &mut Vec::new()).unwrap(),
            (0, 1),
            "a filter matches neither the query nor the withheld entry"
        );
        let mut fhir = Vec::new();
        let query = SearchFilter {
            kind: Some("query".into()),
            ..Default::default()
        };
        assert_eq!(
            write_lines(&both, ExportFormat::Fhir, Some(&query), &mut fhir).unwrap(),
            (1, 1)
        );
        let event: Value = serde_json::from_slice(fhir.trim_ascii_end()).unwrap();
        assert_eq!(event["resourceType"], "AuditEvent");
        let hidden = jsonl_line(&LogEntry { entry: None, ..e });
        assert_eq!(
            hidden,
            format!(
                r#"{{"index":4,"leaf_hash":"{}"}}"#,
                hex::encode(leaf_hash(&bytes))
            )
        );
    }
}
