//! `kith-demo`: a whole federation on loopback in one command, and the
//! synthetic people and records it publishes.
//!
//! This crate sits above both the hub and the agent: it starts a real
//! `kith-hub` and three real `kith-agent`s in one process and talks to them
//! as their operators and case workers would. It exists so that neither
//! the server nor its client depends on the other: `kith-hub` serves,
//! `kith-agent` calls, and only this crate (and the tests) uses both.
//!
//! | module | what it holds |
//! |---|---|
//! | [`log_file`] | the demo's log lines, into a file in its folder instead of between the story's lines |
//! | [`run`] | the demo's story: PKI, configs, hub, agents, drops, queries, what each saw |
//! | [`subscription`] | the subscription step: the trust subscribes to the child, a council starts a plan, the trust's agent is told |
//! | [`synthetic`] | seeded, plausible people and relationship records (NHS numbers from the 999 test range), shared with `kith-bench` and the tests |

pub mod log_file;
pub mod run;
pub mod subscription;
pub mod synthetic;

pub use run::run;
