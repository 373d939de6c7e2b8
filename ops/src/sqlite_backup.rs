//! Online backups of a SQLite database, for the hub and the agent alike.
//!
//! Why this exists: both binaries keep what they accepted in one SQLite
//! file (the hub its records and audit log, the agent its outbox and
//! notifications), and an operator must be able to copy it while the
//! process runs and put it back later with nothing lost and nothing
//! swapped in. A plain `cp` of a database in WAL mode can catch it between
//! the main file and its `-wal`; `VACUUM INTO` writes a consistent snapshot
//! from one read transaction instead, while writers carry on.
//!
//! What is shared here: taking the snapshot ([`snapshot`]), its SHA-256 and
//! the manifest beside it ([`Manifest`]), SQLite's own integrity check
//! ([`integrity_check`]), and putting a checked file in place without
//! losing the one it replaces ([`install`]). What a file must prove before
//! it is restored (the hub's audit tree against its signed checkpoint) is
//! each binary's own.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{0} already exists: choose another name (a backup never overwrites a file)")]
    Exists(PathBuf),
    #[error("{path} fails SQLite's integrity check: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} does not match its manifest ({manifest}): SHA-256 {actual}, the manifest says {expected}; \
         the file was changed after the backup was taken"
    )]
    Tampered {
        path: PathBuf,
        manifest: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{0}")]
    Refused(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// The manifest's format name; a manifest with another one is refused.
pub const MANIFEST_FORMAT: &str = "kith-backup/1";

/// What is written beside a backup as `FILE.manifest.json`: what the file
/// is and its hash, the state it holds, and what it deliberately does not
/// hold (keys, certificates, the policy set), named so the operator knows
/// what else to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// `kith-hub` or `kith-agent`.
    pub program: String,
    /// The program's version that took it.
    pub version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The backup file's name (beside the manifest).
    pub file: String,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
    /// Counts and state the program records (tables, checkpoint, ...).
    pub contents: serde_json::Value,
    /// What the backup does not copy, each with where it lives now.
    pub not_copied: Vec<NotCopied>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotCopied {
    pub what: String,
    pub path: String,
}

impl Manifest {
    /// Where the manifest of `backup` lives.
    pub fn path_for(backup: &Path) -> PathBuf {
        let mut name = backup.as_os_str().to_owned();
        name.push(".manifest.json");
        PathBuf::from(name)
    }

    pub fn write(&self, backup: &Path) -> Result<PathBuf, BackupError> {
        let path = Self::path_for(backup);
        let text = serde_json::to_string_pretty(self).expect("a manifest serialises");
        write_new(&path, format!("{text}\n").as_bytes())?;
        Ok(path)
    }

    /// Hashes the checked backup `file`, and writes its manifest beside it.
    /// Returns the manifest and where it was written.
    pub fn seal(
        program: &str,
        version: &str,
        file: &Path,
        contents: serde_json::Value,
        not_copied: Vec<NotCopied>,
    ) -> Result<(Self, PathBuf), BackupError> {
        let (bytes, sha256) = file_sha256(file)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            program: program.into(),
            version: version.into(),
            created_at: chrono::Utc::now(),
            file: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes,
            sha256,
            contents,
            not_copied,
        };
        let path = manifest.write(file)?;
        Ok((manifest, path))
    }

    /// What a person is told once a backup is written: where, its hash,
    /// and what it did not copy (the state lines are the caller's).
    pub fn describe(&self, backup: &Path, manifest_path: &Path) -> String {
        let mut text = format!(
            "backup written to {}\n  manifest: {}\n  sha256:   {}\n",
            backup.display(),
            manifest_path.display(),
            self.sha256
        );
        text.push_str("  not copied (keep these yourself, with the PKI):\n");
        for item in &self.not_copied {
            text.push_str(&format!("    {}: {}\n", item.what, item.path));
        }
        text
    }

    /// Reads the manifest beside `backup`, checks its format and that the
    /// file's hash and size are what it says.
    pub fn read_and_check(backup: &Path, program: &str) -> Result<Self, BackupError> {
        let path = Self::path_for(backup);
        let text = std::fs::read_to_string(&path).map_err(|e| BackupError::Manifest {
            path: path.clone(),
            reason: format!(
                "cannot read it ({e}); a backup is restored only with the manifest written beside it"
            ),
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| BackupError::Manifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(BackupError::Manifest {
                path,
                reason: format!("format {:?}, expected {MANIFEST_FORMAT:?}", manifest.format),
            });
        }
        if manifest.program != program {
            return Err(BackupError::Manifest {
                path,
                reason: format!("a backup of {}, not of {program}", manifest.program),
            });
        }
        let (bytes, sha256) = file_sha256(backup)?;
        if sha256 != manifest.sha256 || bytes != manifest.bytes {
            return Err(BackupError::Tampered {
                path: backup.to_path_buf(),
                manifest: path,
                expected: manifest.sha256,
                actual: sha256,
            });
        }
        Ok(manifest)
    }
}

/// A backup written: the file, its manifest, and the state the program's
/// own check found in it.
#[derive(Debug)]
pub struct Written<S> {
    pub file: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    pub state: S,
}

/// Snapshots `database` into `out`, runs the program's `check` on the copy
/// (a copy that fails it is removed: a backup that would not restore is not
/// a backup), and seals it with its manifest.
pub fn take<S, E>(
    program: &str,
    version: &str,
    database: &Path,
    out: &Path,
    check: impl FnOnce(&Path) -> Result<S, E>,
    not_copied: Vec<NotCopied>,
) -> Result<Written<S>, E>
where
    S: Serialize,
    E: From<BackupError>,
{
    snapshot(database, out)?;
    let state = match check(out) {
        Ok(state) => state,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    let contents = serde_json::to_value(&state).expect("backup state serialises");
    let (manifest, manifest_path) = Manifest::seal(program, version, out, contents, not_copied)?;
    Ok(Written {
        file: out.to_path_buf(),
        manifest_path,
        manifest,
        state,
    })
}

impl<S> Written<S> {
    /// Where it went, its hash, and what it did not copy.
    pub fn describe(&self) -> String {
        self.manifest.describe(&self.file, &self.manifest_path)
    }
}

/// A restore done, or with `dry_run` only checked.
#[derive(Debug)]
pub struct Restored<S> {
    pub from: PathBuf,
    pub database: PathBuf,
    pub dry_run: bool,
    pub state: S,
    /// Where the database it replaced was moved.
    pub previous: Option<PathBuf>,
}

impl<S> Restored<S> {
    /// What was done (the state lines are the caller's).
    pub fn describe(&self) -> String {
        if self.dry_run {
            return format!("{} checks out (nothing changed)\n", self.from.display());
        }
        let mut text = format!(
            "restored {} to {}\n",
            self.from.display(),
            self.database.display()
        );
        if let Some(previous) = &self.previous {
            text.push_str(&format!(
                "  the database it replaced is now {}\n",
                previous.display()
            ));
        }
        text
    }
}

/// Restores `from` over `database` once the program's `check` passed on it
/// (and, unless `dry_run`, `before_install`, which refuses while the program
/// runs). The manifest is checked first.
pub fn restore<S, E>(
    program: &str,
    from: &Path,
    database: &Path,
    replace: bool,
    dry_run: bool,
    check: impl FnOnce(&Path) -> Result<S, E>,
    before_install: impl FnOnce() -> Result<(), BackupError>,
) -> Result<Restored<S>, E>
where
    E: From<BackupError>,
{
    Manifest::read_and_check(from, program)?;
    let state = check(from)?;
    let previous = if dry_run {
        None
    } else {
        before_install()?;
        install(from, database, replace)?.previous
    };
    Ok(Restored {
        from: from.to_path_buf(),
        database: database.to_path_buf(),
        dry_run,
        state,
        previous,
    })
}

/// Writes a consistent snapshot of the live database at `database` to
/// `out` (which must not exist), with `VACUUM INTO`: one read transaction,
/// so writers carry on and the copy holds no half-written commit.
pub fn snapshot(database: &Path, out: &Path) -> Result<(), BackupError> {
    if out.exists() {
        return Err(BackupError::Exists(out.to_path_buf()));
    }
    if !database.exists() {
        return Err(BackupError::Refused(format!(
            "{} does not exist: nothing to back up",
            database.display()
        )));
    }
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(database))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sqlite(database))?;
    let target = out
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{} is not a UTF-8 path", out.display())))?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(sqlite(database))?;
    sync_file(out)?;
    Ok(())
}

/// Opens a backup file read-only (nothing is written to it while checked).
pub fn open_read_only(path: &Path) -> Result<rusqlite::Connection, BackupError> {
    if !path.is_file() {
        return Err(BackupError::Refused(format!(
            "{} is not a file",
            path.display()
        )));
    }
    rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(path))
}

