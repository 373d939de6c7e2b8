//! Taking records in from source-system files.
//!
//! Source systems hand records to the agent by dropping files in the drop
//! folder: `*.jsonl` (one [`Record`] as JSON per line, the shape
//! `kith_core::Record` reads) or `*.csv` (see [`crate::csv_format`]). Each line
//! is parsed, given the agent's authority as custodian when it names none,
//! validated as the hub will validate it, and sealed with its content hash.
//! The valid lines of a file go into the outbox in one transaction; bad lines
//! never stop good ones, and each is reported with its line number, record id
//! and the failing fields.
//!
//! Sharing directives come the same way, in files named `*.directives.jsonl`:
//! one [`Directive`] as JSON per line, custodian filled in and checked as for
//! records, validated with `Directive::validate`, queued in the outbox's
//! directive table under the same rules. Within one scan, record files are
//! taken before directive files, so a directive dropped beside the record it
//! governs is queued (and so delivered) after it.
//!
//! ## The drop folder contract
//!
//! * Write the file under a temporary name (a name starting with `.`, or not
//!   ending in `.jsonl`/`.csv`, e.g. `today.jsonl.part`), then rename it. The
//!   agent only looks at `*.jsonl` and `*.csv` files not starting with `.`.
//! * As a second guard, a file is taken only once its size and modification
//!   time have stayed the same for one poll interval.
//! * Once taken, the file moves to `done/` inside the drop folder (with a
//!   timestamp added if a file or report of that name is already there), and
//!   its report is beside it as `done/<file>.report.json`. Files refused
//!   whole (not UTF-8, empty, unknown CSV column) go the same way, so a bad
//!   file is never retried in a loop.
//! * The steps are ordered so that a crash at any point is recovered at the
//!   next start, and a file never sits in `done/` without its report:
//!   1. the valid lines are enqueued (one transaction);
//!   2. the report, with the SHA-256 of the file's bytes
//!      (`content_sha256`), is written to a hidden temporary file in `done/`,
//!      flushed to disk, and renamed to `done/<file>.report.json`;
//!   3. the file is renamed into `done/`.
//!
//!   A crash before step 2 completes leaves the file in the drop folder: it
//!   is taken again, and since enqueueing is idempotent on id and version
//!   nothing is doubled (the new report counts those lines as already
//!   queued). A crash between steps 2 and 3 leaves a report in `done/` whose
//!   file is missing there: at its next start the watcher finds it, and the
//!   file of that name in the drop folder, if its bytes still have the
//!   reported hash, is moved beside its report without being read again.
//! * A line whose record id and version are already queued with different
//!   content is refused (field `version`): a correction needs a new version,
//!   as it would at the hub. The same holds for a directive's id and version.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, NaiveDate, Utc};
use kith_core::error::FieldError;
use kith_core::identity::AuthorityCode;
use kith_core::{Directive, Record};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::csv_format::CsvHeader;
use crate::outbox::{Outbox, OutboxError, Queued};
use crate::terminal::escape;

/// The folder, inside the drop folder, that taken files move to.
pub const DONE_DIR: &str = "done";

/// The name ending of a file of sharing directives.
pub const DIRECTIVES_SUFFIX: &str = ".directives.jsonl";

/// The source formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Records, one JSON object per line (`*.jsonl`).
    JsonLines,
    /// Records, one CSV row each (`*.csv`).
    Csv,
    /// Sharing directives, one JSON object per line (`*.directives.jsonl`).
    DirectiveLines,
}

