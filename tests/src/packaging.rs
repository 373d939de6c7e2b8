//! The shipped systemd units (`deploy/systemd/`), checked as an operator's
//! machine would check them: `systemd-analyze verify` with `ExecStart`
//! pointing at this build's binary (verify checks that the command
//! exists), and the hardening lines each unit must keep.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `deploy/systemd/NAME` in this checkout.
pub fn systemd_unit(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/systemd")
        .join(name)
}

/// Asserts the unit holds each of `lines`.
pub fn assert_unit_has(unit: &Path, lines: &[&str]) {
    let text = std::fs::read_to_string(unit).unwrap();
    for line in lines {
        assert!(text.contains(line), "{} lacks {line:?}", unit.display());
    }
}

/// Runs `systemd-analyze verify` on a copy of `unit` whose `installed`
/// binary path is replaced by `built`; fails on any complaint naming the
/// unit. Without `systemd-analyze` it says so and returns, except under CI
/// (`CI` set), where that fails.
pub fn assert_unit_verifies(unit: &Path, installed: &str, built: &str) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing under CI"
        );
        eprintln!(
            "systemd-analyze not found: {} was not verified",
            unit.display()
        );
        return;
    }
    let name = unit.file_name().unwrap().to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit)
        .unwrap()
        .replace(installed, built);
    let copy = dir.path().join(&name);
    std::fs::write(&copy, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(&name)).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify {name}: {stderr}"
    );
}
