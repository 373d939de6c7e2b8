//! Kith's domain, shared by the hub and the node agent.
//!
//! A relationship record enters Kith twice: from a source file at the agent,
//! and off the wire at the hub. Both ends validate it with the same code, so
//! an agent never queues what the hub will refuse, and the hub never trusts
//! an agent to have checked. The wire types live in `kith-proto`; [`wire`]
//! converts between them and the domain, and that conversion *is* the
//! validation: a [`Record`] that exists is a valid one.

pub mod acting_user;
pub mod audit;
pub mod codes;
pub mod content_hash;
pub mod directive;
pub mod enrolment;
pub mod error;
pub mod identity;
pub mod level;
pub mod matching;
pub mod nhs_number;
pub mod pki;
pub mod query;
pub mod record;
pub mod subscription;
pub mod tls;
pub mod validate;
pub mod wire;

pub use acting_user::ActingUser;
pub use codes::{
    Article6Basis, Article9Condition, BreakGlassReason, DirectiveKind, DirectiveStatus,
    NotificationKind, Purpose, RelationshipType, Residency, ReviewOutcome, Sensitivity,
    SubscriptionChange, WithdrawReason,
};
pub use directive::Directive;
pub use error::FieldError;
pub use identity::AuthorityCode;
pub use nhs_number::NhsNumber;
pub use record::{
    Contact, Demographics, LawfulBasis, LocalId, Period, Provenance, Record, Subject,
};
