//! Tamper and malformed-input tests: changed leaves, forged or mangled proofs and
//! out-of-range sizes must all be rejected with an error, never a panic.

use kith_tlog::{
    MerkleTree, ProofError, consistency_proof_len, inclusion_proof_len, leaf_hash,
    verify_consistency, verify_inclusion,
};

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("audit record {i}: subject=abc{i} action=share").into_bytes())
        .collect()
}

fn build(entries: &[Vec<u8>]) -> MerkleTree {
    MerkleTree::from_leaf_hashes(entries.iter().map(|e| leaf_hash(e)))
}

#[test]
fn any_changed_byte_in_a_leaf_breaks_inclusion() {
    let es = entries(37);
    let tree = build(&es);
    let root = tree.root();
    for (index, e) in es.iter().enumerate() {
        let proof = tree.inclusion_proof(index as u64, 37).unwrap();
        verify_inclusion(&leaf_hash(e), index as u64, 37, &proof, &root).unwrap();
        for pos in 0..e.len() {
            let mut bad = e.clone();
            bad[pos] ^= 0x01;
            let err =
                verify_inclusion(&leaf_hash(&bad), index as u64, 37, &proof, &root).unwrap_err();
            assert!(matches!(err, ProofError::RootMismatch { .. }), "{err}");
        }
        // Appending or removing a byte also breaks it.
        let mut longer = e.clone();
        longer.push(b' ');
        assert!(verify_inclusion(&leaf_hash(&longer), index as u64, 37, &proof, &root).is_err());
        assert!(
            verify_inclusion(
                &leaf_hash(&e[..e.len() - 1]),
                index as u64,
                37,
                &proof,
                &root
            )
            .is_err()
        );
    }
}

#[test]
fn mangled_inclusion_proofs_fail() {
    let es = entries(100);
    let tree = build(&es);
    for size in [1u64, 2, 3, 7, 8, 9, 64, 65, 99, 100] {
        let root = tree.root_at(size).unwrap();
        for index in 0..size {
            let leaf = leaf_hash(&es[index as usize]);
            let proof = tree.inclusion_proof(index, size).unwrap();
            assert_eq!(proof.len(), inclusion_proof_len(index, size).unwrap());
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();

            // Every flipped bit in every proof element is caught.
            for i in 0..proof.len() {
                for bit in [0usize, 77, 255] {
                    let mut bad = proof.clone();
                    bad[i][bit / 8] ^= 1 << (bit % 8);
                    assert!(matches!(
                        verify_inclusion(&leaf, index, size, &bad, &root),
                        Err(ProofError::RootMismatch { .. })
                    ));
                }
            }
            // Truncated and extended proofs.
            if let Some((_, shorter)) = proof.split_last() {
                assert_eq!(
                    verify_inclusion(&leaf, index, size, shorter, &root),
                    Err(ProofError::WrongProofLength {
                        expected: proof.len(),
                        got: proof.len() - 1
                    })
                );
            }
            let mut longer = proof.clone();
            longer.push([0u8; 32]);
            assert_eq!(
                verify_inclusion(&leaf, index, size, &longer, &root),
                Err(ProofError::WrongProofLength {
                    expected: proof.len(),
                    got: proof.len() + 1
                })
            );
            // The right proof for the wrong index fails.
            for other in 0..size {
                if other != index {
                    assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err());
                }
            }
            // (A proof can also be valid for some other tree sizes with the same
            // shape; the size is bound by the signed checkpoint, not the proof.)
            // Wrong root.
            let wrong_root = tree.root_at(size - 1).unwrap();
            assert!(verify_inclusion(&leaf, index, size, &proof, &wrong_root).is_err());
        }
    }
}

