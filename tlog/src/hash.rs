//! RFC 9162 section 2.1.1 hashing: the domain-separated leaf and interior-node
//! hashes every other part of the crate builds on.
//!
//! Leaves and interior nodes are hashed with different one-byte prefixes (0x00 and
//! 0x01) so that an interior node can never be passed off as a leaf (second-preimage
//! protection). Everything here is SHA-256 via `ring`.

use ring::digest::{Context, SHA256, digest};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Prefix byte for leaf hashes (RFC 9162 section 2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix byte for interior node hashes (RFC 9162 section 2.1.1).
pub const NODE_PREFIX: u8 = 0x01;

/// SHA-256 of arbitrary bytes.
pub fn sha256(data: &[u8]) -> Hash {
    to_hash(digest(&SHA256, data).as_ref())
}

/// The Merkle Tree Hash of a one-entry list: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[LEAF_PREFIX]);
    ctx.update(entry);
    to_hash(ctx.finish().as_ref())
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    sha256(&buf)
}

/// The Merkle Tree Hash of the empty list: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    sha256(&[])
}

fn to_hash(bytes: &[u8]) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(bytes);
    out
}

/// Lower-case hexadecimal rendering of a hash, for logs and error messages.
pub fn to_hex(hash: &Hash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in hash {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_hash_of_empty_entry() {
        // RFC 6962 test vector: the leaf hash of the empty entry is SHA-256(0x00).
        assert_eq!(
            to_hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn node_hash_is_prefixed_and_ordered() {
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        let mut manual = vec![NODE_PREFIX];
        manual.extend_from_slice(&a);
        manual.extend_from_slice(&b);
        assert_eq!(node_hash(&a, &b), sha256(&manual));
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
        // Domain separation: a leaf whose bytes are `left || right` does not collide.
        let mut concat = a.to_vec();
        concat.extend_from_slice(&b);
        assert_ne!(leaf_hash(&concat), node_hash(&a, &b));
    }
}
