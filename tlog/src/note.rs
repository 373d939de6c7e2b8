//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! The hub signs each checkpoint as a note so that anyone holding its verifier key
//! (a short `name+keyid+key` string that can be published in config or docs) can
//! check a tree head offline, and so that third-party witnesses can add their own
//! signature lines without changing the format. A note is
//!
//! ```text
//! <text ending in \n>
//! <blank line>
//! — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>\n   (one or more)
//! ```
//!
//! The key id is `SHA-256(name || "\n" || 0x01 || public key)[..4]`. Verification
//! follows the spec: lines from unknown keys are ignored, a line from a known key
//! that fails to verify rejects the whole note, and at least one known key must
//! have signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, NoteError};
use crate::hash::sha256;

/// Signature type byte for Ed25519 in key ids and verifier keys.
pub const ED25519_SIGNATURE_TYPE: u8 = 0x01;
/// Most signature lines [`open_note`] accepts (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;
/// Every signature line starts with an em dash (U+2014) and a space.
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The spec's recommended key id: `SHA-256(name || 0x0A || sig_type || public_key)[..4]`
/// as a big-endian `u32`.
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> u32 {
    let mut buf = Vec::with_capacity(name.len() + 2 + public_key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(sig_type);
    buf.extend_from_slice(public_key);
    let h = sha256(&buf);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// Key names must be non-empty and contain no Unicode whitespace and no '+'.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || u32::from(c) < 0x20)
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidKeyName(name.to_owned()))
    }
}

/// True if `s` has an ASCII control character other than newline.
fn has_forbidden_control(s: &str) -> bool {
    s.chars().any(|c| c != '\n' && u32::from(c) < 0x20)
}

