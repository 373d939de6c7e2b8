//! The append-only Merkle tree the hub keeps in memory for its audit log.
//!
//! The hub must hand out roots, inclusion proofs and consistency proofs for any
//! past tree size on demand. Recomputing subtrees from the leaves would cost O(n)
//! per request, so [`MerkleTree`] stores every level of *perfect* (complete,
//! power-of-two aligned) subtrees: level 0 holds the leaf hashes, level `k` holds
//! the hash of leaves `[i·2^k, (i+1)·2^k)` once all of them exist. That is about two
//! hashes (64 bytes) per leaf, and any subtree RFC 9162 asks for is either one
//! stored node or a right-edge fold of at most log₂ n stored nodes.
//!
//! [`RootBuilder`] is the streaming counterpart for auditors: it takes leaves one
//! at a time and keeps only O(log n) hashes, enough to recompute the root of a
//! million-entry export without holding it in memory.

use crate::error::TreeError;
use crate::hash::{Hash, empty_root, node_hash};

/// An in-memory, append-only RFC 9162 Merkle tree over leaf hashes.
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    /// `levels[k][i]` = hash of the perfect subtree over leaves `[i<<k, (i+1)<<k)`.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self { levels: Vec::new() }
    }

    /// A tree holding the given leaf hashes, in order.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash (see [`crate::leaf_hash`]); returns its index.
    /// Amortised O(1): one node hash per completed perfect subtree.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() - 1;
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let row = &self.levels[level];
            let parent = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
        index as u64
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`, if present.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        let i = usize::try_from(index).ok()?;
        self.levels.first()?.get(i).copied()
    }

    /// The root of the whole tree (the empty-string hash for an empty tree).
    pub fn root(&self) -> Hash {
        // Cannot fail: size == len.
        self.range_hash_or_empty(0, self.len_usize())
    }

    /// The root of the tree formed by the first `size` leaves. O(log n).
    pub fn root_at(&self, size: u64) -> Result<Hash, TreeError> {
        let size = self.check_size(size)?;
        Ok(self.range_hash_or_empty(0, size))
    }

    /// RFC 9162 section 2.1.3.1 `PATH(index, D[size])`: the audit path for leaf
    /// `index` in the tree of the first `size` leaves, bottom-up. O(log n).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        let n = self.check_size(size)?;
        if index >= size {
            return Err(TreeError::IndexOutOfRange { index, size });
        }
        // index < size <= len, so it fits in usize.
        let mut m = index as usize;
        let (mut lo, mut hi) = (0usize, n);
        let mut proof = Vec::with_capacity(64);
        // Walk down from the root; each step records the sibling subtree, and the
        // RFC lists siblings bottom-up, hence the final reverse.
        while hi - lo > 1 {
            let k = largest_power_of_two_below(hi - lo);
            if m < k {
                proof.push(self.range_hash(lo + k, hi));
                hi = lo + k;
            } else {
                proof.push(self.range_hash(lo, lo + k));
                lo += k;
                m -= k;
            }
        }
        proof.reverse();
        Ok(proof)
    }

    /// RFC 9162 section 2.1.4.1 `PROOF(old_size, D[new_size])`: proves the tree of
    /// the first `old_size` leaves is a prefix of the tree of the first `new_size`.
    /// Empty when `old_size` is 0 or equals `new_size`. O(log n).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, TreeError> {
        let n = self.check_size(new_size)?;
        if old_size > new_size {
            return Err(TreeError::OldSizeGreater { old_size, new_size });
        }
        if old_size == 0 || old_size == new_size {
            return Ok(Vec::new());
        }
        let mut m = old_size as usize;
        let (mut lo, mut hi) = (0usize, n);
        let mut complete = true; // the RFC's `b` flag
        let mut proof = Vec::with_capacity(64);
        loop {
            let size = hi - lo;
            if m == size {
                if !complete {
                    proof.push(self.range_hash(lo, hi));
                }
                break;
            }
            let k = largest_power_of_two_below(size);
            if m <= k {
                proof.push(self.range_hash(lo + k, hi));
                hi = lo + k;
            } else {
                proof.push(self.range_hash(lo, lo + k));
                lo += k;
                m -= k;
                complete = false;
            }
        }
        proof.reverse();
        Ok(proof)
    }

    fn len_usize(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    fn check_size(&self, size: u64) -> Result<usize, TreeError> {
        let len = self.len_usize();
        match usize::try_from(size) {
            Ok(s) if s <= len => Ok(s),
            _ => Err(TreeError::SizeOutOfRange {
                size,
                len: len as u64,
            }),
        }
    }

    fn range_hash_or_empty(&self, lo: usize, hi: usize) -> Hash {
        if lo == hi {
            empty_root()
        } else {
            self.range_hash(lo, hi)
        }
    }

    /// MTH(D[lo..hi]) for `lo < hi <= len`. A stored node when the range is a
    /// perfect aligned subtree; otherwise split as RFC 9162 does (largest power of
    /// two first) and fold. For the ranges the proofs above ask for, the left part
    /// is always a stored node, so this costs O(log n).
    fn range_hash(&self, lo: usize, hi: usize) -> Hash {
        let size = hi - lo;
        if size.is_power_of_two() && lo.is_multiple_of(size) {
            let level = size.trailing_zeros() as usize;
            return self.levels[level][lo >> level];
        }
        let k = largest_power_of_two_below(size);
        node_hash(&self.range_hash(lo, lo + k), &self.range_hash(lo + k, hi))
    }
}

/// The largest power of two strictly less than `n` (requires `n >= 2`).
fn largest_power_of_two_below(n: usize) -> usize {
    debug_assert!(n >= 2);
    1usize << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The RFC 9162 Merkle Tree Hash of a list of leaf hashes.
pub fn root_of(leaf_hashes: &[Hash]) -> Hash {
    let mut builder = RootBuilder::new();
    for leaf in leaf_hashes {
        builder.push(*leaf);
    }
    builder.root()
}

/// Streams leaf hashes and yields the tree root with O(log n) memory.
///
/// It keeps one hash per set bit of the leaf count: the roots of the perfect
/// subtrees the leaves so far decompose into, largest first.
#[derive(Debug, Clone, Default)]
pub struct RootBuilder {
    /// (height, hash) of perfect subtrees, strictly decreasing heights.
    stack: Vec<(u32, Hash)>,
    count: u64,
}

impl RootBuilder {
    /// A builder with no leaves.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(height, left)) = self.stack.last() {
            if height != node.0 {
                break;
            }
            self.stack.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.count += 1;
    }

    /// Hashes `entry` as a leaf and adds it.
    pub fn push_entry(&mut self, entry: &[u8]) {
        self.push(crate::hash::leaf_hash(entry));
    }

    /// Number of leaves pushed.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether no leaves were pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The root of the leaves pushed so far (the empty-string hash if none).
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    /// Straight transcription of the RFC 9162 recursive definitions, as an oracle.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = largest_power_of_two_below(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = largest_power_of_two_below(n);
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { Vec::new() } else { vec![mth(leaves)] };
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            let mut p = subproof(m, &leaves[..k], b);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn matches_recursive_rfc_definitions() {
        let all = leaves(70);
        let tree = MerkleTree::from_leaf_hashes(all.iter().copied());
        for n in 0..=70usize {
            let prefix = &all[..n];
            assert_eq!(tree.root_at(n as u64).unwrap(), mth(prefix), "root {n}");
            assert_eq!(root_of(prefix), mth(prefix), "root_of {n}");
            for m in 0..n {
                assert_eq!(
                    tree.inclusion_proof(m as u64, n as u64).unwrap(),
                    path(m, prefix),
                    "path {m} {n}"
                );
            }
            for m in 1..n {
                assert_eq!(
                    tree.consistency_proof(m as u64, n as u64).unwrap(),
                    subproof(m, prefix, true),
                    "proof {m} {n}"
                );
            }
        }
    }

    #[test]
    fn stores_about_two_hashes_per_leaf() {
        let tree = MerkleTree::from_leaf_hashes(leaves(1000));
        let stored: usize = tree.levels.iter().map(Vec::len).sum();
        assert_eq!(stored, 1000 + 500 + 250 + 125 + 62 + 31 + 15 + 7 + 3 + 1);
    }

    #[test]
    fn out_of_range_requests_are_errors() {
        let tree = MerkleTree::from_leaf_hashes(leaves(5));
        assert_eq!(
            tree.root_at(6),
            Err(TreeError::SizeOutOfRange { size: 6, len: 5 })
        );
        assert_eq!(
            tree.inclusion_proof(5, 5),
            Err(TreeError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            tree.inclusion_proof(0, 0),
            Err(TreeError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            tree.inclusion_proof(0, u64::MAX),
            Err(TreeError::SizeOutOfRange {
                size: u64::MAX,
                len: 5
            })
        );
        assert_eq!(
            tree.consistency_proof(4, 3),
            Err(TreeError::OldSizeGreater {
                old_size: 4,
                new_size: 3
            })
        );
        assert!(tree.consistency_proof(1, 6).is_err());
        assert_eq!(tree.consistency_proof(0, 5), Ok(vec![]));
        assert_eq!(tree.consistency_proof(5, 5), Ok(vec![]));
        assert_eq!(MerkleTree::new().root(), empty_root());
        assert_eq!(tree.leaf(4), Some(leaves(5)[4]));
        assert_eq!(tree.leaf(5), None);
    }
}
