//! The verifiable audit log: a Merkle tree over the audit entries and the
//! signed checkpoints that commit the hub to it.
//!
//! Leaves are the audit entries in index order; each leaf hash is computed
//! when its entry is appended (see [`crate::store`]). The sequencer
//! ([`TransparencyLog::sequence`], run every interval by
//! [`TransparencyLog::spawn`]) takes the leaves appended since it last ran
//! into the in-memory tree and, if the tree grew, signs a C2SP checkpoint
//! for the new size — but only after checking the new tree is consistent
//! with the last signed one. At start-up the tree is rebuilt from the stored
//! leaf hashes and must reproduce the latest stored checkpoint, or the hub
//! refuses to start: a log that no longer matches what it signed has been
//! rewritten.

use std::sync::Arc;
use std::time::Duration;

use kith_tlog::{Checkpoint, MerkleTree, NoteSigner, verify_consistency};
use tokio::sync::{RwLock, watch};

use crate::store::{Store, StoreError, StoredCheckpoint};

/// How many leaf hashes to read per query when catching up.
const PAGE: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the audit log does not match its signed checkpoint at tree size {size}: \
         {detail}; the log may have been rewritten (run `kith-agent audit verify`)"
    )]
    Inconsistent { size: u64, detail: String },
    #[error("signing: {0}")]
    Sign(String),
    #[error("{0}")]
    Proof(String),
}

/// The latest signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub tree_size: u64,
    pub root_hash: [u8; 32],
    pub note: String,
}

pub struct TransparencyLog {
    origin: String,
    signer: NoteSigner,
    store: Arc<dyn Store>,
    tree: RwLock<MerkleTree>,
    latest: RwLock<Option<SignedCheckpoint>>,
    /// Whether this hub signed (held the sequencer lease) when it last sequenced.
    leading: std::sync::atomic::AtomicBool,
    /// When sequencing last succeeded: the checkpoint then covered every
    /// entry stored (the `kith_hub_checkpoint_age_seconds` gauge).
    current_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl TransparencyLog {
    /// Rebuilds the tree from the store and checks it against the latest
    /// signed checkpoint.
    pub async fn open(store: Arc<dyn Store>, signer: NoteSigner) -> Result<Self, LogError> {
        let origin = signer.name().to_string();
        let mut tree = MerkleTree::new();
        loop {
            let page = store.audit_leaf_hashes(tree.len(), PAGE).await?;
            if page.is_empty() {
                break;
            }
            for leaf in page {
                tree.push(leaf);
            }
        }
        let latest = match store.latest_checkpoint().await? {
            None => None,
            Some(cp) => {
                // The latest checkpoint must verify under the configured key:
                // a replaced key would silently start a different log.
                signer.verifier().verify(&cp.signed_note).map_err(|e| LogError::Inconsistent {
                    size: cp.tree_size,
                    detail: format!("the latest checkpoint does not verify under the configured signing key ({e})"),
                })?;
                let root = tree
                    .root_at(cp.tree_size)
                    .map_err(|e| LogError::Inconsistent {
                        size: cp.tree_size,
                        detail: format!("the store holds only {} entries ({e})", tree.len()),
                    })?;
                if root != cp.root_hash {
                    return Err(LogError::Inconsistent {
                        size: cp.tree_size,
                        detail: "the recomputed root differs from the signed root".into(),
                    });
                }
                Some(SignedCheckpoint {
                    tree_size: cp.tree_size,
                    root_hash: cp.root_hash,
                    note: cp.signed_note,
                })
            }
        };
        tracing::info!(entries = tree.len(), checkpoint = latest.as_ref().map(|c| c.tree_size), %origin, "audit log opened");
        Ok(Self {
            origin,
            signer,
            store,
            tree: RwLock::new(tree),
            latest: RwLock::new(latest),
            leading: std::sync::atomic::AtomicBool::new(false),
            current_at: std::sync::Mutex::new(None),
        })
    }

    /// The log's origin line (also the signing key's name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key in C2SP vkey format.
    pub fn vkey(&self) -> String {
        self.signer.vkey()
    }

    /// Takes newly appended leaves into the tree and signs a checkpoint if
    /// the tree grew. Returns the new checkpoint, if one was signed.
    pub async fn sequence(&self) -> Result<Option<SignedCheckpoint>, LogError> {
        let mut tree = self.tree.write().await;
        loop {
            let page = self.store.audit_leaf_hashes(tree.len(), PAGE).await?;
            if page.is_empty() {
                break;
            }
            for leaf in page {
                tree.push(leaf);
            }
        }
        let leading = self.store.hold_sequencer_lease().await?;
        self.leading
            .store(leading, std::sync::atomic::Ordering::Relaxed);
        if !leading {
            // Another replica signs: follow its checkpoints.
            return self.follow(&tree).await;
        }
        let size = tree.len();
        let previous = self.latest.read().await.clone();
        if size == 0 || previous.as_ref().is_some_and(|p| p.tree_size >= size) {
            return Ok(None);
        }
        let root = tree.root();
        if let Some(prev) = &previous {
            // Never sign a tree that does not extend the last signed one.
            let proof = tree
                .consistency_proof(prev.tree_size, size)
                .map_err(|e| LogError::Proof(e.to_string()))?;
            verify_consistency(prev.tree_size, size, &prev.root_hash, &root, &proof).map_err(
                |e| LogError::Inconsistent {
                    size: prev.tree_size,
                    detail: e.to_string(),
                },
            )?;
        }
        drop(tree);
        let checkpoint =
            Checkpoint::new(&self.origin, size, root).map_err(|e| LogError::Sign(e.to_string()))?;
        let note = self
            .signer
            .sign_checkpoint(&checkpoint)
            .map_err(|e| LogError::Sign(e.to_string()))?;
        self.store
            .append_checkpoint(&StoredCheckpoint {
                tree_size: size,
                root_hash: root,
                signed_note: note.clone(),
            })
            .await?;
        let signed = SignedCheckpoint {
            tree_size: size,
            root_hash: root,
            note,
        };
        *self.latest.write().await = Some(signed.clone());
        Ok(Some(signed))
    }

    /// On a replica that does not sign: adopt the newest stored checkpoint,
    /// after checking its signature and that this replica's own tree (built
    /// from the same stored leaf hashes) gives the same root and extends the
    /// checkpoint it had.
    async fn follow(&self, tree: &MerkleTree) -> Result<Option<SignedCheckpoint>, LogError> {
        let Some(cp) = self.store.latest_checkpoint().await? else {
            return Ok(None);
        };
        let previous = self.latest.read().await.clone();
        if previous
            .as_ref()
            .is_some_and(|p| p.tree_size >= cp.tree_size)
        {
            return Ok(None);
        }
        self.signer
            .verifier()
            .verify(&cp.signed_note)
            .map_err(|e| LogError::Inconsistent {
                size: cp.tree_size,
                detail: format!("a stored checkpoint does not verify: {e}"),
            })?;
        let root = tree
            .root_at(cp.tree_size)
            .map_err(|e| LogError::Proof(e.to_string()))?;
        if root != cp.root_hash {
            return Err(LogError::Inconsistent {
                size: cp.tree_size,
                detail: "another replica signed a root this replica's tree does not give".into(),
            });
        }
        if let Some(prev) = &previous {
            let proof = tree
                .consistency_proof(prev.tree_size, cp.tree_size)
                .map_err(|e| LogError::Proof(e.to_string()))?;
            verify_consistency(prev.tree_size, cp.tree_size, &prev.root_hash, &root, &proof)
                .map_err(|e| LogError::Inconsistent {
                    size: prev.tree_size,
                    detail: e.to_string(),
                })?;
        }
        let adopted = SignedCheckpoint {
            tree_size: cp.tree_size,
            root_hash: cp.root_hash,
            note: cp.signed_note,
        };
        *self.latest.write().await = Some(adopted.clone());
        Ok(Some(adopted))
    }

    /// Runs [`Self::sequence`] every `interval` until `stop` is set, and once
    /// more on the way out so the last entries are covered.
    pub fn spawn(
        self: &Arc<Self>,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                log.sequence_noted().await;
            }
            if let Err(e) = log.sequence().await {
                tracing::error!(error = %e, "final audit log sequencing failed");
            }
        })
    }

    /// Sequences, noting the outcome for the metrics and health.
    async fn sequence_noted(&self) {
        match self.sequence().await {
            Ok(_) => {
                *self.current_at.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::time::Instant::now());
            }
            Err(e) => {
                crate::metrics::sequencing_failed();
                tracing::error!(error = %e, "audit log sequencing failed");
            }
        }
    }

    /// How long since sequencing last succeeded (the checkpoint covered
    /// every stored entry then); `None` before the first run.
    pub fn current_for(&self) -> Option<Duration> {
        self.current_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|at| at.elapsed())
    }

    /// The latest signed checkpoint, if any.
    pub async fn latest(&self) -> Option<SignedCheckpoint> {
        self.latest.read().await.clone()
    }

    /// An inclusion proof for leaf `index` in the tree of `tree_size`.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<Vec<[u8; 32]>, LogError> {
        self.tree
            .read()
            .await
            .inclusion_proof(index, tree_size)
            .map_err(|e| LogError::Proof(e.to_string()))
    }

    /// A consistency proof between two tree sizes.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<[u8; 32]>, LogError> {
        self.tree
            .read()
            .await
            .consistency_proof(old, new)
            .map_err(|e| LogError::Proof(e.to_string()))
    }

    /// Whether this hub signs checkpoints (rather than following another's).
    pub fn is_sequencer(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many leaves the tree holds (sequenced entries).
    pub async fn sequenced(&self) -> u64 {
        self.tree.read().await.len()
    }
}

