//! `kith-hub backup` and `kith-hub restore`: a SQLite hub's database copied
//! while it serves, and put back only if its audit log still proves itself.
//!
//! A backup is the hub's memory of what every authority published and of
//! who saw what; a restored one must be that memory, not a rewritten one.
//! So a backup is checked the way the hub checks its own store at start
//! ([`crate::transparency::TransparencyLog::open`]), but harder, since the
//! file has been out of the hub's hands: every entry's leaf hash is
//! recomputed from the entry's bytes (not read from the `leaf_hash`
//! column), the entries are numbered without a gap, the tree root is
//! recomputed in O(log n) memory ([`RootBuilder`]), and the latest signed
//! checkpoint must verify under the log's key and name that root. A file
//! that fails any of these is refused with the first failure, before
//! anything is replaced. Entries after the last checkpoint (at most one
//! checkpoint interval's worth) are hash-checked and reported as not yet
//! signed; the restored hub signs them when it sequences.
//!
//! The snapshot, its manifest and the swap into place are
//! [`kith_ops::sqlite_backup`]'s, shared with the agent. Keys, certificates
//! and the policy set are named in the manifest, never copied: they belong
//! to whoever keeps the PKI. PostgreSQL hubs are backed up with `pg_dump`
//! (docs/operators.md, "Backups").

use std::path::{Path, PathBuf};

use kith_ops::sqlite_backup::{self, BackupError, NotCopied};
use kith_tlog::hash::to_hex;
use kith_tlog::{Checkpoint, NoteSigner, NoteVerifier, RootBuilder, leaf_hash};
use serde::Serialize;

use crate::config::HubConfig;
use crate::store::StoreKind;

/// The manifest's program name.
pub const PROGRAM: &str = "kith-hub";

/// How often [`check_log`] reports progress, in entries.
pub const PROGRESS_EVERY: u64 = 250_000;

#[derive(Debug, thiserror::Error)]
pub enum HubBackupError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(
        "the hub's database is {0}: back up PostgreSQL with pg_dump and restore with pg_restore \
         (docs/operators.md, \"Backups\")"
    )]
    Postgres(String),
    #[error("database_url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("the audit log's signing key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(
        "the backup's audit log does not prove itself: {0}; \
         it was not restored"
    )]
    Log(String),
}

/// What a checked backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogState {
    /// Audit entries in the file.
    pub entries: u64,
    /// The latest signed checkpoint, if the log has one.
    pub checkpoint: Option<CheckpointState>,
    /// Entries after that checkpoint, hash-checked but not yet signed.
    pub unsigned_entries: u64,
    pub records: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointState {
    pub origin: String,
    pub tree_size: u64,
    /// Lower-case hex.
    pub root_hash: String,
    pub signed_at: String,
}

/// The database file a SQLite `database_url` names; PostgreSQL is refused
/// with where to look instead.
pub fn database_file(config: &HubConfig) -> Result<PathBuf, HubBackupError> {
    match StoreKind::of_url(&config.database_url) {
        Ok(StoreKind::Sqlite) => {
            crate::store::sqlite_file(&config.database_url).map_err(|reason| HubBackupError::Url {
                url: config.database_url.clone(),
                reason,
            })
        }
        Ok(StoreKind::Postgres) => Err(HubBackupError::Postgres("PostgreSQL".into())),
        Err(reason) => Err(HubBackupError::Url {
            url: config.database_url.clone(),
            reason,
        }),
    }
}

