//! RFC 9162 inclusion and consistency proofs, as an agent or auditor
//! verifies what the hub hands out (`kith_tlog::verify`).
//!
//! Two parts per input. First, arbitrary sizes, indexes, roots and proof
//! hashes go straight into the verifiers: no panic, whatever they are.
//! Second, a tree of up to 64 leaves is built, and a real proof for sizes
//! and an index the input picks must verify, while the same proof with one
//! byte flipped, one hash dropped or one added must not.
#![no_main]

use kith_tlog::tree::MerkleTree;
use kith_tlog::verify::{
    consistency_proof_len, inclusion_proof_len, root_from_inclusion_proof, verify_consistency,
    verify_inclusion,
};
use kith_tlog::{Hash, leaf_hash};
use libfuzzer_sys::fuzz_target;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u64(&mut self) -> u64 {
        let mut v = [0u8; 8];
        for b in &mut v {
            *b = self.u8();
        }
        u64::from_le_bytes(v)
    }

    fn hash(&mut self) -> Hash {
        let mut h = [0u8; 32];
        for b in &mut h {
            *b = self.u8();
        }
        h
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);

    // Arbitrary values.
    let index = input.u64();
    let size = input.u64();
    let old_size = input.u64();
    let leaf = input.hash();
    let root = input.hash();
    let other_root = input.hash();
    let count = usize::from(input.u8() % 80);
    let proof: Vec<Hash> = (0..count).map(|_| input.hash()).collect();
    let _ = inclusion_proof_len(index, size);
    let _ = consistency_proof_len(old_size, size);
    let _ = root_from_inclusion_proof(&leaf, index, size, &proof);
    let _ = verify_inclusion(&leaf, index, size, &proof, &root);
    let _ = verify_consistency(old_size, size, &root, &other_root, &proof);
    if let Ok(len) = inclusion_proof_len(index, size) {
        assert!(len <= 128, "inclusion proof of {len} hashes");
    }
    if let Ok(len) = consistency_proof_len(old_size, size) {
        assert!(len <= 128, "consistency proof of {len} hashes");
    }

    // Real proofs from a real tree.
    let n = u64::from(input.u8() % 64) + 1;
    let tree = MerkleTree::from_leaf_hashes((0..n).map(|i| leaf_hash(&i.to_be_bytes())));
    let size = u64::from(input.u8()) % n + 1;
    let index = u64::from(input.u8()) % size;
    let old_size = u64::from(input.u8()) % (size + 1);
    let flip = input.u8();
    let root = tree.root_at(size).expect("root of a size within the tree");
    let old_root = tree
        .root_at(old_size)
        .expect("root of a size within the tree");
    let leaf = tree.leaf(index).expect("a leaf within the tree");

    let inclusion = tree
        .inclusion_proof(index, size)
        .expect("an inclusion proof");
    assert_eq!(
        inclusion.len(),
        inclusion_proof_len(index, size).expect("a length")
    );
    verify_inclusion(&leaf, index, size, &inclusion, &root)
        .expect("a real inclusion proof verifies");
    assert!(
        verify_inclusion(&leaf, index, size, &inclusion, &old_root).is_err() || old_root == root
    );
    for tampered in tampered(&inclusion, flip) {
        assert!(
            verify_inclusion(&leaf, index, size, &tampered, &root).is_err(),
            "a tampered inclusion proof verified (index {index}, size {size})"
        );
    }
    let mut wrong_leaf = leaf;
    wrong_leaf[usize::from(flip % 32)] ^= 1 << (flip % 8);
    assert!(verify_inclusion(&wrong_leaf, index, size, &inclusion, &root).is_err());

    let consistency = tree
        .consistency_proof(old_size, size)
        .expect("a consistency proof");
    assert_eq!(
        consistency.len(),
        consistency_proof_len(old_size, size).expect("a length")
    );
    verify_consistency(old_size, size, &old_root, &root, &consistency)
        .expect("a real consistency proof verifies");
    for tampered in tampered(&consistency, flip) {
        assert!(
            verify_consistency(old_size, size, &old_root, &root, &tampered).is_err(),
            "a tampered consistency proof verified ({old_size} to {size})"
        );
    }
    if old_size > 0 {
        let mut wrong_old = old_root;
        wrong_old[usize::from(flip % 32)] ^= 1 << (flip % 8);
        assert!(verify_consistency(old_size, size, &wrong_old, &root, &consistency).is_err());
    }
});

/// The proof with one bit flipped, with its last hash dropped, and with one
/// hash added (each only where the proof has something to change).
fn tampered(proof: &[Hash], flip: u8) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    if !proof.is_empty() {
        let mut flipped = proof.to_vec();
        let at = usize::from(flip) % flipped.len();
        flipped[at][usize::from(flip % 32)] ^= 1 << (flip % 8);
        out.push(flipped);
        out.push(proof[..proof.len() - 1].to_vec());
    }
    let mut longer = proof.to_vec();
    longer.push([flip; 32]);
    out.push(longer);
    out
}