impl SourceFormat {
    /// The format a file name announces, if any.
    pub fn of(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        // Subscriptions are not records: `ingest_subscriptions` takes them.
        if name.ends_with(crate::ingest_subscriptions::SUBSCRIPTIONS_SUFFIX) {
            return None;
        }
        if name.ends_with(DIRECTIVES_SUFFIX) {
            return Some(Self::DirectiveLines);
        }
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" => Some(Self::JsonLines),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// One line (or CSV row) that could not be taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: usize,
    /// The record's id, or, on a directive line, the id of the record it
    /// governs.
    pub record_id: Option<String>,
    /// On a directive line, the directive's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directive_id: Option<String>,
    pub errors: Vec<FieldError>,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    pub file: PathBuf,
    pub format: Option<SourceFormat>,
    /// Lines (or CSV rows) holding a record, blank lines not counted.
    pub records_read: usize,
    /// Valid records (written now, or already in the outbox).
    pub accepted: usize,
    /// Of those, newly written to the outbox.
    pub enqueued: usize,
    /// Of those, already in the outbox with the same id, version and content.
    pub duplicates: usize,
    /// Each refused line, in file order.
    pub rejected: Vec<LineError>,
    /// Set when the whole file was refused; nothing was enqueued.
    pub file_error: Option<String>,
    /// Where the file went, when it came from the drop folder.
    pub moved_to: Option<PathBuf>,
    /// Where this report was written, when it was.
    pub report_path: Option<PathBuf>,
    /// SHA-256 (hex) of the file's bytes, in a report written to `done/`:
    /// how an interrupted take is recognised at the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    pub finished_at: DateTime<Utc>,
}

impl IngestReport {
    fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            format: SourceFormat::of(file),
            records_read: 0,
            accepted: 0,
            enqueued: 0,
            duplicates: 0,
            rejected: Vec::new(),
            file_error: None,
            moved_to: None,
            report_path: None,
            content_sha256: None,
            finished_at: Utc::now(),
        }
    }

    /// True when every line was taken.
    pub fn is_clean(&self) -> bool {
        self.file_error.is_none() && self.rejected.is_empty()
    }

    /// A human-readable account: a summary line, then one line per refusal.
    /// Every field is escaped ([`crate::terminal::escape`]): a line's error
    /// can quote the line, and the line came from a source system.
    pub fn render(&self) -> String {
        let mut out = format!("{}: ", escape(&self.file.display().to_string()));
        if let Some(e) = &self.file_error {
            out.push_str(&format!("refused whole: {}\n", escape(e)));
        } else {
            out.push_str(&format!(
                "{} read, {} accepted ({} new, {} already queued), {} rejected\n",
                self.records_read,
                self.accepted,
                self.enqueued,
                self.duplicates,
                self.rejected.len()
            ));
        }
        for line in &self.rejected {
            let id = escape(line.record_id.as_deref().unwrap_or("?"));
            let what = match (&line.directive_id, self.format) {
                (Some(d), _) => format!("directive {}, record {id}", escape(d)),
                (None, Some(SourceFormat::DirectiveLines)) => format!("directive ?, record {id}"),
                (None, _) => format!("record {id}"),
            };
            out.push_str(&format!(
                "  line {} ({what}): {}\n",
                line.line,
                escape(&kith_core::error::join(&line.errors))
            ));
        }
        if let Some(p) = &self.moved_to {
            out.push_str(&format!(
                "  moved to {}\n",
                escape(&p.display().to_string())
            ));
        }
        if let Some(p) = &self.report_path {
            out.push_str(&format!("  report {}\n", escape(&p.display().to_string())));
        }
        out
    }

    fn log(&self) {
        if let Some(e) = &self.file_error {
            tracing::warn!(file = %self.file.display(), error = %e, "source file refused");
        } else if self.rejected.is_empty() {
            tracing::info!(file = %self.file.display(), read = self.records_read, enqueued = self.enqueued,
                duplicates = self.duplicates, "source file ingested");
        } else {
            tracing::warn!(file = %self.file.display(), read = self.records_read, enqueued = self.enqueued,
                duplicates = self.duplicates, rejected = self.rejected.len(),
                first = %self.rejected[0].errors.first().map(ToString::to_string).unwrap_or_default(),
                "source file ingested with rejected lines");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not a source file (expected a name ending in .jsonl, .csv or .directives.jsonl)")]
    UnknownFormat(PathBuf),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot move {from} to {to}: {source}")]
    Move {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write report {path}: {source}")]
    WriteReport {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The date records are validated against.
fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Reads one file and enqueues its valid records; the file stays where it
/// is. This is `kith-agent ingest FILE`.
pub async fn ingest_file(
    path: &Path,
    authority: &AuthorityCode,
    outbox: &Outbox,
) -> Result<IngestReport, IngestError> {
    ingest_file_as_of(path, authority, outbox, today()).await
}

/// Ingests `files` (what `kith-agent ingest FILE…` is given) in the order
/// that keeps directives behind their records: every record file first,
/// then the directive files, so a directive for a record in the same call
/// never reaches the hub before it. `on_report` sees each file's report as
/// it is done, so a long batch shows progress. A file that cannot be
/// ingested at all stops the batch and is named in the error.
pub async fn ingest_files(
    files: &[std::path::PathBuf],
    authority: &AuthorityCode,
    outbox: &Outbox,
    mut on_report: impl FnMut(&IngestReport),
) -> Result<Vec<IngestReport>, (std::path::PathBuf, IngestError)> {
    let mut files = files.to_vec();
    files.sort_by_key(|f| SourceFormat::of(f) == Some(SourceFormat::DirectiveLines));
    let mut reports = Vec::with_capacity(files.len());
    for file in files {
        let report = ingest_file(&file, authority, outbox)
            .await
            .map_err(|e| (file.clone(), e))?;
        on_report(&report);
        reports.push(report);
    }
    Ok(reports)
}

/// [`ingest_file`], validating as of `today`.
pub async fn ingest_file_as_of(
    path: &Path,
    authority: &AuthorityCode,
    outbox: &Outbox,
    today: NaiveDate,
) -> Result<IngestReport, IngestError> {
    let format =
        SourceFormat::of(path).ok_or_else(|| IngestError::UnknownFormat(path.to_path_buf()))?;
    let bytes = read(path).await?;
    ingest_bytes(path, format, &bytes, authority, outbox, today).await
}

async fn read(path: &Path) -> Result<Vec<u8>, IngestError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| IngestError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// [`ingest_file_as_of`] on bytes already read from `path`.
async fn ingest_bytes(
    path: &Path,
    format: SourceFormat,
    bytes: &[u8],
    authority: &AuthorityCode,
    outbox: &Outbox,
    today: NaiveDate,
) -> Result<IngestReport, IngestError> {
    if format == SourceFormat::DirectiveLines {
        let (lines, report) = parse_directive_lines(path, bytes, authority);
        return enqueue_lines(outbox, lines, report).await;
    }
    let (lines, report) = parse_source_lines(path, format, bytes, authority, today);
    enqueue_lines(outbox, lines, report).await
}

/// Enqueues the valid lines of a file and completes its report.
async fn enqueue_lines<T: SourceItem + Clone>(
    outbox: &Outbox,
    lines: Vec<(usize, T)>,
    mut report: IngestReport,
) -> Result<IngestReport, IngestError> {
    let items: Vec<T> = lines.iter().map(|(_, r)| r.clone()).collect();
    let summary = outbox.enqueue(&items).await?;
    report.enqueued = summary.enqueued;
    report.duplicates = summary.duplicates;
    // An id and version already taken with other content is the line's
    // fault: refuse it like any other bad line.
    for conflict in &summary.conflicts {
        let (line, item) = &lines[conflict.index];
        let (record_id, directive_id) = item.line_ids();
        report.rejected.push(LineError {
            line: *line,
            record_id,
            directive_id,
            errors: vec![FieldError::new("version", conflict.reason())],
        });
    }
    report.rejected.sort_by_key(|l| l.line);
    report.accepted -= summary.conflicts.len();
    report.finished_at = Utc::now();
    Ok(report)
}

/// Parses a file's bytes into valid, sealed records and a report of the rest.
/// Pure: touches neither the disk nor the outbox.
pub fn parse_source(
    path: &Path,
    format: SourceFormat,
    bytes: &[u8],
    authority: &AuthorityCode,
    today: NaiveDate,
) -> (Vec<Record>, IngestReport) {
    let (lines, report) = parse_source_lines(path, format, bytes, authority, today);
    (lines.into_iter().map(|(_, r)| r).collect(), report)
}

/// Parses a directives file's bytes (`*.directives.jsonl`) into valid
/// directives (custodian filled in) and a report of the rest. Pure, like
/// [`parse_source`]; `ingest_file` does this for a directives file.
pub fn parse_directive_source(
    path: &Path,
    bytes: &[u8],
    authority: &AuthorityCode,
) -> (Vec<Directive>, IngestReport) {
    let (lines, report) = parse_directive_lines(path, bytes, authority);
    (lines.into_iter().map(|(_, d)| d).collect(), report)
}

/// [`parse_source`], each record with its 1-based line number.
fn parse_source_lines(
    path: &Path,
    format: SourceFormat,
    bytes: &[u8],
    authority: &AuthorityCode,
    today: NaiveDate,
) -> (Vec<(usize, Record)>, IngestReport) {
    let mut report = IngestReport::new(path);
    report.format = Some(format);
    let Some(text) = source_text(bytes, &mut report) else {
        return (Vec::new(), report);
    };
    let parsed = match format {
        SourceFormat::Csv => match parse_csv(text) {
            Ok(rows) => rows,
            Err(e) => {
                report.file_error = Some(e);
                return (Vec::new(), report);
            }
        },
        _ => parse_json_lines(text),
    };
    let records = take_lines(parsed, &mut report, |r| accept(r, authority, today));
    (records, report)
}

/// Parses a directives file into valid directives (custodian filled in)
/// and a report of the rest. Pure.
fn parse_directive_lines(
    path: &Path,
    bytes: &[u8],
    authority: &AuthorityCode,
) -> (Vec<(usize, Directive)>, IngestReport) {
    let mut report = IngestReport::new(path);
    report.format = Some(SourceFormat::DirectiveLines);
    let Some(text) = source_text(bytes, &mut report) else {
        return (Vec::new(), report);
    };
    let parsed = parse_json_lines(text);
    let directives = take_lines(parsed, &mut report, |d| accept_directive(d, authority));
    (directives, report)
}

/// The file's text, without a byte-order mark; `None`, with the report's
/// `file_error` set, when it is not UTF-8 or holds nothing.
fn source_text<'a>(bytes: &'a [u8], report: &mut IngestReport) -> Option<&'a str> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            report.file_error = Some(format!(
                "not UTF-8 text: invalid byte at line {line}, byte offset {}; save the file as UTF-8",
                e.valid_up_to()
            ));
            return None;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        report.file_error = Some("file is empty".to_string());
        return None;
    }
    Some(text)
}

