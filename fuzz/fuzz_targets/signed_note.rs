//! Signed notes, checkpoints and verifier keys (C2SP signed-note,
//! tlog-checkpoint), from arbitrary text: what an agent or auditor reads
//! from the hub.
//!
//! The whole input is tried as a note (against a fixed key), a checkpoint
//! body, a verifier key and a signer key. It is also signed with the fixed
//! key, so the checkpoint parser behind `open_checkpoint` sees arbitrary
//! bodies, not only ones the fuzzer could never sign.
//!
//! Checks: no panic; a parsed checkpoint prints back to the exact input, and
//! a verifier key too but for the case of its hex key id (the parsers are
//! strict); a note that was signed opens to the
//! same text, by the signing key, and `open_checkpoint` agrees with
//! `Checkpoint::parse`; a note from an unknown key does not verify.
#![no_main]

use kith_tlog::Checkpoint;
use kith_tlog::note::{NoteSigner, NoteVerifier, open_checkpoint, open_note};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The key of the reference vector in Go's golang.org/x/mod/sumdb/note
/// tests (also in tlog/tests/signed_note.rs), so the seed corpus can hold
/// real signed notes.
const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

fn signer() -> &'static NoteSigner {
    static SIGNER: OnceLock<NoteSigner> = OnceLock::new();
    SIGNER.get_or_init(|| NoteSigner::from_skey(SKEY).expect("a signer"))
}

/// Same name, other key: its key id differs.
fn other() -> &'static NoteSigner {
    static OTHER: OnceLock<NoteSigner> = OnceLock::new();
    OTHER.get_or_init(|| NoteSigner::from_seed("PeterNeumann", &[8; 32]).expect("a signer"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let verifier = signer().verifier();

    if let Ok(opened) = open_note(text, std::slice::from_ref(&verifier)) {
        assert!(opened.verified_by.contains(&verifier));
        assert!(text.starts_with(&opened.text));
    }
    let _ = open_checkpoint(text, &verifier);

    if let Ok(cp) = Checkpoint::parse(text) {
        assert_eq!(
            cp.to_body(),
            text,
            "checkpoint does not print back as parsed"
        );
        assert_eq!(Checkpoint::parse(&cp.to_body()).as_ref(), Ok(&cp));
    }

    if let Ok(v) = NoteVerifier::from_vkey(text) {
        // The key id may be given in either case (as Go's parser takes it);
        // everything else prints back exactly.
        let printed = v.vkey();
        let a: Vec<&str> = printed.splitn(3, '+').collect();
        let b: Vec<&str> = text.splitn(3, '+').collect();
        assert_eq!(a.len(), 3);
        assert_eq!(a.len(), b.len());
        assert_eq!(a[0], b[0], "verifier key name changed");
        assert!(a[1].eq_ignore_ascii_case(b[1]), "verifier key id changed");
        assert_eq!(a[2], b[2], "verifier key changed");
        assert_eq!(NoteVerifier::from_vkey(&printed).as_ref(), Ok(&v));
    }
    let _ = NoteSigner::from_skey(text);

    if let Ok(note) = signer().sign(text) {
        let opened =
            open_note(&note, std::slice::from_ref(&verifier)).expect("a note just signed opens");
        assert_eq!(opened.text, text, "a signed note opened to other text");
        assert_eq!(opened.verified_by, vec![verifier.clone()]);
        assert_eq!(opened.unknown_signatures, 0);
        let cp = open_checkpoint(&note, &verifier).ok();
        assert_eq!(cp, Checkpoint::parse(text).ok());
        assert!(
            open_note(&note, &[other().verifier()]).is_err(),
            "a note verified with a key that did not sign it"
        );
    }
});
