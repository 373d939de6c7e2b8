//! The closed-loop load driver shared by the echo baseline and the hub's
//! queries, so both are measured the same way.
//!
//! Each client is a task that makes one call at a time, back to back, for
//! the warm-up and then the measured window. Only calls that *start* inside
//! the window count; each counted call's latency goes into an HDR
//! histogram (microseconds, 3 significant figures), merged across clients
//! at the end.

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How one call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// What the phase measures (an echo; an authorised query).
    Counted,
    /// Answered OK but not what the phase measures (a query that disclosed
    /// nothing).
    Uncounted,
    /// Failed; the message is kept for the report.
    Failed(String),
}

/// Warm-up, then the measured window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

/// What a load phase measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub window: Duration,
    pub counted: u64,
    pub uncounted: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// Latency of counted calls, µs.
    pub latency: Histogram<u64>,
    /// CPU time the server process used over the measured window, when
    /// [`drive`] was given its pid and could read it.
    pub server_cpu: Option<Duration>,
}

/// Throughput and latency percentiles, as reported.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub per_s: f64,
    pub count: u64,
    pub uncounted: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The server's CPU time per counted call over the window, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_per_call_us: Option<f64>,
}

/// A histogram of microseconds from 1 µs to 1 minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl LoadResult {
    /// Nothing measured yet over a window of `window`.
    fn empty(window: Duration) -> Self {
        Self {
            window,
            counted: 0,
            uncounted: 0,
            failed: 0,
            first_error: None,
            latency: histogram(),
            server_cpu: None,
        }
    }

    pub fn summary(&self) -> Summary {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1_000.0;
        Summary {
            per_s: self.counted as f64 / self.window.as_secs_f64(),
            count: self.counted,
            uncounted: self.uncounted,
            failed: self.failed,
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms: self.latency.max() as f64 / 1_000.0,
            server_cpu_per_call_us: self
                .server_cpu
                .filter(|_| self.counted > 0)
                .map(|cpu| cpu.as_secs_f64() * 1e6 / self.counted as f64),
        }
    }
}

/// Runs one task per element of `clients`, each calling its closure in a
/// loop for the whole `window`. With `server`, the pid of the process the
/// clients call, its CPU time is read as the measured window opens and
/// closes.
pub async fn drive<C, Fut>(clients: Vec<C>, window: Window, server: Option<u32>) -> LoadResult
where
    C: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let start = Instant::now();
    let measure_from = start + window.warmup;
    let end = measure_from + window.measure;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut call| {
            tokio::spawn(async move {
                let mut own = LoadResult::empty(window.measure);
                loop {
                    let began = Instant::now();
                    if began >= end {
                        break;
                    }
                    let outcome = call().await;
                    if began < measure_from {
                        continue;
                    }
                    match outcome {
                        Outcome::Counted => {
                            own.counted += 1;
                            let micros = began.elapsed().as_micros().max(1) as u64;
                            own.latency.saturating_record(micros);
                        }
                        Outcome::Uncounted => own.uncounted += 1,
                        Outcome::Failed(e) => {
                            own.failed += 1;
                            own.first_error.get_or_insert(e);
                        }
                    }
                }
                own
            })
        })
        .collect();
    let server_cpu = match server {
        Some(pid) => {
            tokio::time::sleep_until(measure_from.into()).await;
            let opened = crate::cpu::of_process(pid).ok();
            tokio::time::sleep_until(end.into()).await;
            let closed = crate::cpu::of_process(pid).ok();
            opened.zip(closed).map(|(a, b)| b.saturating_sub(a))
        }
        None => None,
    };
    let mut total = LoadResult::empty(window.measure);
    total.server_cpu = server_cpu;
    for task in tasks {
        let own = task.await.expect("a load task panicked");
        total.counted += own.counted;
        total.uncounted += own.uncounted;
        total.failed += own.failed;
        if total.first_error.is_none() {
            total.first_error = own.first_error;
        }
        total
            .latency
            .add(&own.latency)
            .expect("histograms with the same bounds");
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_only_the_window_and_sorts_outcomes() {
        let clients: Vec<_> = (0..3)
            .map(|i| {
                let mut n = 0u64;
                move || {
                    n += 1;
                    let outcome = match (i, n % 2) {
                        (0, _) => Outcome::Counted,
                        (1, 0) => Outcome::Uncounted,
                        _ => Outcome::Failed(format!("client {i}")),
                    };
                    async move {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        outcome
                    }
                }
            })
            .collect();
        let result = drive(
            clients,
            Window {
                warmup: Duration::from_millis(20),
                measure: Duration::from_millis(100),
            },
            Some(std::process::id()),
        )
        .await;
        assert!(result.counted > 0 && result.uncounted > 0 && result.failed > 0);
        assert_eq!(result.latency.len(), result.counted);
        assert!(result.first_error.as_deref().unwrap().starts_with("client"));
        let s = result.summary();
        assert!(s.p50_ms >= 2.0 && s.p99_ms >= s.p50_ms, "{s:?}");
        assert!(
            result.server_cpu.is_some() && s.server_cpu_per_call_us.is_some(),
            "this process's CPU over the window was read: {s:?}"
        );
    }
}
