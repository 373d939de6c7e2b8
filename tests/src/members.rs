//! The federation every test starts with: the authorities, their codes
//! and kinds, as the hub's directory lists them.

use super::*;

/// Manchester City Council.
pub const COUNCIL_A: &str = "E08000003";
/// Salford City Council.
pub const COUNCIL_B: &str = "E08000006";
/// Manchester University NHS Foundation Trust.
pub const TRUST_C: &str = "R0A";
/// Greater Manchester Police.
pub const POLICE_D: &str = "GMP";
/// The federation's oversight body (authority kind `federation`), whose
/// `federation_auditor` reads every audit entry.
pub const OVERSIGHT: &str = "KITH-OVERSIGHT";
/// An authority with a valid certificate that is not in the directory.
pub const OUTSIDER: &str = "X99";

/// The federation members every test hub knows.
pub fn members() -> Vec<Member> {
    let m = |code: &str, name: &str, kind: &str| Member {
        code: code.into(),
        name: name.into(),
        kind: kind.into(),
        jurisdiction: "england".into(),
    };
    vec![
        m(COUNCIL_A, "Manchester City Council", "council"),
        m(COUNCIL_B, "Salford City Council", "council"),
        m(
            TRUST_C,
            "Manchester University NHS Foundation Trust",
            "nhs_trust",
        ),
        m(POLICE_D, "Greater Manchester Police", "police"),
        m(OVERSIGHT, "Kith Federation Oversight Board", "federation"),
    ]
}
