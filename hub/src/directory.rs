//! The federation directory: which authorities belong, and what they are.
//!
//! A valid certificate proves who is calling; membership decides whether
//! they may call at all. The directory also gives the policy engine each
//! authority's kind (council, NHS trust, police, fire, ambulance) and
//! jurisdiction, which sharing agreements are written against.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One member authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// ODS or GSS code, as in the certificate's URI SAN.
    pub code: String,
    /// Name for people, e.g. "Manchester City Council".
    pub name: String,
    /// council, nhs_trust, police, fire or ambulance.
    pub kind: String,
    /// england, wales, scotland or northern_ireland.
    pub jurisdiction: String,
}

#[derive(Debug, Clone, Default)]
pub struct Directory {
    members: HashMap<String, Member>,
}

impl Directory {
    pub fn new(members: impl IntoIterator<Item = Member>) -> Self {
        Self {
            members: members.into_iter().map(|m| (m.code.clone(), m)).collect(),
        }
    }

    pub fn member(&self, code: &str) -> Option<&Member> {
        self.members.get(code)
    }

    /// The member's name, or the code itself when it is not a member.
    pub fn name_of(&self, code: &str) -> String {
        self.member(code)
            .map_or_else(|| code.to_string(), |m| m.name.clone())
    }
}
