//! `audit verify`: proves, offline from the hub's word, that the log the hub
//! serves is the one it signed and an extension of the one seen last time.
//!
//! 1. The latest checkpoint's signature is checked with the auditor's copy
//!    of the log key ([`super::trust`]).
//! 2. Every entry up to the checkpoint's tree size is read; each visible
//!    entry's bytes must hash to the leaf hash logged for it (an edited
//!    entry is named here).
//! 3. The root over all the leaf hashes (RFC 9162 §2.1.1, withheld entries
//!    by hash alone) must equal the signed root. If it does not, an inclusion
//!    proof is asked for every leaf — the hub's tree holds the hashes it
//!    signed — and the leaves whose proof fails are named: those are the
//!    rewritten ones.
//! 4. If a checkpoint was saved by an earlier verify, a consistency proof
//!    from its size to the new one must verify against both roots (RFC 9162
//!    §2.1.4.2): nothing already logged was changed or dropped.
//! 5. Only when all of that holds is the new checkpoint saved for next time.

use std::fmt;
use std::path::PathBuf;

use kith_tlog::{Hash, RootBuilder, verify_consistency, verify_inclusion};

use super::client::AuditClient;
use super::state::SavedCheckpoint;
use super::trust::{self, VerifiedCheckpoint};
use super::{AuditError, Auditor};
use crate::config::AgentConfig;

/// What to verify against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The log's vkey file; else the config's `[audit] vkey`; else (loudly)
    /// the hub's own key.
    pub vkey: Option<PathBuf>,
    /// The saved-checkpoint file; `None` skips the consistency check and
    /// saves nothing.
    pub state: Option<PathBuf>,
}

/// One way the log failed to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Entries `first ..= last` no longer hash to the leaf hashes logged for
    /// them: their content was changed after they were logged.
    ContentChanged { first: u64, last: u64 },
    /// Entries `first ..= last` carry leaf hashes that the signed checkpoint
    /// does not commit to: their logged hashes were rewritten.
    NotInCheckpoint { first: u64, last: u64 },
    /// The leaf hashes do not reproduce the signed root, and no single leaf
    /// could be blamed.
    RootMismatch { computed: Hash, signed: Hash },
    /// The hub would not give an inclusion proof for an entry.
    NoInclusionProof { index: u64, reason: String },
    /// The new checkpoint does not extend the saved one.
    Inconsistent {
        saved: SavedCheckpoint,
        new_size: u64,
        reason: String,
    },
    /// The log is smaller than when it was last saved.
    Shrunk {
        saved: SavedCheckpoint,
        new_size: u64,
    },
    /// The saved checkpoint is of another log.
    OtherLog {
        saved_origin: String,
        origin: String,
    },
}

impl Problem {
    /// The entry indexes the problem names, as an inclusive range.
    pub fn entries(&self) -> Option<(u64, u64)> {
        match self {
            Problem::ContentChanged { first, last } | Problem::NotInCheckpoint { first, last } => {
                Some((*first, *last))
            }
            Problem::NoInclusionProof { index, .. } => Some((*index, *index)),
            Problem::Inconsistent { saved, .. } | Problem::Shrunk { saved, .. } => {
                Some((0, saved.tree_size.saturating_sub(1)))
            }
            Problem::RootMismatch { .. } | Problem::OtherLog { .. } => None,
        }
    }
}

