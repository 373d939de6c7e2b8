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

/// The demo process, killed if the test fails before stopping it.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange with a console on loopback: (status, headers and
/// body as text).
fn http(addr: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out)
}

/// With `--keep-running`, every agent's console is up on loopback and the
/// sign-ins it prints work, each for its role's pages; Ctrl-C stops it all.
#[test]
fn keep_running_serves_each_agents_console_with_the_sign_ins_it_prints() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Demo(
        demo()
            .arg("--dir")
            .arg(dir.path().join("demo"))
            .arg("--keep-running")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let consoles = printed
        .split("The staff consoles")
        .nth(1)
        .unwrap_or_else(|| panic!("no consoles in\n{printed}"));
    let urls: Vec<&str> = consoles
        .lines()
        .filter_map(|l| l.split("http://").nth(1))
        .map(|u| u.trim_end_matches('/'))
        .collect();
    assert_eq!(urls.len(), 3, "{consoles}");
    // Each authority's three accounts: case worker, auditor, operator.
    let accounts: Vec<Vec<&str>> = consoles
        .lines()
        .filter(|l| l.contains(" password "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(accounts.len(), 9, "{consoles}");
    for (i, (role, start)) in [
        ("social_worker", "/search"),
        ("auditor", "/audit/search"),
        ("operator", "/operator"),
    ]
    .into_iter()
    .enumerate()
    {
        let a = &accounts[i];
        assert_eq!(a[0], role, "{consoles}");
        let (user, password) = (a[2], a[4]);
        let addr = urls[0];
        let (status, page) = http(
            addr,
            "GET /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200);
        let token = page.split("name=\"csrf\" value=\"").nth(1).unwrap();
        let token = &token[..token.find('"').unwrap()];
        let pre = page.split("set-cookie: ").nth(1).unwrap();
        let pre = &pre[..pre.find(';').unwrap()];
        let body = format!("csrf={token}&user_id={user}&password={password}");
        let (status, answer) = http(
            addr,
            &format!(
                "POST /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: {pre}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(status, 303, "{user}: {answer}");
        let session = answer
            .split("set-cookie: ")
            .find(|c| c.starts_with("kith-session="))
            .unwrap();
        let session = &session[..session.find(';').unwrap()];
        let (status, page) = http(
            addr,
            &format!(
                "GET {start} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: {session}\r\n\r\n"
            ),
        );
        assert_eq!(status, 200, "{user} at {start}: {page}");
    }
    let stopped = std::process::Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let rest: String = lines.map_while(Result::ok).collect::<Vec<_>>().join("\n");
    assert!(child.0.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("Stopped."), "{rest}");
}
