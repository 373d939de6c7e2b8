//! Cross-checks against `ct-merkle`, an independent RFC 6962 implementation (using
//! the independent `sha2` SHA-256), for every tree size 1..=300: roots, every
//! inclusion proof and every consistency proof, compared byte for byte, and each
//! implementation's proofs verified by the other's verifier.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use kith_tlog::{
    MerkleTree, RootBuilder, leaf_hash, root_of, verify_consistency, verify_inclusion,
};
use sha2::Sha256;

const MAX_SIZE: usize = 300;

fn entry(i: usize) -> Vec<u8> {
    // Varying lengths, including the empty entry.
    (0..(i % 37)).map(|j| (i * 31 + j) as u8).collect()
}

fn concat(proof: &[[u8; 32]]) -> Vec<u8> {
    proof.iter().flatten().copied().collect()
}

fn split(bytes: &[u8]) -> Vec<[u8; 32]> {
    assert_eq!(bytes.len() % 32, 0);
    bytes
        .chunks(32)
        .map(|c| <[u8; 32]>::try_from(c).unwrap())
        .collect()
}

fn ct_root(root: [u8; 32], size: usize) -> RootHash<Sha256> {
    RootHash::new(ct_merkle::array::Array::from(root), size as u64)
}

#[test]
fn every_size_index_and_old_size_agrees_with_ct_merkle() {
    let mut theirs: MemoryBackedTree<Sha256, Vec<u8>> = MemoryBackedTree::new();
    let mut ours = MerkleTree::new();
    let mut builder = RootBuilder::new();
    let mut roots: Vec<[u8; 32]> = Vec::new(); // roots[n] = our root at size n
    roots.push(ours.root());
    let (mut inclusion_checked, mut consistency_checked) = (0usize, 0usize);

    for n in 1..=MAX_SIZE {
        let e = entry(n - 1);
        theirs.push(e.clone());
        ours.push(leaf_hash(&e));
        builder.push_entry(&e);

        let their_root = theirs.root();
        let root: [u8; 32] = their_root.as_bytes().as_slice().try_into().unwrap();
        assert_eq!(ours.root(), root, "root at size {n}");
        assert_eq!(builder.root(), root, "streaming root at size {n}");
        roots.push(root);

        for index in 0..n {
            let our_proof = ours.inclusion_proof(index as u64, n as u64).unwrap();
            let their_proof = theirs.prove_inclusion(index);
            assert_eq!(
                concat(&our_proof),
                their_proof.as_bytes(),
                "inclusion proof {index} in {n}"
            );
            // Their proof, our verifier.
            verify_inclusion(
                &leaf_hash(&entry(index)),
                index as u64,
                n as u64,
                &split(their_proof.as_bytes()),
                &root,
            )
            .unwrap();
            // Our proof, their verifier.
            let ours_for_them =
                InclusionProof::<Sha256>::try_from_bytes(concat(&our_proof)).unwrap();
            their_root
                .verify_inclusion(&entry(index), index as u64, &ours_for_them)
                .unwrap();
            inclusion_checked += 1;
        }

        for (old, old_root) in roots.iter().enumerate().take(n).skip(1) {
            let our_proof = ours.consistency_proof(old as u64, n as u64).unwrap();
            let their_proof = theirs.prove_consistency(n - old);
            assert_eq!(
                concat(&our_proof),
                their_proof.as_bytes(),
                "consistency proof {old} -> {n}"
            );
            verify_consistency(
                old as u64,
                n as u64,
                old_root,
                &root,
                &split(their_proof.as_bytes()),
            )
            .unwrap();
            let ours_for_them =
                ConsistencyProof::<Sha256>::try_from_bytes(concat(&our_proof)).unwrap();
            their_root
                .verify_consistency(&ct_root(*old_root, old), &ours_for_them)
                .unwrap();
            consistency_checked += 1;
        }
    }

    // Historical roots and proofs for past sizes also agree once the tree has grown.
    let leaves: Vec<[u8; 32]> = (0..MAX_SIZE).map(|i| leaf_hash(&entry(i))).collect();
    for (n, root) in roots.iter().enumerate() {
        assert_eq!(ours.root_at(n as u64).unwrap(), *root, "root_at {n}");
        assert_eq!(root_of(&leaves[..n]), *root, "root_of {n}");
    }
    assert_eq!(inclusion_checked, MAX_SIZE * (MAX_SIZE + 1) / 2);
    assert_eq!(consistency_checked, MAX_SIZE * (MAX_SIZE - 1) / 2);
}

#[test]
fn past_size_proofs_from_a_grown_tree_verify() {
    // Proofs for old sizes requested after the tree has grown past them use the
    // stored levels differently from proofs for the current size.
    let leaves: Vec<[u8; 32]> = (0..MAX_SIZE).map(|i| leaf_hash(&entry(i))).collect();
    let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
    for n in 1..=MAX_SIZE as u64 {
        let root = tree.root_at(n).unwrap();
        let their_root = ct_root(root, n as usize);
        for index in (0..n).step_by(7) {
            let proof = tree.inclusion_proof(index, n).unwrap();
            verify_inclusion(&leaves[index as usize], index, n, &proof, &root).unwrap();
            their_root
                .verify_inclusion(
                    &entry(index as usize),
                    index,
                    &InclusionProof::<Sha256>::try_from_bytes(concat(&proof)).unwrap(),
                )
                .unwrap();
        }
        for old in (1..n).step_by(5) {
            let proof = tree.consistency_proof(old, n).unwrap();
            let old_root = tree.root_at(old).unwrap();
            verify_consistency(old, n, &old_root, &root, &proof).unwrap();
            their_root
                .verify_consistency(
                    &ct_root(old_root, old as usize),
                    &ConsistencyProof::<Sha256>::try_from_bytes(concat(&proof)).unwrap(),
                )
                .unwrap();
        }
    }
}
