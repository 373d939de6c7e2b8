//! `kith-agent`'s command line: every command, flag and help text (clap
//! definitions and the value parsers they use). `main.rs` wires these to
//! the library; nothing here runs anything.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use kith_agent::audit;
use kith_agent::audit::break_glass::ReviewOutcome;
use kith_agent::logging::LogFormat;
use kith_agent::notifications::NotificationKind;
use kith_core::{Purpose, WithdrawReason};

/// The Kith node agent: publishes this authority's relationship records to the
/// Kith hub and answers its case workers' queries.
#[derive(Debug, Parser)]
#[command(name = "kith-agent", version, long_about = None)]
pub(crate) struct Cli {
    /// The agent's TOML config file (see `kith-agent example-config`).
    #[arg(
        long,
        short,
        global = true,
        env = "KITH_AGENT_CONFIG",
        default_value = "kith-agent.toml"
    )]
    pub(crate) config: PathBuf,

    /// How to write log lines (to standard error).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Human,
        env = "KITH_LOG_FORMAT"
    )]
    pub(crate) log_format: LogFormat,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the agent: watch the drop folder, publish the outbox, keep the
    /// hub link open. Stops gracefully on Ctrl-C or SIGTERM.
    Run,
    /// Enqueue the records in source files now (*.jsonl or *.csv), or the
    /// sharing directives in *.directives.jsonl files, and print a report per
    /// file. The files are left where they are; record files are taken
    /// before directive files. Exits 2 if any line or file was refused.
    Ingest {
        /// The files to read.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the outbox, the certificate, and whether the hub answers and
    /// accepts this agent. Exits 3 if the certificate is unusable, the hub
    /// unreachable, or the hub refuses this agent.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the hub who else is involved with a person, on behalf of a member
    /// of staff and for a stated purpose.
    ///
    /// Name the person by NHS number or, without one, by demographics
    /// (--given-name, --family-name, --date-of-birth, and --postcode if
    /// known). A certain demographic match is answered like an NHS number;
    /// possible matches come back as candidates: if one is the person, ask
    /// the same again with --confirm CANDIDATE_ID. In an emergency, --break-glass
    /// REASON --justification TEXT claims emergency access: it is audited,
    /// flagged for your authority's review and the custodians are told.
    Query {
        /// The person's NHS number (10 digits, spaces allowed).
        #[arg(long)]
        nhs_number: Option<String>,
        /// Given name, for a search without an NHS number.
        #[arg(long)]
        given_name: Option<String>,
        /// Family name, for a search without an NHS number.
        #[arg(long)]
        family_name: Option<String>,
        /// Date of birth (YYYY-MM-DD), for a search without an NHS number.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        date_of_birth: Option<chrono::NaiveDate>,
        /// UK postcode, for a search without an NHS number.
        #[arg(long)]
        postcode: Option<String>,
        /// Confirm a candidate a previous search showed, giving the same
        /// demographics again: the answer is then for that person.
        #[arg(long, value_name = "CANDIDATE_ID")]
        confirm: Option<String>,
        /// Claim emergency access, with a reason code: life_threatening,
        /// immediate_safeguarding_risk, public_safety or other.
        #[arg(long, value_name = "REASON_CODE", requires = "justification")]
        break_glass: Option<String>,
        /// Why emergency access is needed now (10 to 1,000 characters).
        #[arg(long, value_name = "TEXT", requires = "break_glass")]
        justification: Option<String>,
        /// Why you are asking: direct_care, safeguarding, emergency,
        /// care_planning or public_protection.
        #[arg(long, value_parser = parse_purpose)]
        purpose: Purpose,
        /// Your user id in this authority's systems.
        #[arg(long = "as", value_name = "USER")]
        user: String,
        /// Your role code, e.g. social_worker or ed_clinician.
        #[arg(long)]
        role: String,
        /// Your name as colleagues know it.
        #[arg(long, default_value = "")]
        name: String,
        /// Your team.
        #[arg(long, default_value = "")]
        team: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// End or withdraw one of this authority's records at the hub.
    ///
    /// Takes effect for the next query, and is audited at the hub; prints the
    /// audit entry's index. To change a record's content instead, publish a
    /// new version through the drop folder.
    #[command(subcommand)]
    Record(RecordCommand),
    /// List the notifications the hub sent this authority, newest first:
    /// accesses to its records, break glass, and revocations of records its
    /// users received.
    ///
    /// Read from the agent's own database (kept by `run`), so the hub is not
    /// contacted.
    Notifications {
        /// Only this kind: access, break_glass, revocation or subscription.
        #[arg(long, value_parser = parse_notification_kind)]
        kind: Option<NotificationKind>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// Print as JSON (one array).
        #[arg(long)]
        json: bool,
    },
    /// Subscribe for a person: be told when another authority starts,
    /// changes, ends or withdraws a relationship with them.
    ///
    /// The hub allows it only while this authority holds a current record of
    /// its own for the person, and decides each notice as if USER had
    /// queried for PURPOSE then. Notices arrive as notifications of kind
    /// subscription. With --file, subscribe every line of a
    /// *.subscriptions.jsonl file (one JSON object a line: nhs_number,
    /// relationship_types, categories, purpose, ends_on, user_id, role,
    /// team) and print a report; exits 2 if any line was refused.
    Subscribe {
        /// The person's NHS number (10 digits).
        #[arg(long, required_unless_present = "file")]
        nhs_number: Option<String>,
        /// A relationship type to hear of (repeat for more), e.g.
        /// child_protection_plan.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// A category to hear of (repeat for more), as the hub's policy set
        /// names them, e.g. children or adults.
        #[arg(long = "category", value_name = "CATEGORY")]
        categories: Vec<String>,
        /// The purpose the notices are decided for.
        #[arg(long, value_parser = parse_purpose, required_unless_present = "file")]
        purpose: Option<Purpose>,
        /// The last day (YYYY-MM-DD); the hub's default when left out.
        #[arg(long, value_name = "YYYY-MM-DD")]
        ends_on: Option<String>,
        /// Your user id in this authority's systems.
        #[arg(long = "as", value_name = "USER", required_unless_present = "file")]
        user: Option<String>,
        /// Your role code, e.g. ed_clinician.
        #[arg(long, required_unless_present = "file")]
        role: Option<String>,
        /// Your team.
        #[arg(long, default_value = "")]
        team: String,
        /// Subscribe every line of this *.subscriptions.jsonl file instead.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["nhs_number", "purpose"])]
        file: Option<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// End one of this authority's subscriptions.
    Unsubscribe {
        /// The subscription's id (from `subscribe` or `subscriptions`).
        subscription_id: String,
        /// Your user id in this authority's systems.
        #[arg(long = "as", value_name = "USER")]
        user: String,
        /// Your role code.
        #[arg(long)]
        role: String,
    },
    /// List this authority's subscriptions at the hub, newest first.
    Subscriptions {
        /// Ended and expired ones too.
        #[arg(long)]
        all: bool,
        /// Print as JSON (one array).
        #[arg(long)]
        json: bool,
    },
    /// Manage the staff console's local accounts (for agents without an
    /// identity provider, and the demo). Passwords are read from standard
    /// input, one line, never from the command line.
    #[command(subcommand)]
    User(UserCommand),
    /// Print an example config file to standard output.
    ExampleConfig,
    /// Copy the agent's database (outbox, delivery history, notifications,
    /// console accounts) while it runs: a consistent snapshot, checked, with a
    /// manifest beside it (FILE.manifest.json) holding its SHA-256 and listing
    /// the keys and folders it does not copy.
    Backup {
        /// The backup file to write; it must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a backup in place of the agent's database, after checking it
    /// against its manifest, SQLite's integrity check and the schema. A
    /// backup that fails a check is refused and nothing changes. Stop the
    /// agent first.
    Restore {
        /// The backup file (its manifest must be beside it).
        #[arg(long)]
        from: PathBuf,
        /// Restore over an existing database, moving it aside to
        /// outbox.db.before-restore-TIMESTAMP (never deleted).
        #[arg(long)]
        replace: bool,
        /// Check the backup only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Enrolment with the federation CA: make this authority's key and a
    /// certificate signing request. See docs/operators.md (rotation).
    #[command(subcommand)]
    Pki(PkiCommand),
    /// The auditor's commands: read the hub's audit log and prove it was
    /// never rewritten. See docs/audit.md.
    ///
    /// Every command names the acting auditor (--as USER --role ROLE). The
    /// hub's policy decides what they may read: role `auditor` reads the
    /// entries about its own authority (the rest arrive as leaf hashes only),
    /// role `federation_auditor` at the federation's oversight body reads
    /// all, anyone else is refused.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum PkiCommand {
    /// Make a new private key and a certificate signing request (CSR) for
    /// the authority, here on its own machine: OUT/<CODE>.key.pem (mode
    /// 0600; it never leaves this machine) and OUT/<CODE>.csr.pem, which
    /// goes to the federation CA (`kith-hub pki issue`). An existing key is
    /// never replaced. Needs no config file.
    Request {
        /// The authority's code (ODS or GSS), as the certificate will name it.
        #[arg(long)]
        authority: String,
        /// The folder to write the key and the request to.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecordCommand {
    /// The relationship ended: set the end of its period at the hub.
    ///
    /// Example: kith-agent record end asc-1001 --on 2026-02-28
    End {
        /// The record's id, as published.
        record_id: String,
        /// The day the relationship ended (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        on: chrono::NaiveDate,
    },
    /// Take the record out of sharing altogether.
    ///
    /// entered_in_error: it should never have been published (for example
    /// the wrong person); no_longer_shared: it is correct but must no longer
    /// be shared. Authorities whose users received it are told it was
    /// revoked. Example: kith-agent record withdraw asc-1001 --reason
    /// entered_in_error
    Withdraw {
        /// The record's id, as published.
        record_id: String,
        /// entered_in_error or no_longer_shared.
        #[arg(long, value_parser = parse_withdraw_reason)]
        reason: WithdrawReason,
    },
}

/// Who is auditing, and which log key they trust.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditorArgs {
    /// Your user id in this authority's systems.
    #[arg(long = "as", id = "acting_user", value_name = "USER")]
    pub(crate) user: String,
    /// Your role: `auditor` (your own authority's entries) or
    /// `federation_auditor` (every entry; oversight body only).
    #[arg(long, id = "acting_role")]
    pub(crate) role: String,
    /// Your name as colleagues know it.
    #[arg(long, id = "acting_name", default_value = "")]
    pub(crate) name: String,
    /// Your team.
    #[arg(long, id = "acting_team", default_value = "")]
    pub(crate) team: String,
    /// The audit log's verifier key (C2SP vkey file, e.g. PKI/audit-log.vkey).
    /// Overrides `[audit] vkey` in the config. With neither, checkpoints are
    /// checked only against the key the hub itself sends.
    #[arg(long, value_name = "FILE")]
    pub(crate) vkey: Option<PathBuf>,
}

impl AuditorArgs {
    pub(crate) fn auditor(&self) -> audit::Auditor {
        audit::Auditor {
            user_id: self.user.clone(),
            role: self.role.clone(),
            display_name: self.name.clone(),
            team: self.team.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Print the log's latest signed checkpoint, its signature checked.
    ///
    /// Prints the C2SP signed note exactly as signed. Proves: the holder of
    /// the log key committed to a log of this many entries with this root.
    /// Keep it: a later `verify` proves the log still extends it.
    Checkpoint {
        #[command(flatten)]
        who: AuditorArgs,
        /// Print origin, size, root and note as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prove the log was never rewritten; names every failing entry.
    ///
    /// Checks the checkpoint's signature with your copy of the log key, every
    /// entry you may read against its logged leaf hash, the root over all
    /// leaves against the signed root (asking inclusion proofs to name the
    /// failing leaves if not), and consistency with the checkpoint saved by
    /// your last successful verify. Exits 4 naming every failing entry or
    /// range if the log fails; saves the new checkpoint only when it passes.
    Verify {
        #[command(flatten)]
        who: AuditorArgs,
        /// Where the checkpoint from the last successful verify is kept.
        /// [default: ~/.kith/audit-state.json]
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export entries as JSON Lines (exact leaf bytes) or FHIR AuditEvent.
    ///
    /// One entry per line, read against the latest checkpoint. JSON Lines
    /// carry each entry's index, leaf hash and exact bytes (base64), enough
    /// for any RFC 9162 implementation to recompute the signed root; entries
    /// withheld from you carry index and leaf hash only. FHIR R4 AuditEvent
    /// resources are written for the entries you may read.
    Export {
        #[command(flatten)]
        who: AuditorArgs,
        /// `jsonl`: {"index","leaf_hash","entry_base64","entry"}, enough for
        /// any RFC 9162 implementation to recompute the root; `fhir`: one
        /// AuditEvent per visible entry.
        #[arg(long, default_value = "jsonl", value_parser = parse_format)]
        format: audit::ExportFormat,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// First entry index to export.
        #[arg(long, value_name = "INDEX")]
        from: Option<u64>,
        /// Stop before this entry index [default: the checkpoint's tree size].
        #[arg(long, value_name = "INDEX")]
        to: Option<u64>,
        /// Also write the signed checkpoint the export was read against.
        #[arg(long, value_name = "FILE")]
        note: Option<PathBuf>,
    },
    /// Search the entries you may read.
    ///
    /// Every filter given must match. Entries outside your scope are not
    /// searched; the summary says how many there were.
    Search {
        #[command(flatten)]
        who: AuditorArgs,
        /// The NHS number asked about.
        #[arg(long, value_name = "NHS_NUMBER")]
        subject: Option<String>,
        /// The acting user.
        #[arg(long)]
        user: Option<String>,
        /// The acting authority's code.
        #[arg(long)]
        authority: Option<String>,
        /// An authority whose record the entry names.
        #[arg(long)]
        custodian: Option<String>,
        /// The stated purpose, e.g. safeguarding.
        #[arg(long)]
        purpose: Option<String>,
        /// The outcome (ok, refused) or a record's decision (detail, summary,
        /// withheld, hidden, accepted, ...).
        #[arg(long)]
        decision: Option<String>,
        /// publish, end, withdraw, query, refusal or audit_read.
        #[arg(long)]
        kind: Option<String>,
        /// At or after this time (RFC 3339, e.g. 2026-03-01T00:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// At or before this time (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Only break-glass accesses.
        #[arg(long)]
        break_glass: bool,
        /// Print the matching entries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Break-glass accesses by your authority's users awaiting review; with
    /// `review`, mark one reviewed.
    ///
    /// Lists who broke glass, when, about whom, with which reason and
    /// justification. Role `auditor`. Review each with
    /// `kith-agent audit break-glass review QUERY_ID --outcome
    /// appropriate|inappropriate --note TEXT --as USER --role auditor`;
    /// the review is itself audited.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    BreakGlass {
        #[command(subcommand)]
        action: Option<BreakGlassCommand>,
        #[command(flatten)]
        who: Option<AuditorArgs>,
        /// Also list accesses already reviewed, with their reviews.
        #[arg(long)]
        all: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Who looked a person up, when and why: for subject access requests.
    ///
    /// Every query about the person that you may read: when, which authority,
    /// user and role, the stated purpose, which records at which level, the
    /// deciding policies and the agreement they belong to.
    SubjectReport {
        #[command(flatten)]
        who: AuditorArgs,
        /// The person's NHS number (10 digits, spaces allowed).
        #[arg(long)]
        nhs_number: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BreakGlassCommand {
    /// Mark one break-glass access reviewed (the review is audited).
    Review {
        /// The query id the list shows.
        query_id: String,
        /// appropriate or inappropriate.
        #[arg(long, value_parser = parse_review_outcome)]
        outcome: ReviewOutcome,
        /// Why (required, at most 1,000 characters).
        #[arg(long)]
        note: String,
        #[command(flatten)]
        who: AuditorArgs,
    },
}

pub(crate) fn parse_format(s: &str) -> Result<audit::ExportFormat, String> {
    s.parse()
}
pub(crate) fn parse_purpose(s: &str) -> Result<Purpose, String> {
    s.parse::<Purpose>().map_err(|e| e.to_string())
}

pub(crate) fn parse_withdraw_reason(s: &str) -> Result<WithdrawReason, String> {
    s.parse::<WithdrawReason>().map_err(|e| e.to_string())
}

pub(crate) fn parse_notification_kind(s: &str) -> Result<NotificationKind, String> {
    s.parse()
        .map_err(|e: kith_core::codes::UnknownCode| e.to_string())
}

pub(crate) fn parse_review_outcome(s: &str) -> Result<ReviewOutcome, String> {
    s.parse().map_err(|_| {
        let expected: Vec<&str> = ReviewOutcome::ALL.iter().map(|o| o.as_str()).collect();
        format!(
            "unknown review outcome {}; expected {}",
            kith_core::error::quote(s),
            expected.join(" or ")
        )
    })
}

pub(crate) fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| format!("{s:?} is not a date in the form YYYY-MM-DD: {e}"))
}

/// `kith-agent user ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add an account; its password is read from standard input.
    Add {
        /// The user id staff sign in with (letters, digits, . _ - @).
        user_id: String,
        /// The person's name as colleagues know it.
        #[arg(long)]
        name: String,
        /// Their team.
        #[arg(long, default_value = "")]
        team: String,
        /// Their Kith role code (from policies/vocabulary.json), e.g.
        /// social_worker or auditor.
        #[arg(long)]
        role: String,
    },
    /// Disable an account and end its sessions.
    Disable { user_id: String },
    /// List the accounts.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (read from standard input), re-enable the
    /// account and end its sessions.
    ResetPassword { user_id: String },
}