/// Checks each parsed line with `accept`; counts them in `report`, lists
/// the refused ones there and returns the rest with their line numbers.
fn take_lines<T>(
    parsed: Vec<ParsedLine<T>>,
    report: &mut IngestReport,
    accept: impl Fn(T) -> Result<T, Vec<FieldError>>,
) -> Vec<(usize, T)> {
    let mut taken = Vec::new();
    for line in parsed {
        report.records_read += 1;
        match line.item.and_then(&accept) {
            Ok(item) => taken.push((line.number, item)),
            Err(errors) => report.rejected.push(LineError {
                line: line.number,
                record_id: line.record_id,
                directive_id: line.directive_id,
                errors,
            }),
        }
    }
    report.accepted = taken.len();
    taken
}

/// One parsed line: the record (or directive), or why it did not parse.
struct ParsedLine<T> {
    number: usize,
    record_id: Option<String>,
    directive_id: Option<String>,
    item: Result<T, Vec<FieldError>>,
}

/// What a source line holds: a record or a directive.
trait SourceItem: Queued {
    /// The record id and directive id a refused line is reported under.
    fn line_ids(&self) -> (Option<String>, Option<String>);
}

impl SourceItem for Record {
    fn line_ids(&self) -> (Option<String>, Option<String>) {
        (Some(self.record_id.clone()), None)
    }
}

