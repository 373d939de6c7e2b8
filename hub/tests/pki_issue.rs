//! Enrolment end to end through both binaries' commands: `kith-agent pki
//! request` makes the key and CSR (here through the library it calls),
//! `kith-hub pki issue CSR` signs a member's request and refuses, with its
//! reason, a stranger's, a tampered one, a mismatched one, and an `--out`
//! that exists.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kith_core::AuthorityCode;
use kith_ops::tls_files::{TlsPaths, TlsRole};
use kith_tests::*;

fn issue(t: &TestDir, config: &Path, csr: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kith-hub"))
        .args(["pki", "issue"])
        .arg(csr)
        .arg("--ca")
        .arg(t.path().join("pki"))
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_remove("KITH_HUB_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn request(t: &TestDir, code: &str) -> (PathBuf, PathBuf) {
    let out = t.path().join(format!("request-{code}"));
    let files =
        kith_core::enrolment::write_request(&out, &AuthorityCode::new(code).unwrap()).unwrap();
    (files.key, files.csr)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_members_request_is_signed_and_the_rest_refused_with_their_reasons() {
    let t = TestDir::new();
    let config = kith_tests::process::write_hub_config(&t, 0);

    // A member's request: signed, and the certificate with the key that
    // never left "the agent's machine" passes the agent's own checks.
    let (key, csr) = request(&t, COUNCIL_A);
    let cert = t.path().join("a.crt.pem");
    let output = issue(&t, &config, &csr, &cert, &["--authority", COUNCIL_A]);
    assert!(output.status.success(), "{}", stderr(&output));
    let paths = TlsPaths {
        ca: t.path().join("pki").join("ca.crt.pem"),
        cert: cert.clone(),
        key,
    };
    let code = AuthorityCode::new(COUNCIL_A).unwrap();
    kith_ops::tls_files::check(&paths, TlsRole::Client, chrono::Utc::now(), &|c| {
        (AuthorityCode::from_certificate(c).map_err(|e| e.to_string())? == code)
            .then_some(())
            .ok_or_else(|| "another authority".to_string())
    })
    .unwrap();

    // --out is never overwritten.
    let again = issue(&t, &config, &csr, &cert, &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("must not exist yet"),
        "{}",
        stderr(&again)
    );

    // Not a member.
    let (_, stranger) = request(&t, OUTSIDER);
    let output = issue(&t, &config, &stranger, &t.path().join("x.pem"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("error: refused to sign") && err.contains("X99 is not a member"),
        "{err}"
    );
    assert!(!t.path().join("x.pem").exists());

    // A member's request, but not the one the operator expects.
    let output = issue(
        &t,
        &config,
        &csr,
        &t.path().join("y.pem"),
        &["--authority", COUNCIL_B],
    );
    let err = stderr(&output);
    assert!(err.contains("but E08000006 was asked for"), "{err}");

    // Tampered: the authority in the request changed after signing.
    let text = std::fs::read_to_string(&csr).unwrap();
    let tampered = t.path().join("tampered.csr.pem");
    std::fs::write(&tampered, tamper(&text)).unwrap();
    let output = issue(&t, &config, &tampered, &t.path().join("z.pem"), &[]);
    let err = stderr(&output);
    assert!(err.contains("signature does not verify"), "{err}");

    // Not a CSR at all.
    let junk = t.path().join("junk.csr.pem");
    std::fs::write(&junk, "hello").unwrap();
    let output = issue(&t, &config, &junk, &t.path().join("w.pem"), &[]);
    assert!(stderr(&output).contains("not a readable PEM certificate signing request"));
}

/// The request with the last digit of its authority code changed in the
/// DER, signature left as it was.
fn tamper(pem: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = engine.decode(body).unwrap();
    let at = der.windows(9).position(|w| w == b"E08000003").unwrap();
    der[at + 8] = b'6';
    let b64 = engine.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out + "-----END CERTIFICATE REQUEST-----\n"
}
