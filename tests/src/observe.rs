//! Looking at a running hub from outside: its audit entries, its memory
//! (`/proc`), and waiting for something to become true.

use super::*;

/// Reads the hub's audit entries as JSON values, oldest first.
pub async fn audit_entries(hub: &RunningHub) -> Vec<serde_json::Value> {
    let entries = hub.hub().store().audit_entries(0, 100_000).await.unwrap();
    entries
        .into_iter()
        .map(|e| serde_json::from_slice(&e.entry).unwrap())
        .collect()
}

/// Waits until `f` is true, polling, up to `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A line of `/proc/self/status` (for example `VmHWM`), in kB.
pub fn proc_status_kb(key: &str) -> Option<u64> {
    proc_status_kb_of("self", key)
}

/// A line of `/proc/PID/status` (for example `VmRSS`), in kB.
pub fn proc_status_kb_of(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