impl SourceItem for Directive {
    fn line_ids(&self) -> (Option<String>, Option<String>) {
        (
            Some(self.record_id.clone()),
            Some(self.directive_id.clone()),
        )
    }
}

fn parse_json_lines<T: SourceItem>(text: &str) -> Vec<ParsedLine<T>> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut de = serde_json::Deserializer::from_str(line);
        let item = serde_path_to_error::deserialize::<_, T>(&mut de)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                // Broken JSON is the line's fault; a bad value is its field's.
                // The line number is the report's; serde's own "line 1" (it
                // reads one line at a time) would only mislead.
                let error = if inner.is_syntax() || inner.is_eof() {
                    FieldError::new(
                        "(line)",
                        format!(
                            "not valid JSON: {} (column {})",
                            serde_message(&inner),
                            inner.column()
                        ),
                    )
                } else if path == "." || path.is_empty() {
                    // serde's path is empty for an unknown key `""` at the
                    // top: the line is at fault, not a field with no name.
                    FieldError::new("(line)", serde_message(&inner))
                } else {
                    FieldError::new(path, serde_message(&inner))
                };
                vec![error]
            })
            .and_then(|r| {
                de.end().map(|()| r).map_err(|e| {
                    vec![FieldError::new(
                        "(line)",
                        format!(
                            "text after the record at column {}: {}",
                            e.column(),
                            serde_message(&e)
                        ),
                    )]
                })
            });
        // The ids to report a refused line under, as far as the line says.
        let (record_id, directive_id) = match &item {
            Ok(item) => item.line_ids(),
            Err(_) => {
                let value = serde_json::from_str::<serde_json::Value>(line).ok();
                let id = |key: &str| {
                    value
                        .as_ref()
                        .and_then(|v| v.get(key)?.as_str().map(str::to_string))
                };
                (id("record_id"), id("directive_id"))
            }
        };
        lines.push(ParsedLine {
            number: i + 1,
            record_id,
            directive_id,
            item,
        });
    }
    lines
}

