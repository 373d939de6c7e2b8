//! Which key the auditor trusts, and checking a signed checkpoint with it.
//!
//! The log's verifier key is a C2SP vkey (`<name>+<key id>+<base64 key>`),
//! handed to auditors out of band: `pki init` writes `PKI/audit-log.vkey`,
//! the demo `DIR/audit-log.vkey`. It comes from `--vkey FILE` or the agent
//! config's `[audit] vkey`. Without either, the checkpoint can only be
//! checked against the key the hub sends with it — which proves nothing
//! against a hub that lies — so the result says so
//! ([`KeySource::HubSent`]) and the commands warn loudly.

use std::path::{Path, PathBuf};

use kith_tlog::{Hash, NoteVerifier, open_checkpoint};

use super::client::{AuditClient, RawCheckpoint};
use super::{AuditError, Auditor};
use crate::config::AgentConfig;

/// Where the key a checkpoint was checked against came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A vkey file the auditor holds.
    File(PathBuf),
    /// Only the key the hub itself sent: the signature is well-formed, but
    /// nothing independent vouches for the key.
    HubSent,
}

impl KeySource {
    /// The warning to print when no independent key was used.
    pub fn warning(&self) -> Option<String> {
        match self {
            KeySource::File(_) => None,
            KeySource::HubSent => Some(
                "WARNING: no log key given (--vkey FILE or [audit] vkey in the agent config): \
                 the checkpoint was checked only against the key the hub itself sent, which \
                 proves nothing if the hub is not honest. Get the log's vkey from the \
                 federation (pki init writes PKI/audit-log.vkey) and pass it."
                    .to_string(),
            ),
        }
    }
}

/// A checkpoint whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The signed note exactly as the hub sent it.
    pub note: String,
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Hash,
    pub key: KeySource,
    /// The vkey the note verified with.
    pub vkey: String,
    /// The vkey the hub sent, when it differs from the trusted one.
    pub hub_vkey_differs: Option<String>,
}

/// Reads a vkey file (the first non-empty line).
pub fn read_vkey(path: &Path) -> Result<NoteVerifier, AuditError> {
    let bad = |reason: String| AuditError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| bad("is empty".into()))?;
    NoteVerifier::from_vkey(line).map_err(|e| bad(format!("not a C2SP vkey: {e}")))
}

/// The trusted key: `flag` (from `--vkey`) over the config's `[audit] vkey`.
pub fn trusted_key(
    config: &AgentConfig,
    flag: Option<&Path>,
) -> Result<Option<(PathBuf, NoteVerifier)>, AuditError> {
    match flag.or(config.audit.vkey.as_deref()) {
        None => Ok(None),
        Some(path) => Ok(Some((path.to_path_buf(), read_vkey(path)?))),
    }
}

/// Checks `raw` against the trusted key, or against the hub's own key when
/// there is none.
pub fn check(
    raw: &RawCheckpoint,
    trusted: Option<&(PathBuf, NoteVerifier)>,
) -> Result<VerifiedCheckpoint, AuditError> {
    let (verifier, key) = match trusted {
        Some((path, v)) => (v.clone(), KeySource::File(path.clone())),
        None => (
            NoteVerifier::from_vkey(raw.vkey.trim()).map_err(|e| {
                AuditError::Signature(format!("the hub sent an unusable vkey: {e}"))
            })?,
            KeySource::HubSent,
        ),
    };
    let checkpoint = open_checkpoint(&raw.signed_note, &verifier).map_err(|e| {
        let whose = match &key {
            KeySource::File(p) => format!("the key in {}", p.display()),
            KeySource::HubSent => "the key the hub sent".to_string(),
        };
        AuditError::Signature(format!("{e} (checked with {whose}, {})", verifier.vkey()))
    })?;
    if checkpoint.size() != raw.tree_size {
        return Err(AuditError::Signature(format!(
            "the hub says the checkpoint covers {} entries but the signed note says {}",
            raw.tree_size,
            checkpoint.size()
        )));
    }
    let vkey = verifier.vkey();
    let hub_vkey_differs = (raw.vkey.trim() != vkey).then(|| raw.vkey.trim().to_string());
    Ok(VerifiedCheckpoint {
        note: raw.signed_note.clone(),
        origin: checkpoint.origin().to_string(),
        tree_size: checkpoint.size(),
        root_hash: *checkpoint.root_hash(),
        key,
        vkey,
        hub_vkey_differs,
    })
}

/// `audit checkpoint`: fetches the latest checkpoint and checks its
/// signature.
pub async fn checkpoint(
    config: &AgentConfig,
    auditor: Auditor,
    vkey: Option<&Path>,
) -> Result<VerifiedCheckpoint, AuditError> {
    let trusted = trusted_key(config, vkey)?;
    let mut client = AuditClient::connect(config, auditor).await?;
    let raw = client.get_checkpoint().await?;
    check(&raw, trusted.as_ref())
}

/// Fetches and checks the latest checkpoint over an open client.
pub async fn fetch(
    client: &mut AuditClient,
    trusted: Option<&(PathBuf, NoteVerifier)>,
) -> Result<VerifiedCheckpoint, AuditError> {
    let raw = client.get_checkpoint().await?;
    check(&raw, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_tlog::{Checkpoint, NoteSigner};

    fn signed(size: u64) -> (NoteSigner, RawCheckpoint) {
        let (signer, _) = NoteSigner::generate("kith.test/log").unwrap();
        let note = signer
            .sign_checkpoint(&Checkpoint::new("kith.test/log", size, [7; 32]).unwrap())
            .unwrap();
        let raw = RawCheckpoint {
            signed_note: note,
            tree_size: size,
            vkey: signer.vkey(),
        };
        (signer, raw)
    }

    #[test]
    fn a_checkpoint_verifies_with_the_trusted_key_and_not_with_another() {
        let (signer, raw) = signed(5);
        let trusted = (PathBuf::from("log.vkey"), signer.verifier());
        let ok = check(&raw, Some(&trusted)).unwrap();
        assert_eq!((ok.tree_size, ok.root_hash), (5, [7; 32]));
        assert_eq!(ok.key.warning(), None);

        let (other, _) = NoteSigner::generate("kith.test/log").unwrap();
        let wrong = (PathBuf::from("other.vkey"), other.verifier());
        let err = check(&raw, Some(&wrong)).unwrap_err();
        assert!(err.to_string().contains("other.vkey"), "{err}");

        let hub_only = check(&raw, None).unwrap();
        assert!(hub_only.key.warning().unwrap().contains("WARNING"));

        let mut lying = raw.clone();
        lying.tree_size = 6;
        assert!(check(&lying, Some(&trusted)).is_err());
    }
}
