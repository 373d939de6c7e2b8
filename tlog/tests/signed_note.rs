//! Signed notes and signed checkpoints: the reference vector from Go's
//! `golang.org/x/mod/sumdb/note`, a by-hand parse of our output against the
//! c2sp.org/signed-note format, and rejection of wrong keys, tampered text and
//! malformed notes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kith_tlog::{
    Checkpoint, Error, MerkleTree, NoteError, NoteSigner, NoteVerifier, leaf_hash, open_checkpoint,
    open_note, sign_note,
};
use sha2::{Digest, Sha256};

// The example key and note from the Go reference implementation's tests.
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const GO_SIG_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

fn go_note() -> String {
    format!("{GO_TEXT}\n{GO_SIG_LINE}")
}

#[test]
fn go_reference_vector_byte_for_byte() {
    let signer = NoteSigner::from_skey(GO_SKEY).unwrap();
    assert_eq!(signer.vkey(), GO_VKEY);
    assert_eq!(signer.key_id(), 0xc74f20a3);
    // Ed25519 is deterministic, so our signature must equal the published one.
    assert_eq!(signer.sign(GO_TEXT).unwrap(), go_note());

    let verifier = NoteVerifier::from_vkey(GO_VKEY).unwrap();
    assert_eq!(verifier.name(), "PeterNeumann");
    assert_eq!(verifier.vkey(), GO_VKEY);
    assert_eq!(verifier.verify(&go_note()).unwrap(), GO_TEXT);
    let tampered = go_note().replace("cryptography", "cryptographY");
    assert!(matches!(
        verifier.verify(&tampered),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn our_note_parsed_by_hand_matches_the_spec() {
    let seed = [7u8; 32];
    let name = "kith.example/audit";
    let signer = NoteSigner::from_seed(name, &seed).unwrap();
    let text = "kith.example/audit\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    let note = signer.sign(text).unwrap();

    // text || "\n" || "— " name " " base64 "\n"
    let rest = note.strip_prefix(text).unwrap();
    let rest = rest.strip_prefix('\n').unwrap();
    assert_eq!(&rest.as_bytes()[..4], &[0xe2, 0x80, 0x94, b' ']); // U+2014, space
    let line = rest.strip_suffix('\n').unwrap();
    assert!(!line.contains('\n'));
    let (name_part, b64) = line["\u{2014} ".len()..].split_once(' ').unwrap();
    assert_eq!(name_part, name);
    let blob = STANDARD.decode(b64).unwrap();
    assert_eq!(blob.len(), 4 + 64);

    // Key id with an independent SHA-256: name || 0x0A || 0x01 || public key.
    let public_key = signer.public_key();
    let mut preimage = name.as_bytes().to_vec();
    preimage.push(0x0a);
    preimage.push(0x01);
    preimage.extend_from_slice(&public_key);
    let digest = Sha256::digest(&preimage);
    assert_eq!(&blob[..4], &digest[..4]);
    assert_eq!(
        u32::from_be_bytes(blob[..4].try_into().unwrap()),
        signer.key_id()
    );

    // The signature is an Ed25519 signature over exactly the text.
    let pk = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key);
    pk.verify(text.as_bytes(), &blob[4..]).unwrap();
    assert!(pk.verify(note.as_bytes(), &blob[4..]).is_err());

    // The vkey: name + 8 hex + base64(0x01 || public key).
    let mut key = vec![0x01];
    key.extend_from_slice(&public_key);
    assert_eq!(
        signer.vkey(),
        format!(
            "{name}+{:02x}{:02x}{:02x}{:02x}+{}",
            digest[0],
            digest[1],
            digest[2],
            digest[3],
            STANDARD.encode(&key)
        )
    );
}

#[test]
fn generated_keys_round_trip_through_pkcs8_and_vkey() {
    let (signer, pkcs8) = NoteSigner::generate("kith.example/hub").unwrap();
    let again = NoteSigner::from_pkcs8("kith.example/hub", &pkcs8).unwrap();
    assert_eq!(signer.vkey(), again.vkey());
    let verifier = NoteVerifier::from_vkey(&signer.vkey()).unwrap();
    assert_eq!(verifier, signer.verifier());
    let note = again.sign("hello\n").unwrap();
    assert_eq!(verifier.verify(&note).unwrap(), "hello\n");
    // Debug output never includes key material beyond the public vkey.
    let debug = format!("{signer:?}");
    assert!(debug.contains(&signer.vkey()));
    assert!(NoteSigner::from_pkcs8("x", b"not pkcs8").is_err());
}

#[test]
fn wrong_key_and_unknown_keys() {
    let (alice, _) = NoteSigner::generate("alice.example").unwrap();
    let (mallory, _) = NoteSigner::generate("alice.example").unwrap(); // same name, other key
    let (witness, _) = NoteSigner::generate("witness.example").unwrap();
    let text = "tree head\n";

    // Signed by someone else with the same name: their line is unknown to us.
    let forged = mallory.sign(text).unwrap();
    assert_eq!(
        alice.verifier().verify(&forged),
        Err(NoteError::UnverifiedNote)
    );

    // Several signers: unknown lines are ignored, known ones verified.
    let note = sign_note(text, &[&witness, &alice]).unwrap();
    let opened = open_note(&note, &[alice.verifier()]).unwrap();
    assert_eq!(opened.text, text);
    assert_eq!(opened.verified_by, vec![alice.verifier()]);
    assert_eq!(opened.unknown_signatures, 1);
    let both = open_note(&note, &[alice.verifier(), witness.verifier()]).unwrap();
    assert_eq!(both.verified_by.len(), 2);
    assert_eq!(open_note(&note, &[]), Err(NoteError::UnverifiedNote));

    // A known key's line with a bad signature rejects the note even if another
    // known key's line verifies.
    let alice_line = alice.sign(text).unwrap()[text.len() + 1..].to_string();
    let witness_line = witness.sign(text).unwrap()[text.len() + 1..].to_string();
    let mut bad_blob = STANDARD
        .decode(alice_line.trim_end().rsplit_once(' ').unwrap().1)
        .unwrap();
    bad_blob[10] ^= 1;
    let bad_line = format!("\u{2014} alice.example {}\n", STANDARD.encode(&bad_blob));
    let mixed = format!("{text}\n{witness_line}{bad_line}");
    assert!(matches!(
        open_note(&mixed, &[alice.verifier(), witness.verifier()]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn tampered_notes_fail() {
    let (signer, _) = NoteSigner::generate("kith.example/audit").unwrap();
    let verifier = signer.verifier();
    let text = "kith.example/audit\n3\nAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n";
    let note = signer.sign(text).unwrap();
    verifier.verify(&note).unwrap();
    // Change each character of the text in turn (keeping it well-formed).
    for (i, c) in text.char_indices() {
        if c == '\n' {
            continue;
        }
        let mut bad = note.clone();
        let replacement = if c == 'x' { "y" } else { "x" };
        bad.replace_range(i..i + c.len_utf8(), replacement);
        assert!(verifier.verify(&bad).is_err(), "tamper at {i}");
    }
    // Extra text lines, or text moved into the signature block.
    assert!(verifier.verify(&format!("extra\n{note}")).is_err());
}

#[test]
fn malformed_notes_are_rejected() {
    let signer = NoteSigner::from_skey(GO_SKEY).unwrap();
    let v = signer.verifier();
    let good = go_note();
    let sig = GO_SIG_LINE.trim_end().rsplit_once(' ').unwrap().1;
    let malformed = [
        // No blank line between text and signatures.
        format!("{GO_TEXT}{GO_SIG_LINE}"),
        // Missing final newline.
        good.trim_end().to_string(),
        // Empty signature block.
        format!("{GO_TEXT}\n"),
        format!("{GO_TEXT}\n\n"),
        // Hyphen instead of em dash; missing space.
        format!("{GO_TEXT}\n- PeterNeumann {sig}\n"),
        format!("{GO_TEXT}\n\u{2014}PeterNeumann {sig}\n"),
        // Name with '+', empty name, no signature.
        format!("{GO_TEXT}\n\u{2014} Peter+Neumann {sig}\n"),
        format!("{GO_TEXT}\n\u{2014}  {sig}\n"),
        format!("{GO_TEXT}\n\u{2014} PeterNeumann\n"),
        format!("{GO_TEXT}\n\u{2014} PeterNeumann \n"),
        // Bad base64, too-short signature.
        format!("{GO_TEXT}\n\u{2014} PeterNeumann {}\n", &sig[1..]),
        format!("{GO_TEXT}\n\u{2014} PeterNeumann x08gow==\n"),
        format!("{GO_TEXT}\n\u{2014} PeterNeumann {sig} \n"),
        // Control characters.
        good.replace("problem,", "problem,\r"),
        good.replace("problem,", "problem,\t"),
        format!("{GO_TEXT}\n{}", GO_SIG_LINE.replace('\n', "\r\n")),
    ];
    for note in &malformed {
        let err = v.verify(note).unwrap_err();
        assert!(
            matches!(err, NoteError::MalformedNote(_)),
            "{note:?} gave {err:?}"
        );
    }
    // A well-formed line from the known key whose signature has the wrong length.
    assert!(matches!(
        v.verify(&format!("{GO_TEXT}\n\u{2014} PeterNeumann x08go/Y=\n")),
        Err(NoteError::InvalidSignature { .. })
    ));
    // A blank line inside the signature block makes the first line part of the
    // text, which then does not verify.
    let two = format!("{GO_TEXT}\n{GO_SIG_LINE}\n{GO_SIG_LINE}");
    assert!(v.verify(&two).is_err());
    // Too many signature lines.
    let many = format!("{GO_TEXT}\n{}", GO_SIG_LINE.repeat(101));
    assert_eq!(v.verify(&many), Err(NoteError::TooManySignatures(100)));
    // But the same valid line repeated (up to the limit) is fine.
    assert_eq!(
        v.verify(&format!("{GO_TEXT}\n{}", GO_SIG_LINE.repeat(16)))
            .unwrap(),
        GO_TEXT
    );
}

#[test]
fn signing_rejects_bad_text_and_names() {
    let signer = NoteSigner::from_skey(GO_SKEY).unwrap();
    assert!(matches!(signer.sign(""), Err(NoteError::InvalidText(_))));
    assert!(matches!(
        signer.sign("no newline"),
        Err(NoteError::InvalidText(_))
    ));
    assert!(matches!(
        signer.sign("bell\x07\n"),
        Err(NoteError::InvalidText(_))
    ));
    assert!(matches!(
        sign_note("x\n", &[]),
        Err(NoteError::InvalidText(_))
    ));
    for name in ["", "a b", "a+b", "a\tb", "a\u{3000}b"] {
        assert!(
            matches!(
                NoteSigner::generate(name),
                Err(NoteError::InvalidKeyName(_))
            ),
            "{name:?}"
        );
    }
}

#[test]
fn verifier_keys_are_strictly_parsed() {
    NoteVerifier::from_vkey(GO_VKEY).unwrap();
    // As in the Go tests: every proper substring and every single-byte change of a
    // valid key is rejected (the key id catches changes to name or key).
    let b = GO_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i != 0 || j != b.len() {
                let s = std::str::from_utf8(&b[i..j]).unwrap();
                assert!(NoteVerifier::from_vkey(s).is_err(), "{s}");
            }
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] += 1;
        let s = String::from_utf8(m).unwrap();
        assert!(NoteVerifier::from_vkey(&s).is_err(), "{s}");
    }
    assert!(matches!(
        NoteVerifier::from_vkey(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        ),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    // Unsupported signature type byte (0x02) is reported as such.
    let mut key = STANDARD
        .decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        .unwrap();
    key[0] = 0x02;
    let vkey = format!("PeterNeumann+c74f20a3+{}", STANDARD.encode(&key));
    assert_eq!(
        NoteVerifier::from_vkey(&vkey),
        Err(NoteError::UnsupportedKeyType(2))
    );
    // Upper-case hex is not what we emit, but is accepted like Go does; '+' sign is not.
    assert!(NoteVerifier::from_vkey(&GO_VKEY.replace("c74f20a3", "C74F20A3")).is_ok());
    assert!(NoteVerifier::from_vkey(&GO_VKEY.replace("c74f20a3", "+74f20a3")).is_err());
}

#[test]
fn signed_checkpoint_round_trip() {
    let mut tree = MerkleTree::new();
    for i in 0..1000u32 {
        tree.push(leaf_hash(&i.to_be_bytes()));
    }
    let (signer, _) = NoteSigner::generate("kith.example/audit").unwrap();
    let cp = Checkpoint::new("kith.example/audit", tree.len(), tree.root()).unwrap();
    let note = signer.sign_checkpoint(&cp).unwrap();
    assert!(note.starts_with("kith.example/audit\n1000\n"));
    let opened = open_checkpoint(&note, &signer.verifier()).unwrap();
    assert_eq!(opened, cp);

    // Wrong verifier.
    let (other, _) = NoteSigner::generate("kith.example/audit").unwrap();
    assert_eq!(
        open_checkpoint(&note, &other.verifier()),
        Err(Error::Note(NoteError::UnverifiedNote))
    );
    // Validly signed text that is not a checkpoint.
    let not_cp = signer.sign("kith.example/audit\n01\nAAAA\n").unwrap();
    assert!(matches!(
        open_checkpoint(&not_cp, &signer.verifier()),
        Err(Error::Checkpoint(_))
    ));
}
