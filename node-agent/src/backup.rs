//! `kith-agent backup` and `kith-agent restore`: the agent's own database
//! (`outbox.db`: records and directives not yet delivered, the delivery
//! history, notifications received, console accounts) copied while the
//! agent runs, and put back only if it is whole and unchanged.
//!
//! What the agent accepted from a source system is the agent's to keep
//! until the hub has it; a restored outbox must be that outbox. The agent
//! holds no signed log to prove it, so the guard is the manifest written
//! beside the backup: its SHA-256 must match the file, then SQLite's
//! integrity check must pass, then its schema must be one this agent knows
//! (a backup from a newer agent is refused, an older one is migrated on the
//! next start as usual). The manifest catches a changed or damaged file; it
//! is not a signature, so keep backups where only operators can write.
//!
//! The snapshot, the manifest and the swap into place are shared with the
//! hub ([`kith_ops::sqlite_backup`]). Keys, certificates, the policy set and
//! the drop folder are named in the manifest, never copied.

use std::path::Path;

use kith_ops::sqlite_backup::{self, BackupError, NotCopied};
use serde::Serialize;

use crate::config::AgentConfig;

/// The manifest's program name.
pub const PROGRAM: &str = "kith-agent";

/// What a checked backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxState {
    pub schema_version: i64,
    pub records_pending: u64,
    pub records_delivered: u64,
    pub records_rejected: u64,
    pub directives: u64,
    pub notifications: u64,
    pub console_accounts: u64,
}

/// An agent backup written.
pub type Written = sqlite_backup::Written<OutboxState>;

/// An agent backup restored (or only checked).
pub type Restored = sqlite_backup::Restored<OutboxState>;

/// Snapshots the agent's database into `out` (which must not exist),
/// checks it, and writes the manifest beside it.
pub fn backup(config: &AgentConfig, out: &Path) -> Result<Written, BackupError> {
    sqlite_backup::take(
        PROGRAM,
        env!("CARGO_PKG_VERSION"),
        &config.outbox_path(),
        out,
        check,
        not_copied(config),
    )
}

fn not_copied(config: &AgentConfig) -> Vec<NotCopied> {
    let item = |what: &str, path: &Path| NotCopied {
        what: what.into(),
        path: path.display().to_string(),
    };
    let mut items = vec![
        item("agent TLS private key", &config.tls.key),
        item("agent TLS certificate", &config.tls.cert),
        item("federation CA bundle", &config.tls.ca),
        item("drop folder (files not yet ingested)", &config.drop_dir),
    ];
    if let Some(policy) = &config.policy {
        items.push(item("policy set", &policy.dir));
    }
    if let Some(console) = &config.console
        && let Some(tls) = &console.tls
    {
        items.push(item("console TLS certificate", &tls.cert));
        items.push(item("console TLS private key", &tls.key));
    }
    items
}

/// SQLite's integrity check, the schema version, and the counts.
pub fn check(file: &Path) -> Result<OutboxState, BackupError> {
    let conn = sqlite_backup::open_read_only(file)?;
    sqlite_backup::integrity_check(&conn, file)?;
    let sql = |source| BackupError::Sqlite {
        path: file.to_path_buf(),
        source,
    };
    let schema_version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql)?;
    if schema_version < 1 {
        return Err(BackupError::Refused(format!(
            "{} holds no agent schema: it is not a kith-agent database",
            file.display()
        )));
    }
    if schema_version > crate::outbox::SCHEMA_VERSION {
        return Err(BackupError::Refused(format!(
            "{} has schema version {schema_version}, newer than this agent's {}: \
             restore it with the agent that took it",
            file.display(),
            crate::outbox::SCHEMA_VERSION
        )));
    }
    let records = |state: &str| -> Result<u64, BackupError> {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE state = ?1",
                [state],
                |row| row.get(0),
            )
            .map_err(sql)?;
        Ok(n as u64)
    };
    let optional = |table: &'static str, since: i64| -> Result<u64, BackupError> {
        if schema_version < since {
            Ok(0)
        } else {
            sqlite_backup::count(&conn, table, file)
        }
    };
    Ok(OutboxState {
        schema_version,
        records_pending: records("pending")?,
        records_delivered: records("delivered")?,
        records_rejected: records("rejected")?,
        directives: optional("directive_outbox", 2)?,
        notifications: optional("notifications", 2)?,
        console_accounts: optional("console_users", 3)?,
    })
}

/// Checks `from` against its manifest, SQLite's integrity and the schema,
/// and unless `dry_run` puts it in place of the agent's database. Refused
/// while the agent's metrics or console address answers (the agent runs).
pub fn restore(
    config: &AgentConfig,
    from: &Path,
    replace: bool,
    dry_run: bool,
) -> Result<Restored, BackupError> {
    sqlite_backup::restore(
        PROGRAM,
        from,
        &config.outbox_path(),
        replace,
        dry_run,
        check,
        || {
            if let Some(addr) = config
                .metrics
                .address(crate::config::DEFAULT_METRICS_LISTEN)
            {
                sqlite_backup::refuse_if_listening(addr, "the agent's metrics")?;
            }
            if let Some(console) = &config.console {
                sqlite_backup::refuse_if_listening(console.listen, "the agent's console")?;
            }
            Ok(())
        },
    )
}