/// SQLite's `PRAGMA integrity_check`: every page, index and constraint.
pub fn integrity_check(conn: &rusqlite::Connection, path: &Path) -> Result<(), BackupError> {
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| corrupt(path, e))?;
    let lines: Vec<String> = stmt
        .query_map([], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| corrupt(path, e))?;
    if lines == ["ok"] {
        Ok(())
    } else {
        Err(BackupError::Corrupt {
            path: path.to_path_buf(),
            detail: lines.into_iter().take(5).collect::<Vec<_>>().join("; "),
        })
    }
}

fn corrupt(path: &Path, e: rusqlite::Error) -> BackupError {
    BackupError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// The number of rows in `table` (a name from the caller's own schema,
/// never from input).
pub fn count(
    conn: &rusqlite::Connection,
    table: &'static str,
    path: &Path,
) -> Result<u64, BackupError> {
    let n: i64 = conn
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .map_err(sqlite(path))?;
    Ok(n as u64)
}

/// The file's size and lower-case hex SHA-256, read in 1 MiB pieces.
pub fn file_sha256(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        context.update(&buffer[..n]);
    }
    let hex = context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((bytes, hex))
}

/// What [`install`] did with the database it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Where the previous database (and its `-wal`/`-shm`) were moved, if
    /// there was one.
    pub previous: Option<PathBuf>,
}

