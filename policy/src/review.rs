//! Who may review a break-glass access: [`PolicySet::may_review_break_glass`].
//!
//! One action, `review_break_glass`, with the reviewer (`Kith::User`) as
//! principal, the access reviewed (`Kith::BreakGlassAccess`, with the
//! authority whose user broke glass and that user, the accessor) as
//! resource, and an empty context. Only general policies (without
//! `@agreement`) decide. The default set permits an auditor of the
//! accessor's authority and forbids the accessor (separation of duties).
//! Any error (entities or a request that cannot be built, a policy that
//! errs, a schema without the action) refuses: review fails closed.

use std::collections::HashSet;

use cedar_policy::{Context, Decision as CedarDecision, Entities, Entity, EntityUid};

use crate::decide::{evaluation_errors, reasons, sorted};
use crate::entities::{Names, RequesterEntities};
use crate::input::Requester;
use crate::policy_set::PolicySet;

/// The outcome of [`PolicySet::may_review_break_glass`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewDecision {
    pub allowed: bool,
    /// Ids of the policies that permitted it (empty when refused).
    pub permitting: Vec<String>,
    /// Ids of the forbids that applied; an error is listed as
    /// `error:<policy id>` (or `error:request`).
    pub forbidding: Vec<String>,
    /// Plain words for the reviewer and the audit entry.
    pub reason: String,
}

/// The uid of one access: `<authority>/<query id>`.
pub(crate) fn access_uid(names: &Names, authority: &str, query_id: &str) -> EntityUid {
    names.break_glass_access(&format!("{authority}/{query_id}"))
}

/// The entity store of a review request: the reviewer's authority and user,
/// the accessor's authority and user (when they differ) and the access.
pub(crate) fn review_entities(
    names: &Names,
    reviewer: &Requester,
    accessor: &Requester,
    schema: Option<&cedar_policy::Schema>,
) -> Result<Entities, String> {
    let (authority, user) = RequesterEntities::new(names, reviewer).parts()?;
    let mut list = vec![authority, user];
    let reviewer_uid = names.user(reviewer);
    let accessor_uid = names.user(accessor);
    if accessor.authority_code != reviewer.authority_code {
        let (a, u) = RequesterEntities::new(names, accessor).parts()?;
        list.extend([a, u]);
    } else if accessor_uid != reviewer_uid {
        let (_, u) = RequesterEntities::new(names, accessor).parts()?;
        list.push(u);
    }
    let attrs = std::collections::HashMap::from([
        (
            "authority".to_string(),
            cedar_policy::RestrictedExpression::new_entity_uid(
                names.authority(&accessor.authority_code),
            ),
        ),
        (
            "accessor".to_string(),
            cedar_policy::RestrictedExpression::new_entity_uid(accessor_uid),
        ),
    ]);
    let access = Entity::new(
        access_uid(names, &accessor.authority_code, "access"),
        attrs,
        HashSet::new(),
    )
    .map_err(|e| e.to_string())?;
    list.push(access);
    Entities::from_entities(list, schema).map_err(|e| e.to_string())
}

impl PolicySet {
    /// Whether `reviewer` may record the review of a break-glass access made
    /// by `accessor` (the user who broke glass, at the authority whose
    /// access it is). Fails closed: anything that cannot be evaluated
    /// refuses.
    pub fn may_review_break_glass(
        &self,
        reviewer: &Requester,
        accessor: &Requester,
    ) -> ReviewDecision {
        let fail = |why: &str, forbidding: Vec<String>| ReviewDecision {
            allowed: false,
            permitting: Vec::new(),
            forbidding,
            reason: format!(
                "no break-glass review: the review policy could not be evaluated ({why}); report it to your Kith administrator"
            ),
        };
        let request_error = || vec!["error:request".to_string()];
        if !self.review_defined {
            return fail(
                "the policy set's schema declares no review_break_glass action",
                request_error(),
            );
        }
        let entities = match review_entities(&self.names, reviewer, accessor, None) {
            Ok(e) => e,
            Err(e) => return fail(&e, request_error()),
        };
        let resp = match self.evaluate(
            &self.names.user(reviewer),
            &self.names.review,
            &access_uid(&self.names, &accessor.authority_code, "access"),
            &Context::empty(),
            &self.audit,
            &entities,
        ) {
            Ok(r) => r,
            Err(()) => return fail("the request could not be built", request_error()),
        };
        let errors = evaluation_errors(&resp);
        if !errors.is_empty() {
            return fail("a rule failed to evaluate", sorted(errors));
        }
        let reasons = sorted(reasons(&resp));
        if resp.decision() == CedarDecision::Allow {
            return ReviewDecision {
                allowed: true,
                permitting: reasons,
                forbidding: Vec::new(),
                reason: format!(
                    "{} reviews the break-glass accesses of {}'s users",
                    reviewer.user_id, accessor.authority_code
                ),
            };
        }
        // Denied: the reasons are the forbids that applied (a deny by
        // default lists none).
        let reason = reasons
            .iter()
            .find_map(|id| self.meta.get(id).and_then(|m| m.advice.clone()))
            .unwrap_or_else(|| {
                format!(
                    "no break-glass review: the role {} at {} is not given the review of {}'s break-glass accesses",
                    reviewer.role, reviewer.authority_code, accessor.authority_code
                )
            });
        ReviewDecision {
            allowed: false,
            permitting: Vec::new(),
            forbidding: reasons,
            reason,
        }
    }
}
