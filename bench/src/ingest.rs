//! The ingest phase: the generator's batches through `PublishRecords`, by
//! several concurrent publishers, each batch sent on a connection
//! authenticated as the batch's custodian (the hub lets an authority
//! publish only its own records).
//!
//! The generator runs on its own thread and hands batches over a small
//! bounded queue, so it stays a few batches ahead and never holds more.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kith_core::tls::TlsFiles;
use kith_proto::v1 as pb;
use pb::record_service_client::RecordServiceClient;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};
use tonic::transport::Channel;

use crate::generator::{Batch, Batches, CUSTODIANS};
use crate::load::histogram;

/// What the ingest phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    pub records: u64,
    pub accepted: u64,
    pub not_accepted: u64,
    pub batches: u64,
    pub publishers: usize,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    pub batch_p50_ms: f64,
    pub batch_p99_ms: f64,
    /// The hub's CPU time (user + system, all threads) over the phase,
    /// per record published; `None` if it could not be read.
    pub hub_cpu_per_record_us: Option<f64>,
}

#[derive(Default)]
struct Progress {
    records: AtomicU64,
    accepted: AtomicU64,
}

/// Publishes every batch of `batches` to the hub at `addr`, whose process
/// is `hub_pid` (for its CPU time over the phase).
pub async fn run(
    addr: SocketAddr,
    hub_pid: u32,
    tls_of: impl Fn(&str) -> TlsFiles,
    batches: Batches,
    publishers: usize,
    total: u64,
    quiet: bool,
) -> Result<IngestSummary> {
    let publishers = publishers.max(1);
    let (tx, rx) = mpsc::channel::<Batch>(2 * publishers);
    let generator = std::thread::spawn(move || {
        for batch in batches {
            if tx.blocking_send(batch).is_err() {
                break; // the publishers stopped on an error
            }
        }
    });
    let rx = Arc::new(Mutex::new(rx));
    let progress = Arc::new(Progress::default());

    let mut tasks = Vec::new();
    for _ in 0..publishers {
        let mut clients: HashMap<&'static str, RecordServiceClient<Channel>> = HashMap::new();
        for (code, _) in CUSTODIANS {
            let channel = kith_tests::channel(addr, &tls_of(code))
                .await
                .with_context(|| format!("connecting to the hub as {code}"))?;
            clients.insert(code, RecordServiceClient::new(channel));
        }
        let rx = rx.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut first_refusal: Option<String> = None;
            loop {
                let Some(batch) = rx.lock().await.recv().await else {
                    break;
                };
                let n = batch.records.len() as u64;
                let client = clients
                    .get_mut(batch.custodian)
                    .expect("a client per custodian");
                let began = Instant::now();
                let answer = client
                    .publish_records(pb::PublishRecordsRequest {
                        records: batch.records,
                    })
                    .await
                    .with_context(|| format!("PublishRecords as {}", batch.custodian))?
                    .into_inner();
                latency.saturating_record(began.elapsed().as_micros().max(1) as u64);
                let accepted = answer
                    .results
                    .iter()
                    .filter(|r| r.outcome == pb::PublishOutcome::Accepted as i32)
                    .count() as u64;
                if accepted < n && first_refusal.is_none() {
                    first_refusal = answer
                        .results
                        .iter()
                        .find(|r| r.outcome != pb::PublishOutcome::Accepted as i32)
                        .map(|r| format!("{} {:?}: {:?}", r.record_id, r.outcome(), r.errors));
                }
                progress.records.fetch_add(n, Ordering::Relaxed);
                progress.accepted.fetch_add(accepted, Ordering::Relaxed);
            }
            anyhow::Ok((latency, first_refusal))
        }));
    }

    let cpu_before = crate::cpu::of_process(hub_pid).ok();
    let started = Instant::now();
    let reporter = (!quiet).then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = progress.records.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "  ingest: {done}/{total} records ({:.0}%), {:.0} records/s",
                    100.0 * done as f64 / total.max(1) as f64,
                    done as f64 / secs
                );
            }
        })
    });

    let mut latency = histogram();
    let mut refusal = None;
    let mut failure = None;
    for task in tasks {
        match task.await.expect("a publisher panicked") {
            Ok((own, first)) => {
                latency.add(&own).expect("same bounds");
                refusal = refusal.or(first);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = crate::cpu::of_process(hub_pid).ok();
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    drop(rx);
    let _ = generator.join();
    if let Some(e) = failure {
        return Err(e);
    }
    let records = progress.records.load(Ordering::Relaxed);
    let accepted = progress.accepted.load(Ordering::Relaxed);
    if let Some(refusal) = refusal {
        eprintln!("  ingest: some records were not accepted, first: {refusal}");
    }
    if records != total {
        bail!("published {records} records of {total}");
    }
    Ok(IngestSummary {
        records,
        accepted,
        not_accepted: records - accepted,
        batches: latency.len(),
        publishers,
        elapsed_s: elapsed.as_secs_f64(),
        records_per_s: records as f64 / elapsed.as_secs_f64(),
        batch_p50_ms: latency.value_at_quantile(0.5) as f64 / 1_000.0,
        batch_p99_ms: latency.value_at_quantile(0.99) as f64 / 1_000.0,
        hub_cpu_per_record_us: cpu_before
            .zip(cpu_after)
            .filter(|_| records > 0)
            .map(|(b, a)| a.saturating_sub(b).as_secs_f64() * 1e6 / records as f64),
    })
}