/// serde_json's message without the " at line L column C" it appends.
fn serde_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_string(),
        None => text,
    }
}

fn parse_csv(text: &str) -> Result<Vec<ParsedLine<Record>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("cannot read the CSV header: {e}"))?
        .clone();
    let header = CsvHeader::parse(&header).map_err(|e| format!("CSV header: {e}"))?;
    let mut lines = Vec::new();
    let mut row = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {
                if row.iter().all(|c| c.trim().is_empty()) {
                    continue;
                }
                let number = row.position().map_or(0, |p| line_at(text, p.byte()));
                lines.push(ParsedLine {
                    number,
                    record_id: header.record_id(&row),
                    directive_id: None,
                    item: header.record(&row),
                });
            }
            Err(e) => {
                let number = e.position().map_or(0, |p| line_at(text, p.byte()));
                let reason = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("row has {len} fields but the header has {expected_len}")
                    }
                    _ => e.to_string(),
                };
                lines.push(ParsedLine {
                    number,
                    record_id: None,
                    directive_id: None,
                    item: Err(vec![FieldError::new("(row)", reason)]),
                });
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    break;
                }
            }
        }
    }
    Ok(lines)
}

/// The 1-based line holding byte `byte`. (The csv crate's own line count
/// lags by one with CRLF line ends, which spreadsheets write; its byte offset
/// is right but may point at the `\n` ending the previous line.)
fn line_at(text: &str, byte: u64) -> usize {
    let end = usize::try_from(byte).map_or(text.len(), |b| (b + 1).min(text.len()));
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Fills in or checks the custodian, validates, and seals one record.
pub fn accept(
    mut record: Record,
    authority: &AuthorityCode,
    today: NaiveDate,
) -> Result<Record, Vec<FieldError>> {
    let mut errors = Vec::new();
    own_custodian(&mut record.custodian, authority, "records", &mut errors);
    if let Err(more) = record.validate(today) {
        errors.extend(more);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    record.seal();
    Ok(record)
}

/// Fills in or checks the custodian of a directive, and validates it.
pub fn accept_directive(
    mut directive: Directive,
    authority: &AuthorityCode,
) -> Result<Directive, Vec<FieldError>> {
    let mut errors = Vec::new();
    own_custodian(
        &mut directive.custodian,
        authority,
        "directives",
        &mut errors,
    );
    errors.extend(directive.validate().err().unwrap_or_default());
    if errors.is_empty() {
        Ok(directive)
    } else {
        Err(errors)
    }
}

/// Fills in an empty custodian with this agent's authority; refuses any
/// other (`what`: "records" or "directives", for the message).
fn own_custodian(
    custodian: &mut String,
    authority: &AuthorityCode,
    what: &str,
    errors: &mut Vec<FieldError>,
) {
    if custodian.is_empty() {
        *custodian = authority.as_str().to_string();
    } else if custodian != authority.as_str() {
        errors.push(FieldError::new(
            "custodian",
            format!(
                "is {custodian:?} but this agent publishes for {authority}; an authority publishes only its own {what}"
            ),
        ));
    }
}

/// The name ending of a report in `done/`.
pub const REPORT_SUFFIX: &str = ".report.json";

/// Where [`take_dropped_file_until`] stops, to stand for a crash at that
/// point in tests. Not for use outside tests.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAfter {
    /// After the lines are enqueued, before the report is written.
    Enqueue,
    /// After the report is in `done/`, before the file is moved there.
    Report,
}

/// A report in `done/` whose file never arrived there: a take interrupted
/// between writing the report and moving the file.
#[derive(Debug, Clone)]
pub struct PendingTake {
    /// Where the file goes: `done/<name>`, beside the report.
    pub target: PathBuf,
    pub report_path: PathBuf,
    pub report: IngestReport,
}

/// The interrupted takes in `done_dir`, by the name of the file in the drop
/// folder they were for. Removes temporary reports left by a crash while
/// one was being written (the file they were for is still in the drop
/// folder and is taken again).
pub async fn pending_takes(
    done_dir: &Path,
) -> Result<HashMap<std::ffi::OsString, PendingTake>, IngestError> {
    let mut pending = HashMap::new();
    let mut entries = match tokio::fs::read_dir(done_dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pending),
        Err(source) => {
            return Err(IngestError::Read {
                path: done_dir.to_path_buf(),
                source,
            });
        }
    };
    let read_err = |source| IngestError::Read {
        path: done_dir.to_path_buf(),
        source,
    };
    while let Some(entry) = entries.next_entry().await.map_err(read_err)? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') && name.ends_with(TEMP_REPORT_SUFFIX) {
            let _ = tokio::fs::remove_file(entry.path()).await;
            continue;
        }
        let Some(file_name) = name.strip_suffix(REPORT_SUFFIX) else {
            continue;
        };
        if file_name.is_empty() || file_name.starts_with('.') {
            continue;
        }
        let target = done_dir.join(file_name);
        if tokio::fs::try_exists(&target).await.unwrap_or(true) {
            continue; // a completed take
        }
        let report_path = entry.path();
        let report = match tokio::fs::read(&report_path)
            .await
            .map(|bytes| serde_json::from_slice::<IngestReport>(&bytes))
        {
            Ok(Ok(report)) if report.content_sha256.is_some() => report,
            _ => {
                tracing::warn!(report = %report_path.display(),
                    "a report in done/ has no file beside it and cannot be read; leaving it");
                continue;
            }
        };
        let Some(source_name) = report.file.file_name().map(ToOwned::to_owned) else {
            continue;
        };
        pending.insert(
            source_name,
            PendingTake {
                target,
                report_path,
                report,
            },
        );
    }
    Ok(pending)
}

