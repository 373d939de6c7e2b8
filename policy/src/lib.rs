//! Kith policy engine: who may see what of a relationship record, and where a
//! record's detail may be held.
//!
//! The policy set is data (a Cedar schema, Cedar policies, sharing agreements
//! and test cases in a `policies/` folder, edited by an information
//! governance lead). [`PolicySet::load`] loads and strictly validates it,
//! whole or not at all; [`PolicySet::decide`] gives the disclosure
//! [`Level`] for one record and one request, and [`PolicySet::decider`]
//! gives a [`Decider`] that decides the many records of one query (one
//! requester, purpose and time) more cheaply; [`PolicySet::may_hold_at_hub`]
//! answers the data-location question; [`PolicySet::audit_scope`] says how
//! much of the audit log a requester may read;
//! [`PolicySet::may_review_break_glass`] who may review a break-glass access
//! (separation of duties); [`PolicySet::may_subscribe`] who may subscribe
//! for a person; [`check`] runs the set's own
//! test cases.
//!
//! The input types here deliberately depend on no other Kith crate: the hub
//! maps its domain types onto [`Requester`] and [`RecordFacts`].

mod agreement;
mod audit;
mod batch;
mod check;
mod compile;
mod decide;
mod decision;
mod entities;
mod error;
mod input;
mod policy_set;
mod review;
mod subscribe;
mod time;
mod vocabulary;

pub use audit::{AuditAccess, AuditScope};
pub use check::{CaseFailure, CheckReport, check};
pub use decide::Decider;
pub use decision::{Decision, HoldDecision, Level};
pub use error::{PolicyError, Problem};
pub use input::{RecordFacts, Requester};
pub use policy_set::PolicySet;
pub use review::ReviewDecision;
pub use subscribe::SubscribeDecision;
pub use time::parse_time;
