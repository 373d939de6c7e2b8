//! What a run prints: a table for people, then one JSON line with every
//! figure and the run's parameters, for scripts and for
//! `docs/benchmarks.md`. The targets are checked here, each marked
//! with whether it applies to this run's size and concurrency.

use std::fmt::Write as _;

use serde::Serialize;

use crate::ingest::IngestSummary;
use crate::load::Summary;
use crate::rss::Memory;
use crate::subscriptions::SeedSummary;

/// Ingest into a store holding current subscriptions, beside phase 3's
/// ingest of the same records into one holding none (issue #17.3).
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionsPhase {
    pub seed: SeedSummary,
    pub ingest: IngestSummary,
    /// Records/s with the subscriptions over records/s without.
    pub ingest_ratio: f64,
    /// Hub CPU per record with them over hub CPU per record without.
    pub cpu_ratio: Option<f64>,
    /// Subscription notices the store held for the subscriber at the end
    /// (none acknowledged: no agent ran).
    pub notices_stored: u64,
    pub hub_memory: Memory,
}

impl SubscriptionsPhase {
    pub fn new(
        seed: SeedSummary,
        with: IngestSummary,
        without: &IngestSummary,
        notices_stored: u64,
        hub_memory: Memory,
    ) -> Self {
        Self {
            ingest_ratio: with.records_per_s / without.records_per_s,
            cpu_ratio: with
                .hub_cpu_per_record_us
                .zip(without.hub_cpu_per_record_us)
                .filter(|(_, w)| *w > 0.0)
                .map(|(a, b)| a / b),
            seed,
            ingest: with,
            notices_stored,
            hub_memory,
        }
    }
}

/// The run's parameters.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub started_at: String,
    pub store: String,
    pub records: u64,
    pub records_per_person: u32,
    pub people: u64,
    pub clients: usize,
    pub connections: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub publishers: usize,
    pub batch_size: usize,
    pub quick: bool,
    pub cores: usize,
    /// `/proc/loadavg` (1, 5, 15 minutes) when the run started and ended.
    pub load_before: String,
    pub load_after: String,
}

/// One of the targets, against this run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetCheck {
    pub target: String,
    pub actual: String,
    pub met: bool,
    /// False when the target is stated for another size or concurrency:
    /// the check is then for reference only.
    pub applies: bool,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub params: Params,
    pub echo: Summary,
    pub ingest: IngestSummary,
    pub query: Summary,
    /// Authorised queries/s over echo calls/s: the headline.
    pub query_to_echo: f64,
    /// The hub's CPU time per authorised query over the echo server's CPU
    /// time per call, each over its measured window: a figure a noisy
    /// machine moves far less than throughput.
    pub cpu_to_echo: Option<f64>,
    pub hub_memory_after_ingest: Memory,
    pub hub_memory: Memory,
    /// SQLite database and WAL after the run (none on PostgreSQL).
    pub sqlite_bytes: Option<u64>,
    /// With `--subscriptions`: the second ingest, with them.
    pub subscriptions: Option<SubscriptionsPhase>,
    pub targets: Vec<TargetCheck>,
}

