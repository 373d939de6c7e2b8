//! `kith-bench`: the end-to-end benchmark. It drives a real `kith-hub`
//! process over mutual-TLS gRPC and measures, in one run, a bare tonic echo
//! baseline, batched ingest, authorised queries and the hub's peak memory,
//! and, when asked, ingest again beside current subscriptions.
//!
//! | module | what it is for |
//! |---|---|
//! | [`run`] | the phases, in order |
//! | [`federation`] | PKI, policies, store and the hub process |
//! | [`echo`] | the baseline server and client |
//! | [`generator`] | synthetic records, streamed in batches |
//! | [`ingest`] | concurrent batched publishing |
//! | [`subscriptions`] | current subscriptions stored before a hub starts (#17.3) |
//! | [`load`] | the closed-loop driver and latency histograms |
//! | [`rss`] | the hub's peak resident memory |
//! | [`cpu`] | a process's CPU time, for CPU per call |
//! | [`report`] | the table, the targets and the JSON line |
//! | [`process`] | child processes and ports |
//! | [`args`] | counts and durations on the command line |

pub mod args;
pub mod cpu;
pub mod echo;
pub mod federation;
pub mod generator;
pub mod ingest;
pub mod load;
pub mod process;
pub mod report;
pub mod rss;
pub mod run;
pub mod subscriptions;
