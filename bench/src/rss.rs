//! The hub's memory, read from `/proc/<pid>/status`: `VmHWM` (the peak
//! resident set since the process started) and `VmRSS` (now). The hub runs
//! as its own process so that these are its figures alone.

use anyhow::{Context, Result};
use serde::Serialize;

/// Resident memory of a process, in MB (10^6 bytes; /proc counts KiB).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    pub peak_mb: f64,
    pub current_mb: f64,
}

/// Reads the memory of process `pid`.
pub fn of_process(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&status).with_context(|| format!("no VmHWM/VmRSS in {path}"))
}

fn parse_status(status: &str) -> Option<Memory> {
    let kib = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
    };
    Some(Memory {
        peak_mb: kib("VmHWM:")? * 1024.0 / 1e6,
        current_mb: kib("VmRSS:")? * 1024.0 / 1e6,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peak_and_current_from_status() {
        let status =
            "Name:\tkith-hub\nVmPeak:\t 900000 kB\nVmHWM:\t  292969 kB\nVmRSS:\t  97657 kB\n";
        let m = parse_status(status).unwrap();
        assert_eq!(m.peak_mb.round(), 300.0);
        assert_eq!(m.current_mb.round(), 100.0);
        assert!(parse_status("Name:\tx\n").is_none());
    }

    #[test]
    fn reads_this_process() {
        let m = of_process(std::process::id()).unwrap();
        assert!(m.peak_mb >= m.current_mb && m.current_mb > 0.0);
    }
}
