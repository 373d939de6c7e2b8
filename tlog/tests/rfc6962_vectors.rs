//! Known-answer tests: the 8-leaf tree from the Certificate Transparency test
//! suites (RFC 6962), with its roots for sizes 1..=8 and some published proofs.

use kith_tlog::{
    MerkleTree, ProofError, leaf_hash, node_hash, verify_consistency, verify_inclusion,
};

const LEAVES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn tree() -> MerkleTree {
    MerkleTree::from_leaf_hashes(LEAVES.iter().map(|l| leaf_hash(l)))
}

#[test]
fn roots_for_sizes_1_to_8() {
    let t = tree();
    for (i, root) in ROOTS.iter().enumerate() {
        assert_eq!(t.root_at(i as u64 + 1).unwrap(), h(root), "size {}", i + 1);
    }
    assert_eq!(t.root(), h(ROOTS[7]));
}

#[test]
fn inclusion_vectors() {
    let t = tree();
    // Leaf 5 in the 8-leaf tree.
    let proof = [
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ];
    assert_eq!(t.inclusion_proof(5, 8).unwrap(), proof);
    verify_inclusion(&leaf_hash(LEAVES[5]), 5, 8, &proof, &h(ROOTS[7])).unwrap();
    assert!(matches!(
        verify_inclusion(&leaf_hash(LEAVES[5]), 4, 8, &proof, &h(ROOTS[7])),
        Err(ProofError::RootMismatch { .. })
    ));
    // Leaf 2 in the 3-leaf tree: the only sibling is the root of the 2-leaf tree.
    assert_eq!(t.inclusion_proof(2, 3).unwrap(), [h(ROOTS[1])]);
    verify_inclusion(&leaf_hash(LEAVES[2]), 2, 3, &[h(ROOTS[1])], &h(ROOTS[2])).unwrap();
    // Leaf 0 in a 1-leaf tree: empty proof, the leaf hash is the root.
    assert!(t.inclusion_proof(0, 1).unwrap().is_empty());
    verify_inclusion(&leaf_hash(LEAVES[0]), 0, 1, &[], &h(ROOTS[0])).unwrap();
}

#[test]
fn consistency_vectors() {
    let t = tree();
    let proof_6_8 = [
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ];
    assert_eq!(t.consistency_proof(6, 8).unwrap(), proof_6_8);
    verify_consistency(6, 8, &h(ROOTS[5]), &h(ROOTS[7]), &proof_6_8).unwrap();
    assert!(matches!(
        verify_consistency(6, 8, &h(ROOTS[4]), &h(ROOTS[7]), &proof_6_8),
        Err(ProofError::OldRootMismatch { .. })
    ));

    let proof_2_5 = [
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    ];
    assert_eq!(t.consistency_proof(2, 5).unwrap(), proof_2_5);
    verify_consistency(2, 5, &h(ROOTS[1]), &h(ROOTS[4]), &proof_2_5).unwrap();

    // Old size a power of two: the old root itself is not in the proof.
    let proof_4_8 = t.consistency_proof(4, 8).unwrap();
    let l = |i: usize| leaf_hash(LEAVES[i]);
    let right_half = node_hash(&node_hash(&l(4), &l(5)), &node_hash(&l(6), &l(7)));
    assert_eq!(proof_4_8, [right_half]);
    verify_consistency(4, 8, &h(ROOTS[3]), &h(ROOTS[7]), &proof_4_8).unwrap();
}
