//! Audit entries as the hub writes them: the shape is core's
//! ([`kith_core::audit`], read back by the agent too); what is the hub's
//! alone is how a record key is repeated in one.

pub use kith_core::audit::{
    AuditEntry, AuditKind, AuditedMatch, AuditedRecord, BreakGlassFlag, concerns,
};

/// A record key as an audit entry (and the answer beside it) repeats it:
/// whole when it is a valid identifier of at most `max` characters, so
/// the agent can match its result; otherwise a short quoted prefix
/// ([`kith_core::error::quote`]), so a rejected key never makes an entry
/// grow with it.
pub(crate) fn key_part(value: &str, max: usize) -> String {
    let mut errors = Vec::new();
    kith_core::validate::check_identifier("", value, max, &mut errors);
    if errors.is_empty() {
        value.to_string()
    } else {
        kith_core::error::quote(value)
    }
}
