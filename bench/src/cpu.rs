//! A process's CPU time, read from `/proc/<pid>/stat`: user plus system
//! time of all its threads. Queries per second depend on everything else
//! the machine is doing; CPU seconds per query much less so, and the echo
//! server's CPU per call, measured the same way in the same run, is the
//! yardstick (issue #18's "hub CPU per query <= 3 x echo CPU per call").
//!
//! `/proc` counts in clock ticks of `USER_HZ`, which Linux fixes at 100 on
//! every architecture it reports them for (it is not the kernel's `HZ`):
//! 10 ms a tick, so a window of a few seconds on two busy cores counts
//! hundreds of ticks.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Linux's `USER_HZ`: the unit of `utime` and `stime` in `/proc/<pid>/stat`.
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of process `pid` so far.
pub fn of_process(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat(&stat).with_context(|| format!("no utime/stime in {path}"))
}

/// `utime + stime` from a `/proc/<pid>/stat` line. The command name (field
/// 2) is in parentheses and may hold spaces and parentheses itself, so the
/// fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Result<Duration> {
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        bail!("no command name");
    };
    // After the name: field 3 (state) is the first; utime and stime are
    // fields 14 and 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |field: usize| -> Result<u64> {
        fields
            .get(field - 3)
            .context("too few fields")?
            .parse::<u64>()
            .context("not a number of ticks")
    };
    let ticks = tick(14)? + tick(15)?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_time_past_an_awkward_name() {
        let stat = "4242 (kith hub (x)) S 1 4242 4242 0 -1 4194560 5000 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat(stat).unwrap(), Duration::from_millis(3250));
        assert!(parse_stat("4242 (kith-hub) S 1").is_err());
        assert!(parse_stat("no name here").is_err());
    }

    #[test]
    fn this_process_uses_cpu() {
        let before = of_process(std::process::id()).unwrap();
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = of_process(std::process::id()).unwrap();
        assert!(
            after >= before + Duration::from_millis(20),
            "{before:?} → {after:?}"
        );
    }
}
