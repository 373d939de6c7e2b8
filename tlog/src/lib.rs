//! `kith-tlog`: the tamper-evident log primitives behind Kith's hub audit log.
//!
//! The hub appends every audit record to an RFC 9162 (Certificate Transparency
//! v2) Merkle tree, periodically signs the tree head as a C2SP checkpoint inside
//! a C2SP signed note, and hands out inclusion and consistency proofs. Node agents
//! and external auditors verify those proofs against signed checkpoints without
//! trusting the hub's storage.
//!
//! | module | concept | spec |
//! |---|---|---|
//! | [`hash`] | leaf / node hashing | RFC 9162 §2.1.1 |
//! | [`tree`] | in-memory tree, proofs, streaming root | RFC 9162 §2.1, §2.1.3.1, §2.1.4.1 |
//! | [`verify`] | proof verification | RFC 9162 §2.1.3.2, §2.1.4.2 |
//! | [`checkpoint`] | tree head text | c2sp.org/tlog-checkpoint |
//! | [`note`] | Ed25519 signed notes | c2sp.org/signed-note |
//! | [`error`] | error enums | |
//!
//! # Public API
//!
//! ```text
//! type Hash = [u8; 32];
//! fn leaf_hash(entry: &[u8]) -> Hash;                 // SHA-256(0x00 || entry)
//! fn node_hash(left: &Hash, right: &Hash) -> Hash;    // SHA-256(0x01 || left || right)
//! fn empty_root() -> Hash;                            // SHA-256("")
//!
//! MerkleTree::new() / from_leaf_hashes(impl IntoIterator<Item = Hash>)
//!   .push(Hash) -> u64   .len() -> u64   .leaf(u64) -> Option<Hash>   .root() -> Hash
//!   .root_at(size) -> Result<Hash, TreeError>
//!   .inclusion_proof(index, size) -> Result<Vec<Hash>, TreeError>
//!   .consistency_proof(old_size, new_size) -> Result<Vec<Hash>, TreeError>
//! fn root_of(&[Hash]) -> Hash;
//! RootBuilder::new() .push(Hash) .push_entry(&[u8]) .len() .root() -> Hash
//!
//! fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash)
//!     -> Result<(), ProofError>;
//! fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash,
//!     proof: &[Hash]) -> Result<(), ProofError>;
//! fn root_from_inclusion_proof(..) -> Result<Hash, ProofError>;
//! fn inclusion_proof_len(index, size) / consistency_proof_len(old, new) -> Result<usize, ProofError>;
//!
//! Checkpoint::new(origin, size, root) -> Result<Checkpoint, CheckpointError>
//!   .with_extension(&str) -> Result<..>  .origin() .size() .root_hash() .extensions()
//!   .to_body() -> String   Checkpoint::parse(&str) -> Result<Checkpoint, CheckpointError>
//!
//! NoteSigner::generate(name) -> Result<(NoteSigner, Vec<u8> /* PKCS#8 */), NoteError>
//! NoteSigner::from_pkcs8(name, &[u8]) / from_seed(name, &[u8; 32]) / from_skey(&str)
//!   .sign(text) -> Result<String, NoteError>  .sign_checkpoint(&Checkpoint)
//!   .vkey() -> String  .verifier() -> NoteVerifier  .name() .key_id() .public_key()
//! fn sign_note(text, &[&NoteSigner]) -> Result<String, NoteError>;
//! NoteVerifier::from_vkey(&str) -> Result<NoteVerifier, NoteError>
//!   .verify(note) -> Result<String /* verified text */, NoteError>  .vkey()
//! fn open_note(note, &[NoteVerifier]) -> Result<VerifiedNote, NoteError>;
//! fn open_checkpoint(note, &NoteVerifier) -> Result<Checkpoint, Error>;
//! fn key_id(name, sig_type, public_key) -> u32;
//! ```
//!
//! # Example
//!
//! ```
//! use kith_tlog::*;
//!
//! let mut tree = MerkleTree::new();
//! for entry in [b"a".as_slice(), b"b", b"c"] {
//!     tree.push(leaf_hash(entry));
//! }
//! let root = tree.root();
//! let proof = tree.inclusion_proof(1, 3).unwrap();
//! verify_inclusion(&leaf_hash(b"b"), 1, 3, &proof, &root).unwrap();
//!
//! let (signer, _pkcs8) = NoteSigner::generate("kith.example/audit").unwrap();
//! let note = signer
//!     .sign_checkpoint(&Checkpoint::new("kith.example/audit", 3, root).unwrap())
//!     .unwrap();
//! let verifier = NoteVerifier::from_vkey(&signer.vkey()).unwrap();
//! let checkpoint = open_checkpoint(&note, &verifier).unwrap();
//! assert_eq!(checkpoint.root_hash(), &root);
//! ```
//!
//! Nothing here panics on untrusted input: every parser and verifier returns an
//! error value instead.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod hash;
pub mod note;
pub mod tree;
pub mod verify;

pub use checkpoint::Checkpoint;
pub use error::{CheckpointError, Error, NoteError, ProofError, TreeError};
pub use hash::{Hash, empty_root, leaf_hash, node_hash};
pub use note::{
    NoteSigner, NoteVerifier, VerifiedNote, key_id, open_checkpoint, open_note, sign_note,
};
pub use tree::{MerkleTree, RootBuilder, root_of};
pub use verify::{
    consistency_proof_len, inclusion_proof_len, root_from_inclusion_proof, verify_consistency,
    verify_inclusion,
};
