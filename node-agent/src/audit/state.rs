//! The checkpoint an auditor saved at their last successful verify.
//!
//! `audit verify` proves the log it sees now is an extension of the log it
//! saw last time with an RFC 9162 consistency proof from the saved tree size
//! and root. The saved checkpoint lives in a small JSON file (default
//! `~/.kith/audit-state.json`, or `--state FILE`): the signed note as
//! received, its origin, size and root, and when it was saved. It is written
//! whole to a temporary file and renamed, so a crash never leaves half of
//! one.

use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use kith_tlog::Hash;
use serde::{Deserialize, Serialize};

use super::AuditError;
use super::trust::VerifiedCheckpoint;

/// A saved checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCheckpoint {
    pub origin: String,
    pub tree_size: u64,
    /// Lower-case hex.
    pub root_hash: String,
    /// The signed note exactly as received.
    pub note: String,
    /// When it was saved, RFC 3339 UTC.
    pub saved_at: String,
}

impl SavedCheckpoint {
    /// The record of a verified checkpoint, stamped now.
    pub fn of(checkpoint: &VerifiedCheckpoint) -> Self {
        Self {
            origin: checkpoint.origin.clone(),
            tree_size: checkpoint.tree_size,
            root_hash: hex::encode(checkpoint.root_hash),
            note: checkpoint.note.clone(),
            saved_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }

    /// The root as bytes.
    pub fn root(&self) -> Option<Hash> {
        hex::decode(&self.root_hash).ok()?.try_into().ok()
    }

    /// Reads a state file; `Ok(None)` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Self>, AuditError> {
        let bad = |reason: String| AuditError::State {
            path: path.to_path_buf(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(e.to_string())),
        };
        let saved: Self = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if saved.root().is_none() {
            return Err(bad("root_hash is not 32 bytes of hex".into()));
        }
        Ok(Some(saved))
    }

    /// Writes the state file (creating its folder), atomically.
    pub fn save(&self, path: &Path) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut text = serde_json::to_string_pretty(self).expect("a checkpoint serialises");
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// `~/.kith/audit-state.json`, when there is a home folder.
pub fn default_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".kith").join("audit-state.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::trust::KeySource;

    #[test]
    fn a_saved_checkpoint_round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        assert_eq!(SavedCheckpoint::load(&path).unwrap(), None);
        let cp = VerifiedCheckpoint {
            note: "note\n".into(),
            origin: "o".into(),
            tree_size: 9,
            root_hash: [3; 32],
            key: KeySource::HubSent,
            vkey: String::new(),
            hub_vkey_differs: None,
        };
        let saved = SavedCheckpoint::of(&cp);
        saved.save(&path).unwrap();
        let back = SavedCheckpoint::load(&path).unwrap().unwrap();
        assert_eq!(back, saved);
        assert_eq!(back.root(), Some([3; 32]));
        std::fs::write(&path, "{}").unwrap();
        assert!(SavedCheckpoint::load(&path).is_err());
    }
}
