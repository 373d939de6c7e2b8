//! The Kith role codes staff may hold (`policies/vocabulary.json`), and
//! which console pages each role reaches.
//!
//! The list is the policy set's own: the agent's policy copy when the
//! config names one, else the default set built into the binary. A role
//! outside it would be refused by every agreement at the hub, so the
//! console refuses it at sign-in (and `kith-agent user add` refuses it).
//!
//! One code is the console's own: [`OPERATOR_ROLE`]. The node operator
//! (the authority's IT) watches delivery on the operator page; they never
//! act at the hub as a member of staff, so no policy names them and the
//! vocabulary has no such role. The console accepts it beside the policy
//! set's codes, and gives it the operator page only.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

/// The default policy set's vocabulary, as shipped.
const DEFAULT_VOCABULARY: &str = include_str!("../../../policies/vocabulary.json");

/// The console-only role of the node operator: the operator page, nothing
/// the hub decides on.
pub const OPERATOR_ROLE: &str = "operator";

#[derive(Deserialize)]
struct Vocabulary {
    roles: BTreeSet<String>,
    #[serde(default)]
    categories: BTreeSet<String>,
}

/// The role codes in force, and (for the subscriptions page's checkboxes)
/// the same policy set's categories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    codes: BTreeSet<String>,
    categories: BTreeSet<String>,
}

/// What a role does in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Searches people and may break glass.
    CaseWork,
    /// Reviews the audit log (`auditor`, `federation_auditor`).
    Audit,
    /// Watches the agent's delivery ([`OPERATOR_ROLE`]).
    Operate,
}

impl Roles {
    /// The roles of the default policy set.
    pub fn default_set() -> Self {
        Self::parse(DEFAULT_VOCABULARY).expect("the shipped vocabulary parses")
    }

    /// The roles of the policy set in `dir` (its `vocabulary.json`).
    pub fn from_policy_dir(dir: &Path) -> Result<Self, String> {
        let path = dir.join("vocabulary.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let v: Vocabulary = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Self {
            codes: v.roles,
            categories: v.categories,
        })
    }

    /// The policy set's categories (a subscription may name them; the hub
    /// refuses any other).
    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(String::as_str)
    }

    /// Whether `role` is a policy-set code or the console's own
    /// [`OPERATOR_ROLE`].
    pub fn contains(&self, role: &str) -> bool {
        role == OPERATOR_ROLE || self.codes.contains(role)
    }

    /// The policy set's codes, then [`OPERATOR_ROLE`].
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.codes
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(OPERATOR_ROLE))
    }

    /// Checks a role code, naming the allowed ones when it is not one.
    pub fn check(&self, role: &str) -> Result<(), String> {
        if self.contains(role) {
            Ok(())
        } else {
            Err(format!(
                "{role:?} is not a Kith role code; one of: {}",
                self.codes().collect::<Vec<_>>().join(", ")
            ))
        }
    }
}

/// The console's part for a role code.
pub fn duty(role: &str) -> Duty {
    match role {
        "auditor" | "federation_auditor" => Duty::Audit,
        OPERATOR_ROLE => Duty::Operate,
        _ => Duty::CaseWork,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_roles_are_the_vocabulary() {
        let roles = Roles::default_set();
        assert!(roles.contains("social_worker"));
        assert!(roles.contains("auditor"));
        assert!(!roles.contains("admin"));
        let err = roles.check("admin").unwrap_err();
        assert!(err.contains("paramedic"), "{err}");
        assert_eq!(duty("federation_auditor"), Duty::Audit);
        assert_eq!(duty("paramedic"), Duty::CaseWork);
        // The operator is the console's own role, not the policy set's.
        assert!(roles.contains(OPERATOR_ROLE));
        assert!(roles.check("operator").is_ok());
        assert!(roles.codes().any(|c| c == "operator"));
        assert_eq!(duty(OPERATOR_ROLE), Duty::Operate);
        let categories: Vec<&str> = roles.categories().collect();
        assert!(categories.contains(&"children"), "{categories:?}");
        assert!(!categories.contains(&"social_worker"), "{categories:?}");
    }
}