/// Puts the checked backup `from` at `database`. A database already there
/// is refused unless `replace`; then it is moved aside (with its `-wal`
/// and `-shm`) to `NAME.before-restore-TIMESTAMP`, never deleted. The copy
/// is written beside the target, synced, and renamed into place, so a
/// crash leaves either the old state or the new, not half of one.
pub fn install(from: &Path, database: &Path, replace: bool) -> Result<Installed, BackupError> {
    let folder = database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(io(folder))?;
    let staging = with_suffix(database, ".restoring");
    if staging.exists() {
        std::fs::remove_file(&staging).map_err(io(&staging))?;
    }
    std::fs::copy(from, &staging).map_err(io(&staging))?;
    sync_file(&staging)?;

    let mut previous = None;
    if database.exists() {
        if !replace {
            let _ = std::fs::remove_file(&staging);
            return Err(BackupError::Refused(format!(
                "{} exists: pass --replace to move it aside and restore over it",
                database.display()
            )));
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let aside = with_suffix(database, &format!(".before-restore-{stamp}"));
        for suffix in ["", "-wal", "-shm"] {
            let from = with_suffix(database, suffix);
            if from.exists() {
                let to = with_suffix(&aside, suffix);
                std::fs::rename(&from, &to).map_err(io(&from))?;
            }
        }
        previous = Some(aside);
    } else {
        for suffix in ["-wal", "-shm"] {
            let stale = with_suffix(database, suffix);
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(io(&stale))?;
            }
        }
    }
    std::fs::rename(&staging, database).map_err(io(database))?;
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(Installed { previous })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                BackupError::Exists(path.to_path_buf())
            } else {
                BackupError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Refuses to restore under a running process: something listening on
/// `addr` (the program's own address) means it still runs.
pub fn refuse_if_listening(addr: std::net::SocketAddr, what: &str) -> Result<(), BackupError> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    match std::net::TcpStream::connect_timeout(&probe, std::time::Duration::from_millis(300)) {
        Ok(_) => Err(BackupError::Refused(format!(
            "something is listening on {addr}, {what}'s address: stop it before restoring"
        ))),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &Path) -> PathBuf {
        let path = dir.join("live.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER); \
             INSERT INTO t VALUES (1), (2), (3);",
        )
        .unwrap();
        path
    }

    #[test]
    fn a_snapshot_holds_what_was_committed_even_with_the_wal_unmerged() {
        let dir = tempfile::tempdir().unwrap();
        let live = database(dir.path());
        // Keep a writer open so the rows sit in the -wal, not the main file.
        let writer = rusqlite::Connection::open(&live).unwrap();
        writer.execute("INSERT INTO t VALUES (4)", []).unwrap();
        let out = dir.path().join("backup.db");
        snapshot(&live, &out).unwrap();
        let conn = open_read_only(&out).unwrap();
        integrity_check(&conn, &out).unwrap();
        assert_eq!(count(&conn, "t", &out).unwrap(), 4);
        assert!(matches!(snapshot(&live, &out), Err(BackupError::Exists(_))));
    }

    #[test]
    fn a_changed_file_no_longer_matches_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let live = database(dir.path());
        let out = dir.path().join("backup.db");
        snapshot(&live, &out).unwrap();
        let (bytes, sha256) = file_sha256(&out).unwrap();
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            program: "kith-test".into(),
            version: "0".into(),
            created_at: chrono::Utc::now(),
            file: "backup.db".into(),
            bytes,
            sha256,
            contents: serde_json::json!({}),
            not_copied: vec![],
        };
        manifest.write(&out).unwrap();
        assert_eq!(
            Manifest::read_and_check(&out, "kith-test").unwrap(),
            manifest
        );
        assert!(matches!(
            Manifest::read_and_check(&out, "kith-other"),
            Err(BackupError::Manifest { .. })
        ));
        let mut data = std::fs::read(&out).unwrap();
        let last = data.len() - 1;
        data[last] ^= 1;
        std::fs::write(&out, data).unwrap();
        assert!(matches!(
            Manifest::read_and_check(&out, "kith-test"),
            Err(BackupError::Tampered { .. })
        ));
    }

    #[test]
    fn install_moves_the_previous_database_aside_and_refuses_without_replace() {
        let dir = tempfile::tempdir().unwrap();
        let live = database(dir.path());
        let out = dir.path().join("backup.db");
        snapshot(&live, &out).unwrap();
        let target = dir.path().join("restored.db");
        assert_eq!(install(&out, &target, false).unwrap().previous, None);
        assert!(matches!(
            install(&out, &target, false),
            Err(BackupError::Refused(_))
        ));
        let installed = install(&out, &target, true).unwrap();
        let aside = installed.previous.expect("the old one was kept");
        assert!(aside.exists() && target.exists());
        let conn = rusqlite::Connection::open(&target).unwrap();
        assert_eq!(count(&conn, "t", &target).unwrap(), 3);
    }

    #[test]
    fn a_file_that_is_not_a_database_fails_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.db");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let result = open_read_only(&path).and_then(|c| integrity_check(&c, &path));
        assert!(result.is_err());
    }
}