/// Splits at the first `sep`; the second part is empty if there is none.
fn chop(s: &str, sep: char) -> (&str, Option<&str>) {
    match s.split_once(sep) {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// Parses exactly eight hex digits.
fn parse_key_id_hex(s: &str) -> Option<u32> {
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// An Ed25519 note signer: a key pair and its key name.
pub struct NoteSigner {
    name: String,
    key_pair: Ed25519KeyPair,
    key_id: u32,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material; the verifier key identifies the signer.
        f.debug_struct("NoteSigner")
            .field("vkey", &self.vkey())
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    fn from_key_pair(name: &str, key_pair: Ed25519KeyPair) -> Result<Self, NoteError> {
        check_name(name)?;
        let key_id = key_id(name, ED25519_SIGNATURE_TYPE, key_pair.public_key().as_ref());
        Ok(Self {
            name: name.to_owned(),
            key_pair,
            key_id,
        })
    }

    /// A signer from a PKCS#8 Ed25519 private key document (v1 or v2, as `ring`
    /// and `openssl genpkey -algorithm ed25519` produce).
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Self, NoteError> {
        let key_pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| NoteError::MalformedSignerKey("not an Ed25519 PKCS#8 document"))?;
        Self::from_key_pair(name, key_pair)
    }

    /// A signer from a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| NoteError::MalformedSignerKey("invalid Ed25519 seed"))?;
        Self::from_key_pair(name, key_pair)
    }

    /// A signer from the Go `sumdb/note` private key string
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>`.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedSignerKey("missing PRIVATE+KEY+ prefix"))?;
        let (name, rest) = chop(rest, '+');
        let (hex, key64) = chop(rest.unwrap_or(""), '+');
        let id = parse_key_id_hex(hex).ok_or(NoteError::MalformedSignerKey("bad key id"))?;
        let key = STANDARD
            .decode(key64.unwrap_or(""))
            .map_err(|_| NoteError::MalformedSignerKey("bad base64 key"))?;
        match key.split_first() {
            Some((&ED25519_SIGNATURE_TYPE, seed)) => {
                let seed: &[u8; 32] = seed
                    .try_into()
                    .map_err(|_| NoteError::MalformedSignerKey("seed is not 32 bytes"))?;
                let signer = Self::from_seed(name, seed)?;
                if signer.key_id != id {
                    return Err(NoteError::KeyIdMismatch {
                        given: id,
                        computed: signer.key_id,
                    });
                }
                Ok(signer)
            }
            Some((&t, _)) => Err(NoteError::UnsupportedKeyType(t)),
            None => Err(NoteError::MalformedSignerKey("empty key")),
        }
    }

    /// Generates a fresh key; returns the signer and its PKCS#8 (v2) document,
    /// which the caller must store securely to sign again later.
    pub fn generate(name: &str) -> Result<(Self, Vec<u8>), NoteError> {
        check_name(name)?;
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| NoteError::KeyGeneration)?;
        let signer = Self::from_pkcs8(name, pkcs8.as_ref())?;
        Ok((signer, pkcs8.as_ref().to_vec()))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id as a big-endian `u32`.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.key_pair.public_key().as_ref());
        pk
    }

    /// The verifier key string `<name>+<8 hex key id>+<base64(0x01 || public key)>`.
    pub fn vkey(&self) -> String {
        self.verifier().vkey()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            public_key: self.public_key(),
        }
    }

    /// Signs `text` and returns the whole note (text, blank line, signature line).
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        sign_note(text, &[self])
    }

    /// Signs a checkpoint body as a note.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, NoteError> {
        self.sign(&checkpoint.to_body())
    }

    /// The signature line for `text`, including its final newline.
    fn signature_line(&self, text: &str) -> String {
        let sig = self.key_pair.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.key_id.to_be_bytes());
        blob.extend_from_slice(sig.as_ref());
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        )
    }
}

/// Checks that `text` may be the text of a note: non-empty, ends in a newline,
/// no ASCII control characters other than newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText(
            "text must be non-empty and end with a newline",
        ));
    }
    if has_forbidden_control(text) {
        return Err(NoteError::InvalidText(
            "text contains an ASCII control character",
        ));
    }
    Ok(())
}

/// Signs `text` with every signer, producing one note with one line per signer.
pub fn sign_note(text: &str, signers: &[&NoteSigner]) -> Result<String, NoteError> {
    check_text(text)?;
    if signers.is_empty() {
        return Err(NoteError::InvalidText("a note needs at least one signer"));
    }
    let mut note = String::with_capacity(text.len() + 1 + signers.len() * 110);
    note.push_str(text);
    note.push('\n');
    for signer in signers {
        note.push_str(&signer.signature_line(text));
    }
    Ok(note)
}

/// An Ed25519 verifier key: key name, key id and public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

impl NoteVerifier {
    /// Parses a verifier key `<name>+<8 hex key id>+<base64(0x01 || public key)>`,
    /// checking the key type and that the key id matches name and key.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, rest) = chop(vkey, '+');
        check_name(name)?;
        let (hex, key64) = chop(
            rest.ok_or(NoteError::MalformedVerifierKey("missing key id"))?,
            '+',
        );
        let given = parse_key_id_hex(hex).ok_or(NoteError::MalformedVerifierKey(
            "key id is not 8 hex digits",
        ))?;
        let key = STANDARD
            .decode(key64.ok_or(NoteError::MalformedVerifierKey("missing key"))?)
            .map_err(|_| NoteError::MalformedVerifierKey("key is not valid base64"))?;
        let (&sig_type, public_key) = key
            .split_first()
            .ok_or(NoteError::MalformedVerifierKey("empty key"))?;
        if sig_type != ED25519_SIGNATURE_TYPE {
            return Err(NoteError::UnsupportedKeyType(sig_type));
        }
        let public_key: [u8; 32] = public_key
            .try_into()
            .map_err(|_| NoteError::MalformedVerifierKey("Ed25519 key is not 32 bytes"))?;
        let computed = key_id(name, sig_type, &public_key);
        if computed != given {
            return Err(NoteError::KeyIdMismatch { given, computed });
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: computed,
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id as a big-endian `u32`.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The verifier key string.
    pub fn vkey(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ED25519_SIGNATURE_TYPE);
        key.extend_from_slice(&self.public_key);
        format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(key))
    }

    /// Verifies `note` against this key alone and returns its text.
    pub fn verify(&self, note: &str) -> Result<String, NoteError> {
        open_note(note, std::slice::from_ref(self)).map(|v| v.text)
    }

    fn verify_signature(&self, text: &str, signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(text.as_bytes(), signature)
            .is_ok()
    }
}

/// A note whose signatures have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    /// The signed text, including its final newline.
    pub text: String,
    /// The known keys whose signatures verified, in note order.
    pub verified_by: Vec<NoteVerifier>,
    /// Number of signature lines from keys not in the verifier list (ignored).
    pub unknown_signatures: usize,
}

/// Parses and verifies a signed note against a set of known keys.
///
/// Rejects malformed notes, any failing signature from a known key (name and key id
/// both match), and notes with no verified signature from a known key. Signature
/// lines from unknown keys are ignored, as the spec requires.
pub fn open_note(note: &str, verifiers: &[NoteVerifier]) -> Result<VerifiedNote, NoteError> {
    if has_forbidden_control(note) {
        return Err(NoteError::MalformedNote(
            "contains an ASCII control character",
        ));
    }
    let split = note.rfind("\n\n").ok_or(NoteError::MalformedNote(
        "no blank line before the signatures",
    ))?;
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    let sigs = sigs.strip_suffix('\n').ok_or(NoteError::MalformedNote(
        "signature block missing or not newline-terminated",
    ))?;

    let mut verified_by: Vec<NoteVerifier> = Vec::new();
    let mut unknown_signatures = 0;
    for (count, line) in sigs.split('\n').enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures(MAX_SIGNATURES));
        }
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError::MalformedNote(
                "signature line does not start with \"— \"",
            ))?;
        let (name, b64) = chop(rest, ' ');
        let b64 = b64.ok_or(NoteError::MalformedNote("signature line has no signature"))?;
        if !is_valid_key_name(name) {
            return Err(NoteError::MalformedNote(
                "invalid key name in signature line",
            ));
        }
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::MalformedNote("signature is not valid base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::MalformedNote("signature is too short"));
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let Some(verifier) = verifiers.iter().find(|v| v.name == name && v.key_id == id) else {
            unknown_signatures += 1;
            continue;
        };
        if !verifier.verify_signature(text, &blob[4..]) {
            return Err(NoteError::InvalidSignature {
                name: name.to_owned(),
                key_id: id,
            });
        }
        if !verified_by.contains(verifier) {
            verified_by.push(verifier.clone());
        }
    }
    if verified_by.is_empty() {
        return Err(NoteError::UnverifiedNote);
    }
    Ok(VerifiedNote {
        text: text.to_owned(),
        verified_by,
        unknown_signatures,
    })
}

/// Verifies a signed checkpoint note and parses its body.
///
/// This does not compare the checkpoint origin with anything: callers should
/// check [`Checkpoint::origin`] against the log they expect.
pub fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, Error> {
    let text = verifier.verify(note)?;
    Ok(Checkpoint::parse(&text)?)
}
