//! The `kith-demo` binary as a newcomer runs it (the README's first command).

use std::process::Command;

fn demo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kith-demo"))
}

/// The README's first command: the whole federation on loopback, every
/// query it shows answered as its title says.
#[test]
fn the_demo_runs_end_to_end_and_shows_what_each_query_should() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo()
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The story alone on the terminal; the log lines in the demo's folder.
    assert!(stderr.trim().is_empty(), "log lines on stderr: {stderr}");
    assert!(
        !stdout.contains(" INFO "),
        "log lines in the story: {stdout}"
    );
    let log_path = dir.path().join("demo").join("kith-demo.log");
    assert!(
        stdout.contains(&format!("log:    {}", log_path.display())),
        "the demo says where its log is: {stdout}"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("audit log opened"), "{log}");
    let section = |from: &str, to: &str| -> String {
        let start = stdout
            .find(from)
            .unwrap_or_else(|| panic!("no {from:?} in\n{stdout}"));
        let rest = &stdout[start..];
        rest[..rest.find(to).unwrap_or(rest.len())].to_string()
    };
    assert!(section("Query 1:", "Query 2:").contains("detail"));
    assert!(section("Query 4:", "Query 5:").contains("no sharing agreement covers"));
    let glass = section("Query 5:", "Query 6:");
    assert!(glass.contains("BREAK GLASS"), "{glass}");
    assert!(
        glass.contains("summary shared under break glass"),
        "{glass}"
    );
    let after = section("Query 6:", "What Manchester");
    assert!(after.contains("withheld by the custodian"), "{after}");
    let told = section("What Manchester", "Stopped.");
    assert!(
        told.contains("break_glass") && told.contains("access"),
        "{told}"
    );
    assert!(dir.path().join("demo").join("audit-log.vkey").exists());
}