/// The log's verifier, from the configured signing key.
pub fn log_verifier(config: &HubConfig) -> Result<NoteVerifier, HubBackupError> {
    let path = &config.audit.signing_key;
    let skey = std::fs::read_to_string(path).map_err(|e| HubBackupError::Key {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let signer = NoteSigner::from_skey(skey.trim()).map_err(|e| HubBackupError::Key {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(signer.verifier())
}

/// A hub backup written.
pub type Written = sqlite_backup::Written<LogState>;

/// A hub backup restored (or only checked).
pub type Restored = sqlite_backup::Restored<LogState>;

/// Takes an online snapshot of the hub's SQLite database into `out`,
/// checks it as a restore would, and writes its manifest beside it.
pub fn backup(
    config: &HubConfig,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, HubBackupError> {
    let database = database_file(config)?;
    let verifier = log_verifier(config)?;
    sqlite_backup::take(
        PROGRAM,
        env!("CARGO_PKG_VERSION"),
        &database,
        out,
        |file| check(file, &verifier, progress),
        not_copied(config),
    )
}

fn not_copied(config: &HubConfig) -> Vec<NotCopied> {
    let item = |what: &str, path: &Path| NotCopied {
        what: what.into(),
        path: path.display().to_string(),
    };
    vec![
        item(
            "audit log signing key (keep it with the PKI; the backup is checked against it)",
            &config.audit.signing_key,
        ),
        item("TLS CA bundle", &config.tls.ca),
        item("hub TLS certificate", &config.tls.cert),
        item("hub TLS private key", &config.tls.key),
        item("policy set", &config.policy_dir),
    ]
}

/// Checks a backup file: SQLite's integrity check, then the audit log
/// against its latest signed checkpoint (see the module doc).
pub fn check(
    file: &Path,
    verifier: &NoteVerifier,
    progress: &mut dyn FnMut(u64),
) -> Result<LogState, HubBackupError> {
    let conn = sqlite_backup::open_read_only(file)?;
    sqlite_backup::integrity_check(&conn, file)?;
    let records = sqlite_backup::count(&conn, "records", file)?;
    let latest = latest_checkpoint(&conn, file)?;
    let (entries, root) = check_log(&conn, file, latest.as_ref().map(|c| c.size), progress)?;
    let checkpoint = match latest {
        None => None,
        Some(stored) => Some(check_checkpoint(stored, verifier, entries, root)?),
    };
    let signed = checkpoint.as_ref().map_or(0, |c| c.tree_size);
    Ok(LogState {
        entries,
        unsigned_entries: entries - signed,
        checkpoint,
        records,
    })
}

struct StoredCheckpoint {
    size: u64,
    root_column: Vec<u8>,
    note: String,
    signed_at: String,
}

fn latest_checkpoint(
    conn: &rusqlite::Connection,
    file: &Path,
) -> Result<Option<StoredCheckpoint>, HubBackupError> {
    let mut stmt = conn
        .prepare(
            "SELECT tree_size, root_hash, signed_note, signed_at FROM audit_checkpoints \
             ORDER BY tree_size DESC LIMIT 1",
        )
        .map_err(|e| sql(file, e))?;
    let mut rows = stmt.query([]).map_err(|e| sql(file, e))?;
    let Some(row) = rows.next().map_err(|e| sql(file, e))? else {
        return Ok(None);
    };
    let size: i64 = row.get(0).map_err(|e| sql(file, e))?;
    Ok(Some(StoredCheckpoint {
        size: u64::try_from(size)
            .map_err(|_| HubBackupError::Log(format!("a checkpoint of size {size}")))?,
        root_column: row.get(1).map_err(|e| sql(file, e))?,
        note: row.get(2).map_err(|e| sql(file, e))?,
        signed_at: row.get(3).map_err(|e| sql(file, e))?,
    }))
}

fn sql(file: &Path, source: rusqlite::Error) -> HubBackupError {
    HubBackupError::Backup(BackupError::Sqlite {
        path: file.to_path_buf(),
        source,
    })
}

/// Walks every entry in index order: no gap, each stored leaf hash equal
/// to the hash of the entry's bytes. Returns the entry count and the root
/// at `signed_size` (if the log reaches it).
fn check_log(
    conn: &rusqlite::Connection,
    file: &Path,
    signed_size: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, Option<[u8; 32]>), HubBackupError> {
    let mut stmt = conn
        .prepare("SELECT idx, entry, leaf_hash FROM audit_log ORDER BY idx")
        .map_err(|e| sql(file, e))?;
    let mut rows = stmt.query([]).map_err(|e| sql(file, e))?;
    let mut builder = RootBuilder::new();
    let mut expected = 0u64;
    let mut root = (signed_size == Some(0)).then(|| builder.root());
    while let Some(row) = rows.next().map_err(|e| sql(file, e))? {
        let idx: i64 = row.get(0).map_err(|e| sql(file, e))?;
        if u64::try_from(idx).ok() != Some(expected) {
            return Err(HubBackupError::Log(format!(
                "entry {expected} is missing (the next one is numbered {idx})"
            )));
        }
        let entry: Vec<u8> = row.get(1).map_err(|e| sql(file, e))?;
        let stored: Vec<u8> = row.get(2).map_err(|e| sql(file, e))?;
        let hash = leaf_hash(&entry);
        if stored.as_slice() != hash.as_slice() {
            return Err(HubBackupError::Log(format!(
                "entry {idx}'s bytes do not hash to its recorded leaf hash: the entry was changed"
            )));
        }
        builder.push(hash);
        expected += 1;
        if Some(expected) == signed_size {
            root = Some(builder.root());
        }
        if expected.is_multiple_of(PROGRESS_EVERY) {
            progress(expected);
        }
    }
    Ok((expected, root))
}

fn check_checkpoint(
    stored: StoredCheckpoint,
    verifier: &NoteVerifier,
    entries: u64,
    root: Option<[u8; 32]>,
) -> Result<CheckpointState, HubBackupError> {
    let body = verifier.verify(&stored.note).map_err(|e| {
        HubBackupError::Log(format!(
            "the checkpoint at tree size {} does not verify under the log's key ({e})",
            stored.size
        ))
    })?;
    let checkpoint = Checkpoint::parse(&body).map_err(|e| {
        HubBackupError::Log(format!("the checkpoint at tree size {}: {e}", stored.size))
    })?;
    if checkpoint.size() != stored.size || checkpoint.root_hash().as_slice() != stored.root_column {
        return Err(HubBackupError::Log(format!(
            "the checkpoint row at tree size {} differs from the note it holds",
            stored.size
        )));
    }
    let Some(root) = root else {
        return Err(HubBackupError::Log(format!(
            "the signed checkpoint covers {} entries but the file holds only {entries}",
            stored.size
        )));
    };
    if &root != checkpoint.root_hash() {
        return Err(HubBackupError::Log(format!(
            "the root recomputed from the {} entries differs from the signed root at that size",
            stored.size
        )));
    }
    Ok(CheckpointState {
        origin: checkpoint.origin().to_string(),
        tree_size: checkpoint.size(),
        root_hash: to_hex(&root),
        signed_at: stored.signed_at,
    })
}

/// Checks `from` (its manifest's hash, SQLite's integrity, the audit log
/// against its signed checkpoint under this hub's key) and, unless
/// `dry_run`, puts it in place of the configured database. Refused while
/// something listens on the hub's address.
pub fn restore(
    config: &HubConfig,
    from: &Path,
    replace: bool,
    dry_run: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<Restored, HubBackupError> {
    let database = database_file(config)?;
    let verifier = log_verifier(config)?;
    sqlite_backup::restore(
        PROGRAM,
        from,
        &database,
        replace,
        dry_run,
        |file| check(file, &verifier, progress),
        || sqlite_backup::refuse_if_listening(config.listen, "the hub"),
    )
}