fn entries_label(first: u64, last: u64) -> String {
    if first == last {
        format!("entry {first}")
    } else {
        format!("entries {first}-{last}")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ContentChanged { first, last } if first == last => write!(
                f,
                "entry {first}: its content no longer matches the leaf hash logged for it"
            ),
            Problem::ContentChanged { first, last } => write!(
                f,
                "entries {first}-{last}: their content no longer matches the leaf hashes logged for them"
            ),
            Problem::NotInCheckpoint { first, last } => write!(
                f,
                "{}: the leaf hash logged for it is not the one the signed checkpoint commits to \
                 (its inclusion proof fails)",
                entries_label(*first, *last)
            ),
            Problem::RootMismatch { computed, signed } => write!(
                f,
                "the entries' leaf hashes give root {} but the checkpoint signs {}",
                hex::encode(computed),
                hex::encode(signed)
            ),
            Problem::NoInclusionProof { index, reason } => {
                write!(
                    f,
                    "entry {index}: the hub gave no inclusion proof: {reason}"
                )
            }
            Problem::Inconsistent {
                saved,
                new_size,
                reason,
            } => write!(
                f,
                "entries 0-{}: the checkpoint of size {new_size} is not consistent with the one \
                 saved at {} (size {}, root {}): {reason}; entries logged before then were \
                 changed or removed",
                saved.tree_size.saturating_sub(1),
                saved.saved_at,
                saved.tree_size,
                saved.root_hash
            ),
            Problem::Shrunk { saved, new_size } => write!(
                f,
                "entries {new_size}-{}: the log now has {new_size} entries but had {} when saved \
                 at {}; entries were removed",
                saved.tree_size.saturating_sub(1),
                saved.tree_size,
                saved.saved_at
            ),
            Problem::OtherLog {
                saved_origin,
                origin,
            } => write!(
                f,
                "the saved checkpoint is of log {saved_origin:?}, but the hub serves log \
                 {origin:?}; use another --state file for another log"
            ),
        }
    }
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub hub_address: String,
    pub checkpoint: VerifiedCheckpoint,
    /// Entries checked (the checkpoint's tree size).
    pub entries: u64,
    /// Of those, how many were withheld from this auditor (checked by leaf
    /// hash alone).
    pub withheld: u64,
    pub problems: Vec<Problem>,
    /// The earlier checkpoint the new one was proved consistent with.
    pub consistent_with: Option<SavedCheckpoint>,
    /// Where the new checkpoint was saved, when it was.
    pub saved_to: Option<PathBuf>,
}

impl VerifyReport {
    /// Whether everything verified.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report for people.
    pub fn render(&self) -> String {
        let cp = &self.checkpoint;
        let mut out = String::new();
        if let Some(w) = cp.key.warning() {
            out.push_str(&w);
            out.push('\n');
        }
        if !self.ok() {
            out.push_str(&format!(
                "AUDIT LOG VERIFICATION FAILED for log {} at {} (checkpoint size {}, root {}):\n",
                cp.origin,
                self.hub_address,
                cp.tree_size,
                hex::encode(cp.root_hash)
            ));
            for p in &self.problems {
                out.push_str(&format!("  - {p}\n"));
            }
            out.push_str("The saved checkpoint was not updated.\n");
            return out;
        }
        out.push_str(&format!(
            "verified {} entries, checkpoint size {} root {} signed by {}",
            self.entries,
            cp.tree_size,
            hex::encode(cp.root_hash),
            cp.origin
        ));
        if self.withheld > 0 {
            out.push_str(&format!(
                " ({} withheld from you, checked by leaf hash only)",
                self.withheld
            ));
        }
        out.push('\n');
        match &self.consistent_with {
            Some(saved) => out.push_str(&format!(
                "consistent with the checkpoint saved at {} (size {}, root {})\n",
                saved.saved_at, saved.tree_size, saved.root_hash
            )),
            None if self.saved_to.is_some() => {
                out.push_str("no checkpoint was saved before: nothing to prove consistency with\n")
            }
            None => {
                out.push_str("no state file: consistency with earlier checkpoints not checked\n")
            }
        }
        if let Some(path) = &self.saved_to {
            out.push_str(&format!(
                "saved this checkpoint to {} for next time\n",
                path.display()
            ));
        }
        out
    }

    /// The report for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        let cp = &self.checkpoint;
        serde_json::json!({
            "ok": self.ok(),
            "hub_address": self.hub_address,
            "checkpoint": {
                "origin": cp.origin,
                "tree_size": cp.tree_size,
                "root_hash": hex::encode(cp.root_hash),
                "note": cp.note,
                "key": match &cp.key {
                    trust::KeySource::File(p) => p.display().to_string(),
                    trust::KeySource::HubSent => "hub-sent (not independently trusted)".into(),
                },
            },
            "entries": self.entries,
            "withheld": self.withheld,
            "problems": self.problems.iter().map(|p| serde_json::json!({
                "entries": p.entries().map(|(a, b)| [a, b]),
                "message": p.to_string(),
            })).collect::<Vec<_>>(),
            "consistent_with": self.consistent_with,
            "saved_to": self.saved_to.as_ref().map(|p| p.display().to_string()),
        })
    }
}

