//! Client-side proof verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2).
//!
//! This is what a node agent or an external auditor runs against proofs the hub
//! hands out: it needs only the leaf hash, the sizes, the proof and a trusted root
//! (typically from a signed checkpoint), never the tree. The algorithms are the
//! RFC's bit-twiddling loops, preceded by an exact proof-length check so that a
//! truncated or padded proof gets a precise error rather than a root mismatch.

use crate::error::ProofError;
use crate::hash::{Hash, node_hash, to_hex};

/// Number of hashes in the inclusion proof for `index` in a tree of `size` leaves
/// (`index < size`): the inner part below the point where the path reaches the
/// right edge, plus the border part along that edge.
fn inclusion_parts(index: u64, size: u64) -> (usize, usize) {
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    (inner, border)
}

/// The number of hashes RFC 9162 puts in `PATH(index, D[size])`.
pub fn inclusion_proof_len(index: u64, size: u64) -> Result<usize, ProofError> {
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = inclusion_parts(index, size);
    Ok(inner + border)
}

/// The number of hashes RFC 9162 puts in `PROOF(old_size, D[new_size])`.
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> Result<usize, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeGreater { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(0);
    }
    let shift = old_size.trailing_zeros() as usize;
    let (inner, border) = inclusion_parts(old_size - 1, new_size);
    let seed = usize::from(!old_size.is_power_of_two());
    Ok(seed + inner.saturating_sub(shift) + border)
}

/// Recomputes the root implied by an inclusion proof (RFC 9162 section 2.1.3.2,
/// steps 1-4), after checking the proof length.
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    let expected = inclusion_proof_len(index, tree_size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    let mut f = index;
    let mut s = tree_size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    Ok(r)
}

/// Verifies that `leaf_hash` is the leaf at `index` in the tree of `tree_size`
/// leaves whose root is `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            computed: to_hex(&computed),
            expected: to_hex(root),
        });
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of
/// the tree of `new_size` leaves with root `new_root` (RFC 9162 section 2.1.4.2).
///
/// As in RFC 9162, `old_size == new_size` needs an empty proof and equal roots, and
/// `old_size == 0` needs an empty proof (the empty tree is a prefix of every tree).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let expected = consistency_proof_len(old_size, new_size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if old_size == new_size {
        if old_root != new_root {
            return Err(ProofError::NewRootMismatch {
                computed: to_hex(old_root),
                expected: to_hex(new_root),
            });
        }
        return Ok(());
    }
    if old_size == 0 {
        return Ok(());
    }
    let wrong_len = || ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };

    // Step 2: if the old tree is perfect its root is the first path element.
    let (first, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        let (first, rest) = proof.split_first().ok_or_else(wrong_len)?;
        (*first, rest)
    };
    // Steps 3-4.
    let mut f = old_size - 1;
    let mut s = new_size - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // Step 5.
    let mut fr = first;
    let mut sr = first;
    // Step 6.
    for c in rest {
        if s == 0 {
            return Err(wrong_len());
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    // Step 7.
    if s != 0 {
        return Err(wrong_len());
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: to_hex(&fr),
            expected: to_hex(old_root),
        });
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch {
            computed: to_hex(&sr),
            expected: to_hex(new_root),
        });
    }
    Ok(())
}