/// The name ending of a report being written (after a leading `.`).
const TEMP_REPORT_SUFFIX: &str = ".report.json.tmp";

/// Ingests a file from the drop folder, writes its report to `done/` and
/// moves it there. A file refused whole is reported and moved the same way.
/// See the module documentation for the order of the steps.
pub async fn take_dropped_file(
    path: &Path,
    authority: &AuthorityCode,
    outbox: &Outbox,
) -> Result<IngestReport, IngestError> {
    let done = path.parent().unwrap_or(Path::new(".")).join(DONE_DIR);
    let pending = pending_takes(&done).await?;
    let pending = path.file_name().and_then(|n| pending.get(n));
    take_dropped_file_until(path, authority, outbox, pending, None).await
}

/// [`take_dropped_file`], completing the interrupted take `pending` of this
/// file if its bytes are the ones reported, and stopping early at `stop`
/// (tests only).
#[doc(hidden)]
pub async fn take_dropped_file_until(
    path: &Path,
    authority: &AuthorityCode,
    outbox: &Outbox,
    pending: Option<&PendingTake>,
    stop: Option<StopAfter>,
) -> Result<IngestReport, IngestError> {
    let format =
        SourceFormat::of(path).ok_or_else(|| IngestError::UnknownFormat(path.to_path_buf()))?;
    let bytes = read(path).await?;
    let hash = hex::encode(kith_tlog::hash::sha256(&bytes));
    let drop_dir = path.parent().unwrap_or(Path::new("."));
    let done = drop_dir.join(DONE_DIR);

    if let Some(p) = pending.filter(|p| p.report.content_sha256.as_deref() == Some(&hash)) {
        // Enqueued and reported before the crash: only the move is left.
        move_file(path, &p.target, drop_dir, &done).await?;
        tracing::info!(file = %path.display(), moved_to = %p.target.display(),
            "completed a take interrupted before the file was moved; not read again");
        let mut report = p.report.clone();
        report.moved_to = Some(p.target.clone());
        report.report_path = Some(p.report_path.clone());
        return Ok(report);
    }

    let mut report = ingest_bytes(path, format, &bytes, authority, outbox, today()).await?;
    if stop == Some(StopAfter::Enqueue) {
        return Ok(report);
    }
    tokio::fs::create_dir_all(&done)
        .await
        .map_err(|source| IngestError::Move {
            from: path.to_path_buf(),
            to: done.clone(),
            source,
        })?;
    let target = free_name(&done, path);
    let report_path = report_path_of(&target);
    report.moved_to = Some(target.clone());
    report.report_path = Some(report_path.clone());
    report.content_sha256 = Some(hash);
    write_report(&report, &report_path, &done).await?;
    if stop == Some(StopAfter::Report) {
        return Ok(report);
    }
    move_file(path, &target, drop_dir, &done).await?;
    crate::metrics::drop_lines(report.accepted, report.rejected.len());
    report.log();
    Ok(report)
}

