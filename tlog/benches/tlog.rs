//! Throughput benchmark for kith-tlog (plain harness, stable Rust, one thread).
//!
//! Run: `CARGO_TARGET_DIR=/work/target-tlog cargo bench`
//! Prints a table and one final JSON line with the figures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use kith_tlog::{MerkleTree, RootBuilder, leaf_hash, verify_consistency, verify_inclusion};

const LEAVES: usize = 1_000_000;
const ENTRY_BYTES: usize = 300;

/// Small deterministic PRNG (xorshift64*) so runs are reproducible without deps.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// 1,000,000 entries of 300 bytes, contiguous, each distinct.
fn entries() -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; LEAVES * ENTRY_BYTES];
    for chunk in buf.chunks_mut(8) {
        let bytes = rng.next().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    buf
}

fn per_sec(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful.
    // With `--quick` (or under `cargo test`), use fewer iterations.
    let quick =
        std::env::args().any(|a| a == "--quick") || !std::env::args().any(|a| a == "--bench");
    let leaves = if quick { 10_000 } else { LEAVES };

    println!("kith-tlog benchmark: {leaves} leaves, {ENTRY_BYTES}-byte entries, 1 thread");
    let data = entries();
    let data = &data[..leaves * ENTRY_BYTES];

    // 1. Streaming root from entry bytes (hash every leaf, fold with O(log n) memory).
    let start = Instant::now();
    let mut builder = RootBuilder::new();
    for entry in data.chunks_exact(ENTRY_BYTES) {
        builder.push_entry(entry);
    }
    let streamed_root = black_box(builder.root());
    let root_secs = start.elapsed().as_secs_f64();

    // 2. Leaf hashing alone, then MerkleTree::push throughput over leaf hashes.
    let start = Instant::now();
    let leaf_hashes: Vec<[u8; 32]> = data.chunks_exact(ENTRY_BYTES).map(leaf_hash).collect();
    let leaf_hash_rate = per_sec(leaves, start.elapsed());

    let start = Instant::now();
    let mut tree = MerkleTree::new();
    for h in &leaf_hashes {
        tree.push(*h);
    }
    let push_elapsed = start.elapsed();
    let push_rate = per_sec(leaves, push_elapsed);
    assert_eq!(
        tree.root(),
        streamed_root,
        "streamed root differs from tree root"
    );

    let start = Instant::now();
    let mut r = [0u8; 32];
    let root_calls = 100_000;
    for i in 0..root_calls {
        r = tree.root_at(leaves as u64 - (i as u64 % 1000)).unwrap();
    }
    black_box(r);
    let root_at_rate = per_sec(root_calls, start.elapsed());

    // 3. Inclusion proofs: generation, then verification, at random indices.
    let size = leaves as u64;
    let root = tree.root();
    let mut rng = Rng(42);
    let samples: usize = if quick { 1_000 } else { 20_000 };
    let indices: Vec<u64> = (0..samples).map(|_| rng.next() % size).collect();
    let start = Instant::now();
    let proofs: Vec<Vec<[u8; 32]>> = indices
        .iter()
        .map(|&i| tree.inclusion_proof(i, size).unwrap())
        .collect();
    let prove_rate = per_sec(samples, start.elapsed());
    let proof_len = proofs[0].len();

    let rounds = if quick { 1 } else { 10 };
    let start = Instant::now();
    for _ in 0..rounds {
        for (&i, proof) in indices.iter().zip(&proofs) {
            verify_inclusion(&leaf_hashes[i as usize], i, size, proof, &root).unwrap();
        }
    }
    let verify_rate = per_sec(samples * rounds, start.elapsed());

    // 4. Consistency proofs between random old sizes and the full tree.
    let olds: Vec<u64> = (0..samples).map(|_| 1 + rng.next() % (size - 1)).collect();
    let start = Instant::now();
    let cproofs: Vec<Vec<[u8; 32]>> = olds
        .iter()
        .map(|&o| tree.consistency_proof(o, size).unwrap())
        .collect();
    let cprove_rate = per_sec(samples, start.elapsed());
    let old_roots: Vec<[u8; 32]> = olds.iter().map(|&o| tree.root_at(o).unwrap()).collect();
    let start = Instant::now();
    for ((&o, p), old_root) in olds.iter().zip(&cproofs).zip(&old_roots) {
        verify_consistency(o, size, old_root, &root, p).unwrap();
    }
    let cverify_rate = per_sec(samples, start.elapsed());

    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| streaming root over {leaves} x {ENTRY_BYTES}-byte entries (leaf hash + fold) | {root_secs:.3} s |"
    );
    println!("| leaf hashing ({ENTRY_BYTES}-byte entries) | {leaf_hash_rate:.0} leaves/s |");
    println!(
        "| MerkleTree::push (from leaf hashes) | {push_rate:.0} pushes/s ({:.3} s for {leaves}) |",
        push_elapsed.as_secs_f64()
    );
    println!("| MerkleTree::root_at (size ~{leaves}) | {root_at_rate:.0} calls/s |");
    println!("| inclusion proof generation (size {leaves}) | {prove_rate:.0} proofs/s |");
    println!(
        "| inclusion proof verification (size {leaves}, {proof_len} hashes) | {verify_rate:.0} verifications/s |"
    );
    println!("| consistency proof generation (to size {leaves}) | {cprove_rate:.0} proofs/s |");
    println!(
        "| consistency proof verification (to size {leaves}) | {cverify_rate:.0} verifications/s |"
    );
    println!();
    println!(
        "{{\"leaves\":{leaves},\"entry_bytes\":{ENTRY_BYTES},\"streaming_root_s\":{root_secs:.4},\"leaf_hash_per_s\":{leaf_hash_rate:.0},\"push_per_s\":{push_rate:.0},\"root_at_per_s\":{root_at_rate:.0},\"inclusion_prove_per_s\":{prove_rate:.0},\"inclusion_verify_per_s\":{verify_rate:.0},\"consistency_prove_per_s\":{cprove_rate:.0},\"consistency_verify_per_s\":{cverify_rate:.0}}}"
    );
}
