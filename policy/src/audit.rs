//! Who may read the audit log: [`PolicySet::audit_scope`].
//!
//! Two actions, both with the requester (`Kith::User`) as principal and an
//! empty context:
//!
//! - `audit_federation`, resource `Kith::Federation::"kith"`: every entry;
//! - `audit_own_authority`, resource the requester's own `Kith::Authority`:
//!   the entries about that authority's users and records.
//!
//! As for data location, only general policies (without `@agreement`)
//! decide. The widest scope permitted applies. Any error (entities or a
//! request that cannot be built, a policy that errs for either action, a
//! schema without the audit actions) gives [`AuditScope::None`]: audit
//! access fails closed.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use cedar_policy::{Context, Decision as CedarDecision, Entities, Entity};

use crate::decide::{evaluation_errors, reasons, sorted};
use crate::entities::{Names, RequesterEntities};
use crate::input::Requester;
use crate::policy_set::PolicySet;

/// The id of the one `Kith::Federation` entity.
pub(crate) const FEDERATION_ID: &str = "kith";

/// How much of the audit log a requester may read, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuditScope {
    /// Nothing.
    None,
    /// The entries about the requester's own authority: its users' acts and
    /// the decisions about its records.
    OwnAuthority,
    /// Every entry, for every authority.
    Federation,
}

impl AuditScope {
    /// The lower-case word used in test cases (`expect_scope`) and audit
    /// entries: `none`, `own_authority`, `federation`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditScope::None => "none",
            AuditScope::OwnAuthority => "own_authority",
            AuditScope::Federation => "federation",
        }
    }
}

impl fmt::Display for AuditScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(AuditScope::None),
            "own_authority" => Ok(AuditScope::OwnAuthority),
            "federation" => Ok(AuditScope::Federation),
            other => Err(format!(
                "unknown audit scope {other:?} (expected federation, own_authority or none)"
            )),
        }
    }
}

/// The outcome of [`PolicySet::audit_scope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAccess {
    pub scope: AuditScope,
    /// Ids of the policies that permitted `scope` (empty for `None`).
    pub permitting: Vec<String>,
    /// Ids of the forbid policies that kept the scope below a wider one. An
    /// error is listed as `error:<policy id>` (or `error:request`) and
    /// makes the scope `None`.
    pub forbidding: Vec<String>,
    /// Plain words for the requester and the audit entry; never names the
    /// rule that refuses.
    pub reason: String,
}

/// The entity store of an audit request: the requester's authority and
/// user, and the federation.
pub(crate) fn audit_entities(
    names: &Names,
    requester: &Requester,
    schema: Option<&cedar_policy::Schema>,
) -> Result<Entities, String> {
    let (authority, user) = RequesterEntities::new(names, requester).parts()?;
    let federation = Entity::new_no_attrs(names.federation(FEDERATION_ID), HashSet::new());
    Entities::from_entities([authority, user, federation], schema).map_err(|e| e.to_string())
}

impl PolicySet {
    /// How much of the audit log `requester` may read: the widest scope the
    /// policies permit (`audit_federation`, else `audit_own_authority` about
    /// the requester's own authority), else [`AuditScope::None`]. Both are
    /// always evaluated; if anything cannot be evaluated the scope is
    /// `None` (fails closed).
    pub fn audit_scope(&self, requester: &Requester) -> AuditAccess {
        let fail = |forbidding: Vec<String>, why: &str| AuditAccess {
            scope: AuditScope::None,
            permitting: Vec::new(),
            forbidding,
            reason: format!(
                "no audit access: the audit policy could not be evaluated ({why}); report it to your Kith administrator"
            ),
        };
        let request_error = || vec!["error:request".to_string()];
        if !self.audit_defined {
            return fail(
                request_error(),
                "the policy set's schema declares no audit actions",
            );
        }
        let entities = match audit_entities(&self.names, requester, None) {
            Ok(e) => e,
            Err(e) => return fail(request_error(), &e),
        };
        let principal = self.names.user(requester);
        let resources = [
            self.names.federation(FEDERATION_ID),
            self.names.authority(&requester.authority_code),
        ];
        let scopes = [AuditScope::Federation, AuditScope::OwnAuthority];
        let mut errors = Vec::new();
        // Per scope, widest first: (allowed, satisfied permits or forbids).
        let mut outcomes = Vec::with_capacity(2);
        for (action, resource) in self.names.audit.iter().zip(&resources) {
            let resp = match self.evaluate(
                &principal,
                action,
                resource,
                &Context::empty(),
                &self.audit,
                &entities,
            ) {
                Ok(r) => r,
                Err(()) => return fail(request_error(), "the request could not be built"),
            };
            errors.extend(evaluation_errors(&resp));
            outcomes.push((resp.decision() == CedarDecision::Allow, reasons(&resp)));
        }
        if !errors.is_empty() {
            return fail(sorted(errors), "a rule failed to evaluate");
        }
        let mut forbidding = Vec::new();
        for (scope, (allowed, reasons)) in scopes.into_iter().zip(outcomes) {
            if allowed {
                let reason = match scope {
                    AuditScope::Federation => {
                        "audit access to every entry, for every authority (federation audit)"
                            .to_string()
                    }
                    _ => format!(
                        "audit access to the entries about {}'s own users and records",
                        requester.authority_code
                    ),
                };
                return AuditAccess {
                    scope,
                    permitting: sorted(reasons),
                    forbidding: sorted(forbidding),
                    reason,
                };
            }
            forbidding.extend(reasons);
        }
        let forbidding = sorted(forbidding);
        let reason = forbidding
            .iter()
            .find_map(|id| self.meta.get(id).and_then(|m| m.advice.clone()))
            .unwrap_or_else(|| {
                format!(
                    "no audit access: the role {} at a {} is not given access to the audit log",
                    requester.role, requester.authority_kind
                )
            });
        AuditAccess {
            scope: AuditScope::None,
            permitting: Vec::new(),
            forbidding,
            reason,
        }
    }
}
