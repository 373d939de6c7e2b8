//! Runs the policy checker over a folder (default `../policies`), as
//! `kith-hub policy check [DIR]` does: `cargo run --example check -- DIR`.

use std::path::PathBuf;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies")));
    let report = kith_policy::check(&dir);
    println!("{report}");
    std::process::exit(if report.passed() { 0 } else { 1 });
}
