//! Error types for every fallible operation in the crate.
//!
//! The crate never panics on untrusted input: proofs, checkpoints, notes and keys
//! arrive from the network or from disk, so each failure is a value that says what
//! was wrong, so that the hub can log it and an auditor can report it.

use thiserror::Error;

/// Asking a [`crate::MerkleTree`] for something it cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TreeError {
    /// The leaf index is not below the tree size the proof is for.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Tree size the proof was requested for.
        size: u64,
    },
    /// The tree does not hold that many leaves (yet).
    #[error("tree size {size} requested but the tree holds only {len} leaves")]
    SizeOutOfRange {
        /// Requested tree size.
        size: u64,
        /// Number of leaves in the tree.
        len: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeGreater {
        /// Older (claimed prefix) tree size.
        old_size: u64,
        /// Newer tree size.
        new_size: u64,
    },
}

/// Why an inclusion or consistency proof failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// Inclusion in an empty tree is impossible.
    #[error("cannot prove inclusion in an empty tree (tree size 0)")]
    EmptyTree,
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// Claimed leaf index.
        index: u64,
        /// Claimed tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for the given sizes/index.
    #[error("proof has {got} hashes, expected {expected} for these tree sizes")]
    WrongProofLength {
        /// Number of hashes the RFC 9162 algorithm needs.
        expected: usize,
        /// Number of hashes supplied.
        got: usize,
    },
    /// The old tree size is larger than the new one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeGreater {
        /// Claimed old tree size.
        old_size: u64,
        /// Claimed new tree size.
        new_size: u64,
    },
    /// The root recomputed from the proof differs from the expected root.
    #[error("root mismatch: the proof yields {computed}, expected {expected}")]
    RootMismatch {
        /// Hex root the proof yields.
        computed: String,
        /// Hex root the caller expected.
        expected: String,
    },
    /// Consistency: the proof does not reproduce the old root.
    #[error("old root mismatch: the proof yields {computed}, expected {expected}")]
    OldRootMismatch {
        /// Hex old root the proof yields.
        computed: String,
        /// Hex old root the caller expected.
        expected: String,
    },
    /// Consistency: the proof does not reproduce the new root.
    #[error("new root mismatch: the proof yields {computed}, expected {expected}")]
    NewRootMismatch {
        /// Hex new root the proof yields.
        computed: String,
        /// Hex new root the caller expected.
        expected: String,
    },
}

/// A checkpoint body that does not follow c2sp.org/tlog-checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckpointError {
    /// The body does not end in a newline.
    #[error("checkpoint body must end with a newline")]
    MissingFinalNewline,
    /// Fewer than the three mandatory lines.
    #[error("checkpoint body has {0} lines, at least 3 are required")]
    TooFewLines(usize),
    /// The origin line is empty.
    #[error("checkpoint origin must be non-empty")]
    EmptyOrigin,
    /// A line (origin or extension) contains a control character or newline.
    #[error("checkpoint line {line} contains a control character")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
    },
    /// The tree size is not canonical ASCII decimal, or does not fit in 64 bits.
    #[error("invalid tree size {0:?}: must be ASCII decimal without leading zeros")]
    InvalidSize(String),
    /// The root hash line is not canonical standard base64.
    #[error("root hash is not valid standard base64: {0}")]
    RootHashBase64(String),
    /// The root hash does not decode to 32 bytes.
    #[error("root hash decodes to {0} bytes, expected 32")]
    RootHashLength(usize),
    /// An extension line is empty.
    #[error("checkpoint extension line {line} is empty")]
    EmptyExtension {
        /// 1-based line number.
        line: usize,
    },
}

/// Signed-note (c2sp.org/signed-note) signing, key and verification failures.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoteError {
    /// A key name is empty or contains whitespace or '+'.
    #[error("invalid key name {0:?}: must be non-empty with no spaces or '+'")]
    InvalidKeyName(String),
    /// A verifier key string is malformed.
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    /// A signer key string or PKCS#8 document is malformed.
    #[error("malformed signer key: {0}")]
    MalformedSignerKey(&'static str),
    /// The key is of a signature type other than Ed25519 (0x01).
    #[error("unsupported signature type 0x{0:02x} (only Ed25519, 0x01, is supported)")]
    UnsupportedKeyType(u8),
    /// The key id in a key string does not match the key.
    #[error("key id {given:08x} does not match the key (computed {computed:08x})")]
    KeyIdMismatch {
        /// Key id written in the key string.
        given: u32,
        /// Key id computed from name and public key.
        computed: u32,
    },
    /// Key generation failed in the system random source.
    #[error("key generation failed")]
    KeyGeneration,
    /// The text to sign or the note text is not acceptable.
    #[error("invalid note text: {0}")]
    InvalidText(&'static str),
    /// The note is not in signed-note format.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// More signature lines than this implementation accepts.
    #[error("note has more than {0} signatures")]
    TooManySignatures(usize),
    /// A signature line from a known key did not verify: the note is rejected.
    #[error("signature by known key {name}+{key_id:08x} does not verify")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key id.
        key_id: u32,
    },
    /// No signature line is from a known key.
    #[error("note has no signature from a known key")]
    UnverifiedNote,
}

/// Any error from this crate, for callers that do not care which step failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// See [`TreeError`].
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// See [`ProofError`].
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// See [`CheckpointError`].
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// See [`NoteError`].
    #[error(transparent)]
    Note(#[from] NoteError),
}