impl Report {
    /// Checks the targets against the figures.
    pub fn check_targets(&mut self) {
        let at_1m = self.params.records == 1_000_000;
        let p = &self.params;
        self.targets = vec![
            TargetCheck {
                target: "authorised queries/s >= 0.5 x echo calls/s".into(),
                actual: format!("{:.3} x", self.query_to_echo),
                met: self.query_to_echo >= 0.5,
                applies: true,
            },
            TargetCheck {
                target: "hub CPU per query <= 3 x echo CPU per call".into(),
                actual: match self.cpu_to_echo {
                    Some(ratio) => format!("{ratio:.1} x"),
                    None => "not measured".into(),
                },
                met: self.cpu_to_echo.is_some_and(|r| r <= 3.0),
                applies: true,
            },
            TargetCheck {
                target: "query p99 <= 10 ms at 32 clients, 1M records".into(),
                actual: format!(
                    "{:.2} ms at {} clients, {} records",
                    self.query.p99_ms, p.clients, p.records
                ),
                met: self.query.p99_ms <= 10.0,
                applies: at_1m && p.clients == 32,
            },
            TargetCheck {
                target: "ingest >= 50,000 records/s (batched, each audited)".into(),
                actual: format!("{} records/s", thousands(self.ingest.records_per_s)),
                met: self.ingest.records_per_s >= 50_000.0,
                applies: true,
            },
            TargetCheck {
                target: "hub peak RSS <= 300 MB with 1M records".into(),
                actual: format!(
                    "{:.0} MB with {} records",
                    self.hub_memory.peak_mb, p.records
                ),
                met: self.hub_memory.peak_mb <= 300.0,
                applies: at_1m,
            },
        ];
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let p = &self.params;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "kith-bench {}: {} store, {} records ({} people, {} each), {} clients on {} connections, {:.0} s after {:.0} s warm-up",
            p.started_at,
            p.store,
            thousands(p.records as f64),
            thousands(p.people as f64),
            p.records_per_person,
            p.clients,
            p.connections,
            p.duration_s,
            p.warmup_s
        );
        let _ = writeln!(
            out,
            "load average before {} / after {} ({} cores, client and hub sharing them)\n",
            p.load_before, p.load_after, p.cores
        );
        let _ = writeln!(
            out,
            "{:<34} {:>16} {:>9} {:>9} {:>9} {:>9}  notes",
            "phase", "rate", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        let row = |out: &mut String, name: &str, unit: &str, s: &Summary, note: String| {
            let _ = writeln!(
                out,
                "{:<34} {:>16} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
                name,
                format!("{} {unit}", thousands(s.per_s)),
                s.p50_ms,
                s.p95_ms,
                s.p99_ms,
                s.max_ms,
                note
            );
        };
        row(
            &mut out,
            "echo baseline (bare tonic, mTLS)",
            "/s",
            &self.echo,
            format!("{} failed", self.echo.failed),
        );
        let i = &self.ingest;
        ingest_row(&mut out, "ingest (PublishRecords)", i);
        if let Some(sp) = &self.subscriptions {
            ingest_row(
                &mut out,
                &format!(
                    "ingest, {} subscriptions",
                    thousands(sp.seed.subscriptions as f64)
                ),
                &sp.ingest,
            );
        }
        row(
            &mut out,
            "authorised queries",
            "/s",
            &self.query,
            format!(
                "{} answered with nothing disclosed, {} failed",
                self.query.uncounted, self.query.failed
            ),
        );
        let _ = writeln!(
            out,
            "\nauthorised queries / echo: {:.3}",
            self.query_to_echo
        );
        let us = |v: Option<f64>| v.map_or("not measured".to_string(), |v| format!("{v:.1} µs"));
        let _ = writeln!(
            out,
            "server CPU per call: hub {} per authorised query, echo {} per call; ratio {}",
            us(self.query.server_cpu_per_call_us),
            us(self.echo.server_cpu_per_call_us),
            self.cpu_to_echo
                .map_or("not measured".to_string(), |r| format!("{r:.1}"))
        );
        let _ = writeln!(
            out,
            "hub peak RSS: {:.1} MB after ingest, {:.1} MB at the end (resident now {:.1} MB)",
            self.hub_memory_after_ingest.peak_mb,
            self.hub_memory.peak_mb,
            self.hub_memory.current_mb
        );
        if let Some(bytes) = self.sqlite_bytes {
            let _ = writeln!(out, "SQLite database + WAL: {:.1} MB", bytes as f64 / 1e6);
        }
        if let Some(sp) = &self.subscriptions {
            let _ = writeln!(
                out,
                "\nsubscriptions: {} of {} stored before its hub started, in {:.1} s ({}/s); the same records ingested into a fresh store",
                thousands(sp.seed.subscriptions as f64),
                sp.seed.subscriber,
                sp.seed.elapsed_s,
                thousands(sp.seed.per_s)
            );
            let _ = writeln!(
                out,
                "ingest with ÷ without subscriptions: {:.3} (records/s); hub CPU per record {} with, {} without, ratio {}; {} notices stored; hub peak RSS {:.1} MB",
                sp.ingest_ratio,
                us(sp.ingest.hub_cpu_per_record_us),
                us(i.hub_cpu_per_record_us),
                sp.cpu_ratio
                    .map_or("not measured".to_string(), |r| format!("{r:.3}")),
                thousands(sp.notices_stored as f64),
                sp.hub_memory.peak_mb
            );
        }
        let _ = writeln!(out, "\n{:<54} {:<40} result", "target", "actual");
        for t in &self.targets {
            let result = match (t.met, t.applies) {
                (true, true) => "met",
                (false, true) => "MISSED",
                (true, false) => "met (reference: stated for another size)",
                (false, false) => "missed (reference: stated for another size)",
            };
            let _ = writeln!(out, "{:<54} {:<40} {result}", t.target, t.actual);
        }
        out
    }

    /// The final line: one JSON object.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }
}