/// Makes a new Ed25519 signing key for a log named `origin`, in the Go
/// `note` package's text formats: (skey, vkey).
pub fn generate_key(origin: &str) -> Result<(String, String), String> {
    use base64::Engine;
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| "no system randomness".to_string())?;
    let signer = NoteSigner::from_seed(origin, &seed).map_err(|e| e.to_string())?;
    let mut key = vec![0x01u8];
    key.extend_from_slice(&seed);
    let skey = format!(
        "PRIVATE+KEY+{origin}+{:08x}+{}",
        signer.key_id(),
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    Ok((skey, signer.vkey()))
}

/// Writes a new log signing key into `dir` as `audit-log.skey` (owner-only)
/// and `audit-log.vkey`; refuses to replace an existing key. Returns the
/// two paths.
pub fn write_key(
    dir: &std::path::Path,
    origin: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    let skey_path = dir.join("audit-log.skey");
    let vkey_path = dir.join("audit-log.vkey");
    if skey_path.exists() {
        return Err(format!(
            "{} already exists; refusing to replace a log key",
            skey_path.display()
        ));
    }
    let (skey, vkey) = generate_key(origin)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(&skey_path, format!("{skey}\n"))
        .map_err(|e| format!("{}: {e}", skey_path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&skey_path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", skey_path.display()))?;
    }
    std::fs::write(&vkey_path, format!("{vkey}\n"))
        .map_err(|e| format!("{}: {e}", vkey_path.display()))?;
    Ok((skey_path, vkey_path))
}

/// The origin the development tools give a new log.
pub const DEV_ORIGIN: &str = "kith.localhost/audit-log";