/// `done/<name>.report.json` for `done/<name>`.
fn report_path_of(target: &Path) -> PathBuf {
    let mut path = target.as_os_str().to_os_string();
    path.push(REPORT_SUFFIX);
    PathBuf::from(path)
}

/// Writes `report` to `path` atomically and durably: to a hidden temporary
/// file in `done`, flushed, then renamed, and the folder flushed.
async fn write_report(report: &IngestReport, path: &Path, done: &Path) -> Result<(), IngestError> {
    let json = serde_json::to_vec_pretty(report).expect("reports always serialise");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = done.join(format!(
        ".{}{}",
        name.strip_suffix(REPORT_SUFFIX).unwrap_or(&name),
        TEMP_REPORT_SUFFIX
    ));
    let err = |source| IngestError::WriteReport {
        path: path.to_path_buf(),
        source,
    };
    {
        use tokio::io::AsyncWriteExt as _;
        let mut file = tokio::fs::File::create(&temp).await.map_err(err)?;
        file.write_all(&json).await.map_err(err)?;
        file.sync_all().await.map_err(err)?;
    }
    tokio::fs::rename(&temp, path).await.map_err(err)?;
    sync_dir(done).await.map_err(err)
}

/// Renames the taken file into `done/` and flushes both folders.
async fn move_file(
    from: &Path,
    to: &Path,
    drop_dir: &Path,
    done: &Path,
) -> Result<(), IngestError> {
    let err = |source| IngestError::Move {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    tokio::fs::rename(from, to).await.map_err(err)?;
    sync_dir(done).await.map_err(err)?;
    sync_dir(drop_dir).await.map_err(err)
}

/// Flushes a folder's entries (a rename into or out of it) to disk.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        tokio::fs::File::open(dir).await?.sync_all().await
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// `done/<name>`, or `done/<stem>.<timestamp>.<ext>` when that is taken. A
/// name is taken when the file or its report is there.
fn free_name(done: &Path, file: &Path) -> PathBuf {
    let taken = |p: &Path| p.exists() || report_path_of(p).exists();
    let name = file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let plain = done.join(&name);
    if !taken(&plain) {
        return plain;
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = file
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u32;
    loop {
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let candidate = if n == 0 {
            done.join(format!("{stem}.{stamp}.{ext}"))
        } else {
            done.join(format!("{stem}.{stamp}-{n}.{ext}"))
        };
        if !taken(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// Watches the drop folder and takes each finished file.
pub struct DropWatcher {
    drop_dir: PathBuf,
    authority: AuthorityCode,
    outbox: Outbox,
    /// Size and modification time of each candidate at the last poll.
    seen: HashMap<PathBuf, (u64, Option<SystemTime>)>,
    /// Interrupted takes found in `done/`, by file name; `None` until the
    /// folder is scanned (at the first poll, and again after a failed take).
    pending: Option<HashMap<std::ffi::OsString, PendingTake>>,
}

impl DropWatcher {
    pub fn new(drop_dir: impl Into<PathBuf>, authority: AuthorityCode, outbox: Outbox) -> Self {
        Self {
            drop_dir: drop_dir.into(),
            authority,
            outbox,
            seen: HashMap::new(),
            pending: None,
        }
    }

    /// Scans the folder once and takes every file that has not changed since
    /// the previous scan. Returns the reports of the files taken.
    pub async fn poll_once(&mut self) -> Result<Vec<IngestReport>, IngestError> {
        tokio::fs::create_dir_all(&self.drop_dir)
            .await
            .map_err(|source| IngestError::Read {
                path: self.drop_dir.clone(),
                source,
            })?;
        let mut entries = tokio::fs::read_dir(&self.drop_dir)
            .await
            .map_err(|source| IngestError::Read {
                path: self.drop_dir.clone(),
                source,
            })?;
        let mut now_seen = HashMap::new();
        let mut ready = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|source| IngestError::Read {
                path: self.drop_dir.clone(),
                source,
            })?
        {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden || SourceFormat::of(&path).is_none() {
                continue;
            }
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let fingerprint = (meta.len(), meta.modified().ok());
            if self.seen.get(&path) == Some(&fingerprint) {
                ready.push(path.clone());
            }
            now_seen.insert(path, fingerprint);
        }
        // Records first, so a directive dropped beside its record is queued
        // after it.
        ready.sort_by_key(|p| {
            (
                SourceFormat::of(p) == Some(SourceFormat::DirectiveLines),
                p.clone(),
            )
        });
        if self.pending.is_none() && !ready.is_empty() {
            self.pending = Some(pending_takes(&self.drop_dir.join(DONE_DIR)).await?);
        }
        let mut reports = Vec::new();
        for path in ready {
            now_seen.remove(&path);
            let pending = path
                .file_name()
                .and_then(|n| self.pending.as_mut()?.remove(n));
            match take_dropped_file_until(
                &path,
                &self.authority,
                &self.outbox,
                pending.as_ref(),
                None,
            )
            .await
            {
                Ok(report) => reports.push(report),
                Err(e) => {
                    // Scan done/ again before the next try: this take may
                    // have got as far as its report.
                    self.pending = None;
                    if let IngestError::Outbox(e) = e {
                        return Err(IngestError::Outbox(e));
                    }
                    tracing::error!(file = %path.display(), error = %e, "cannot take source file; will try again")
                }
            }
        }
        self.seen = now_seen;
        Ok(reports)
    }

    /// Polls every `interval` until `shutdown` turns true, waking `enqueued`
    /// whenever records were added to the outbox.
    pub async fn run(
        mut self,
        interval: std::time::Duration,
        enqueued: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        tracing::info!(drop_dir = %self.drop_dir.display(), "watching the drop folder");
        loop {
            match self.poll_once().await {
                Ok(reports) => {
                    if reports.iter().any(|r| r.enqueued > 0) {
                        enqueued.notify_one();
                    }
                }
                Err(e) => tracing::error!(error = %e, "drop folder scan failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = crate::agent::stopped(&mut shutdown) => break,
            }
        }
        tracing::info!("drop folder watcher stopped");
    }
}