/// One ingest phase's line of the table.
fn ingest_row(out: &mut String, name: &str, i: &IngestSummary) {
    let _ = writeln!(
        out,
        "{:<34} {:>16} {:>9.2} {:>9} {:>9.2} {:>9}  {} batches by {} publishers in {:.1} s; {} not accepted; hub CPU {}/record (p50/p99 per batch)",
        name,
        format!("{} rec/s", thousands(i.records_per_s)),
        i.batch_p50_ms,
        "",
        i.batch_p99_ms,
        "",
        i.batches,
        i.publishers,
        i.elapsed_s,
        i.not_accepted,
        i.hub_cpu_per_record_us
            .map_or("not measured".to_string(), |v| format!("{v:.1} µs"))
    );
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `/proc/loadavg`'s three load averages, or "unknown".
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(per_s: f64, p99_ms: f64, cpu_us: f64) -> Summary {
        Summary {
            server_cpu_per_call_us: Some(cpu_us),
            per_s,
            count: 10,
            uncounted: 0,
            failed: 0,
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms,
            max_ms: 9.0,
        }
    }

    fn report(records: u64) -> Report {
        let mut r = Report {
            params: Params {
                started_at: "2026-11-27T03:00:00Z".into(),
                store: "sqlite".into(),
                records,
                records_per_person: 2,
                people: records / 2,
                clients: 32,
                connections: 4,
                duration_s: 10.0,
                warmup_s: 2.0,
                publishers: 4,
                batch_size: 1000,
                quick: false,
                cores: 2,
                load_before: "1.00 0.50 0.20".into(),
                load_after: "2.00 1.00 0.40".into(),
            },
            echo: summary(40_000.0, 3.0, 15.0),
            ingest: IngestSummary {
                records,
                accepted: records,
                not_accepted: 0,
                batches: records / 1000,
                publishers: 4,
                elapsed_s: 20.0,
                records_per_s: 60_000.0,
                batch_p50_ms: 50.0,
                batch_p99_ms: 90.0,
                hub_cpu_per_record_us: Some(40.0),
            },
            query: summary(10_000.0, 12.5, 240.0),
            query_to_echo: 0.25,
            cpu_to_echo: Some(16.0),
            hub_memory_after_ingest: Memory {
                peak_mb: 100.0,
                current_mb: 90.0,
            },
            hub_memory: Memory {
                peak_mb: 120.0,
                current_mb: 110.0,
            },
            sqlite_bytes: Some(2_000_000),
            subscriptions: None,
            targets: vec![],
        };
        r.check_targets();
        r
    }

    #[test]
    fn targets_are_judged_and_scoped() {
        let r = report(1_000_000);
        let met: Vec<(bool, bool)> = r.targets.iter().map(|t| (t.met, t.applies)).collect();
        assert_eq!(
            met,
            [
                (false, true),
                (false, true),
                (false, true),
                (true, true),
                (true, true)
            ]
        );
        let small = report(100_000);
        assert!(!small.targets[2].applies && !small.targets[4].applies);
        let mut unmeasured = report(100_000);
        unmeasured.cpu_to_echo = None;
        unmeasured.check_targets();
        assert_eq!(unmeasured.targets[1].actual, "not measured");
        assert!(
            !unmeasured.targets[1].met,
            "an unmeasured target is not met"
        );
    }

    #[test]
    fn table_and_json_line_carry_the_figures() {
        let r = report(1_000_000);
        let table = r.table();
        assert!(table.contains("40,000 /s"), "{table}");
        assert!(table.contains("60,000 rec/s"), "{table}");
        assert!(table.contains("MISSED"), "{table}");
        assert!(
            table.contains("hub 240.0 µs per authorised query, echo 15.0 µs per call; ratio 16.0"),
            "{table}"
        );
        let line = r.json_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["params"]["records"], 1_000_000);
        assert_eq!(v["query"]["p99_ms"], 12.5);
        assert_eq!(v["targets"][3]["met"], true);
        assert_eq!(v["cpu_to_echo"], 16.0);
        assert_eq!(v["query"]["server_cpu_per_call_us"], 240.0);
    }

    #[test]
    fn the_subscriptions_phase_is_compared_with_ingest_without() {
        let mut r = report(1_000_000);
        assert!(!r.table().contains("subscriptions"));
        let with = IngestSummary {
            records_per_s: 45_000.0,
            hub_cpu_per_record_us: Some(50.0),
            ..r.ingest.clone()
        };
        let seed = SeedSummary {
            subscriptions: 100_000,
            subscriber: "R0A".into(),
            elapsed_s: 25.0,
            per_s: 4_000.0,
        };
        let memory = r.hub_memory;
        r.subscriptions = Some(SubscriptionsPhase::new(
            seed, with, &r.ingest, 30_000, memory,
        ));
        let sp = r.subscriptions.as_ref().unwrap();
        assert_eq!(sp.ingest_ratio, 0.75);
        assert_eq!(sp.cpu_ratio, Some(1.25));
        let table = r.table();
        assert!(table.contains("ingest, 100,000 subscriptions"), "{table}");
        assert!(table.contains("45,000 rec/s"), "{table}");
        assert!(
            table.contains("ingest with ÷ without subscriptions: 0.750"),
            "{table}"
        );
        assert!(
            table.contains("50.0 µs with, 40.0 µs without, ratio 1.250"),
            "{table}"
        );
        let v: serde_json::Value = serde_json::from_str(&r.json_line()).unwrap();
        assert_eq!(v["subscriptions"]["ingest_ratio"], 0.75);
        assert_eq!(v["subscriptions"]["seed"]["subscriptions"], 100_000);
        assert_eq!(v["subscriptions"]["notices_stored"], 30_000);
        assert_eq!(v["ingest"]["hub_cpu_per_record_us"], 40.0);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }
}