/// Collapses sorted indexes into inclusive runs.
fn runs(indexes: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &i in indexes {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => out.push((i, i)),
        }
    }
    out
}

/// Runs the whole verification; see the module docs. `progress(done,
/// total)` is called as entries are read. An `Err` means the verification
/// could not be carried out (no hub, refused, bad key, bad signature); a log
/// that fails its checks is an `Ok` report with problems.
pub async fn verify(
    config: &AgentConfig,
    auditor: Auditor,
    options: &VerifyOptions,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<VerifyReport, AuditError> {
    let trusted = trust::trusted_key(config, options.vkey.as_deref())?;
    let saved = match &options.state {
        Some(path) => SavedCheckpoint::load(path)?,
        None => None,
    };
    let mut client = AuditClient::connect(config, auditor).await?;
    let checkpoint = trust::fetch(&mut client, trusted.as_ref()).await?;
    let size = checkpoint.tree_size;
    let entries = client.entries(0, size, progress).await?;

    let mut problems = Vec::new();
    let changed: Vec<u64> = entries
        .iter()
        .filter(|e| !e.content_matches())
        .map(|e| e.index)
        .collect();
    for (first, last) in runs(&changed) {
        problems.push(Problem::ContentChanged { first, last });
    }

    let mut root = RootBuilder::new();
    for e in &entries {
        root.push(e.leaf_hash);
    }
    let computed = root.root();
    if computed != checkpoint.root_hash {
        let mut failing = Vec::new();
        for e in &entries {
            match client.inclusion_proof(e.index, size).await {
                Ok(proof) => {
                    if verify_inclusion(&e.leaf_hash, e.index, size, &proof, &checkpoint.root_hash)
                        .is_err()
                    {
                        failing.push(e.index);
                    }
                }
                Err(err) => problems.push(Problem::NoInclusionProof {
                    index: e.index,
                    reason: err.to_string(),
                }),
            }
        }
        if failing.is_empty() {
            problems.push(Problem::RootMismatch {
                computed,
                signed: checkpoint.root_hash,
            });
        }
        for (first, last) in runs(&failing) {
            problems.push(Problem::NotInCheckpoint { first, last });
        }
    }

    let mut consistent_with = None;
    if let Some(saved) = saved {
        let saved_root = saved.root().expect("checked on load");
        if saved.origin != checkpoint.origin {
            problems.push(Problem::OtherLog {
                saved_origin: saved.origin.clone(),
                origin: checkpoint.origin.clone(),
            });
        } else if saved.tree_size > size {
            problems.push(Problem::Shrunk {
                saved,
                new_size: size,
            });
        } else {
            let proof = if saved.tree_size == size {
                Vec::new()
            } else {
                client.consistency_proof(saved.tree_size, size).await?
            };
            match verify_consistency(
                saved.tree_size,
                size,
                &saved_root,
                &checkpoint.root_hash,
                &proof,
            ) {
                Ok(()) => consistent_with = Some(saved),
                Err(e) => problems.push(Problem::Inconsistent {
                    saved,
                    new_size: size,
                    reason: e.to_string(),
                }),
            }
        }
    }

    let mut saved_to = None;
    if problems.is_empty()
        && let Some(path) = &options.state
    {
        SavedCheckpoint::of(&checkpoint).save(path)?;
        saved_to = Some(path.clone());
    }
    Ok(VerifyReport {
        hub_address: client.address().to_string(),
        entries: entries.len() as u64,
        withheld: entries.iter().filter(|e| e.entry.is_none()).count() as u64,
        checkpoint,
        problems,
        consistent_with,
        saved_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_indexes_are_named_as_runs() {
        assert_eq!(runs(&[1, 2, 3, 7, 9, 10]), [(1, 3), (7, 7), (9, 10)]);
        assert_eq!(
            Problem::ContentChanged { first: 7, last: 7 }.to_string(),
            "entry 7: its content no longer matches the leaf hash logged for it"
        );
        assert!(
            Problem::NotInCheckpoint { first: 2, last: 4 }
                .to_string()
                .starts_with("entries 2-4:")
        );
    }
}
