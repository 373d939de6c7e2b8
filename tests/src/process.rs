//! Real `kith-hub serve` and `kith-agent run` processes, to be killed
//! outright (SIGKILL) and started again. The binaries' paths come from the
//! calling test (`env!("CARGO_BIN_EXE_…")` in the crate that builds them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kith_agent::config::AgentConfig;

use crate::TestDir;

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Process {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    fn spawn(binary: &Path, args: &[&std::ffi::OsStr], log: &Path) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(binary)
            .args(args)
            .env_remove("KITH_AGENT_CONFIG")
            .env_remove("KITH_LOG_FORMAT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Self {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL: no shutdown, no flush, no lease release.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (a `kill -s` name: `HUP`, `TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -s {signal} {pid}");
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The process's standard error so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `t`'s hub config for 127.0.0.1:`port` as `hub.toml`.
pub fn write_hub_config(t: &TestDir, port: u16) -> PathBuf {
    let config = t.hub_config(port);
    let path = t.path().join("hub.toml");
    std::fs::write(&path, toml::to_string(&config).expect("hub config as TOML")).unwrap();
    path
}

/// Starts `kith-hub serve` (the binary at `binary`) with the config at
/// `config`, standard error appended to `log`.
pub fn serve_hub(binary: &Path, config: &Path, log: &Path) -> Process {
    Process::spawn(
        binary,
        &["serve".as_ref(), "--config".as_ref(), config.as_os_str()],
        log,
    )
}

/// Writes `config` as `<data_dir>/../kith-agent.toml` and returns its path.
pub fn write_agent_config(config: &AgentConfig) -> PathBuf {
    let path = config
        .data_dir
        .parent()
        .unwrap_or(&config.data_dir)
        .join("kith-agent.toml");
    std::fs::write(
        &path,
        toml::to_string(config).expect("agent config as TOML"),
    )
    .unwrap();
    path
}

/// Starts `kith-agent run` (the binary at `binary`) with the config at
/// `config`, standard error appended to `log`.
pub fn run_agent(binary: &Path, config: &Path, log: &Path) -> Process {
    Process::spawn(
        binary,
        &["--config".as_ref(), config.as_os_str(), "run".as_ref()],
        log,
    )
}

/// Waits until something accepts TCP connections at `addr`.
pub async fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A free TCP port on 127.0.0.1 (free when asked; a test binds it soon
/// after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` valid JSON lines of `custodian`, record ids `{prefix}-{i}` for `i`
/// in `range`, each about its own test NHS number (`nhs_offset + i`).
pub fn record_lines(
    custodian: &str,
    prefix: &str,
    range: std::ops::Range<u32>,
    nhs_offset: u32,
) -> String {
    let mut out = String::new();
    for i in range {
        out.push_str(&crate::record_json(
            custodian,
            &format!("{prefix}-{i}"),
            1,
            &crate::test_nhs_number(nhs_offset + i),
            "child_in_need",
            &["safeguarding"],
        ));
        out.push('\n');
    }
    out
}

/// A size from the environment variable `var`, or `default`.
pub fn size_from_env(var: &str, default: u32) -> u32 {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}