#[test]
fn inclusion_rejects_bad_index_and_size() {
    let leaf = leaf_hash(b"x");
    assert_eq!(
        verify_inclusion(&leaf, 0, 0, &[], &leaf),
        Err(ProofError::EmptyTree)
    );
    assert_eq!(
        verify_inclusion(&leaf, 5, 5, &[], &leaf),
        Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        verify_inclusion(&leaf, u64::MAX, 3, &[], &leaf),
        Err(ProofError::IndexOutOfRange {
            index: u64::MAX,
            size: 3
        })
    );
    // Extreme sizes compute a length without overflow and fail cleanly.
    for (index, size) in [
        (u64::MAX - 1, u64::MAX),
        (0, u64::MAX),
        (1 << 63, u64::MAX),
        ((1 << 63) - 1, 1 << 63),
    ] {
        let want = inclusion_proof_len(index, size).unwrap();
        assert!(want <= 64);
        let err = verify_inclusion(&leaf, index, size, &[leaf; 3], &leaf).unwrap_err();
        assert_eq!(
            err,
            ProofError::WrongProofLength {
                expected: want,
                got: 3
            }
        );
        let err = verify_inclusion(&leaf, index, size, &vec![leaf; want], &leaf).unwrap_err();
        assert!(matches!(err, ProofError::RootMismatch { .. }));
    }
}

#[test]
fn forged_consistency_proofs_fail() {
    let es = entries(70);
    let tree = build(&es);
    // A different history: same length, first record rewritten.
    let mut forged_entries = es.clone();
    forged_entries[0] = b"rewritten history".to_vec();
    let forged = build(&forged_entries);

    for new in 2..=70u64 {
        let new_root = tree.root_at(new).unwrap();
        for old in 1..new {
            let old_root = tree.root_at(old).unwrap();
            let proof = tree.consistency_proof(old, new).unwrap();
            assert_eq!(proof.len(), consistency_proof_len(old, new).unwrap());
            verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();

            // The forged log cannot prove it extends the honest old tree, with
            // its own proof or with the honest one.
            let forged_root = forged.root_at(new).unwrap();
            let forged_proof = forged.consistency_proof(old, new).unwrap();
            assert!(verify_consistency(old, new, &old_root, &forged_root, &forged_proof).is_err());
            assert!(verify_consistency(old, new, &old_root, &forged_root, &proof).is_err());

            // Any flipped byte in any element is caught.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][i % 32] ^= 0x80;
                assert!(
                    verify_consistency(old, new, &old_root, &new_root, &bad).is_err(),
                    "{old}->{new} elt {i}"
                );
            }
            // Truncated, extended, wrong sizes, swapped roots.
            if !proof.is_empty() {
                assert!(matches!(
                    verify_consistency(old, new, &old_root, &new_root, &proof[1..]),
                    Err(ProofError::WrongProofLength { .. })
                ));
            }
            let mut longer = proof.clone();
            longer.push(new_root);
            assert!(matches!(
                verify_consistency(old, new, &old_root, &new_root, &longer),
                Err(ProofError::WrongProofLength { .. })
            ));
            assert!(verify_consistency(old, new, &new_root, &old_root, &proof).is_err());
            if old + 1 < new {
                assert!(verify_consistency(old + 1, new, &old_root, &new_root, &proof).is_err());
            }
        }
    }
}

#[test]
fn consistency_edge_cases() {
    let tree = build(&entries(10));
    let r5 = tree.root_at(5).unwrap();
    let r10 = tree.root_at(10).unwrap();
    // Same size: empty proof and equal roots.
    verify_consistency(5, 5, &r5, &r5, &[]).unwrap();
    assert!(matches!(
        verify_consistency(5, 5, &r5, &r10, &[]),
        Err(ProofError::NewRootMismatch { .. })
    ));
    assert_eq!(
        verify_consistency(5, 5, &r5, &r5, &[r5]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    // From the empty tree: empty proof only.
    verify_consistency(0, 10, &kith_tlog::empty_root(), &r10, &[]).unwrap();
    assert!(verify_consistency(0, 10, &kith_tlog::empty_root(), &r10, &[r5]).is_err());
    // Old larger than new.
    assert_eq!(
        verify_consistency(10, 5, &r10, &r5, &[]),
        Err(ProofError::OldSizeGreater {
            old_size: 10,
            new_size: 5
        })
    );
    // Non-empty proof needed but empty given.
    assert!(matches!(
        verify_consistency(5, 10, &r5, &r10, &[]),
        Err(ProofError::WrongProofLength { .. })
    ));
    // Extreme sizes do not overflow.
    for (old, new) in [(1, u64::MAX), (u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX)] {
        let want = consistency_proof_len(old, new).unwrap();
        assert!(want <= 130);
        assert!(verify_consistency(old, new, &r5, &r10, &vec![r5; want]).is_err());
        assert!(verify_consistency(old, new, &r5, &r10, &[]).is_err());
    }
}
