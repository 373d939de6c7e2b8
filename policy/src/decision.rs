//! Decision outputs: the disclosure level for a record, and the data-location
//! answer for the hub.

pub use kith_core::level::Level;

/// The outcome for one record and one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    /// Ids of the policies that permitted `level` (empty when hidden).
    pub permitting: Vec<String>,
    /// Ids of the forbid policies that kept the level below what was asked
    /// (for audit; never shown to the case worker). An evaluation error is
    /// listed as `error:<policy id>` and counts as a deny.
    pub forbidding: Vec<String>,
    /// Actionable text for the case worker; never says what withholds.
    pub reason: String,
}

/// The data-location outcome for one record at a hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldDecision {
    /// The hub may store the record's detail; otherwise index and summary only.
    pub allowed: bool,
    pub permitting: Vec<String>,
    pub forbidding: Vec<String>,
}
