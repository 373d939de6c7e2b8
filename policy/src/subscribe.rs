//! Who may subscribe for a person: [`PolicySet::may_subscribe`].
//!
//! One action, `subscribe`, with the acting user (`Kith::User`) as
//! principal, the subscription asked for (`Kith::Subscription`, whose
//! `subscriber` is the user's authority) as resource, and a context with
//! the purpose, the time and `holds_relationship`: whether the subscriber
//! authority holds a current relationship record of its own for the person.
//! The hub computes that fact from its store; the decision is Cedar's. Only
//! general policies (without `@agreement`) decide. Any error (entities or a
//! request that cannot be built, a policy that errs, a schema without the
//! action) refuses: subscribing fails closed.

use std::collections::{HashMap, HashSet};

use cedar_policy::RestrictedExpression;
use cedar_policy::{Context, Decision as CedarDecision, Entities, Entity, EntityUid};

use crate::decide::{evaluation_errors, reasons, sorted};
use crate::entities::{Names, RequesterEntities};
use crate::input::Requester;
use crate::policy_set::PolicySet;

/// The outcome of [`PolicySet::may_subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeDecision {
    pub allowed: bool,
    /// Ids of the policies that permitted it (empty when refused).
    pub permitting: Vec<String>,
    /// Ids of the forbids that applied; an error is listed as
    /// `error:<policy id>` (or `error:request`).
    pub forbidding: Vec<String>,
    /// Plain words for the subscriber and the audit entry.
    pub reason: String,
}

/// The uid of the subscription asked for by `authority`.
pub(crate) fn subscription_uid(names: &Names, authority: &str) -> EntityUid {
    names.subscription(&format!("{authority}/new"))
}

/// The context of a subscribe request.
pub(crate) fn subscribe_context(
    purpose: &str,
    now: i64,
    holds_relationship: bool,
) -> Result<Context, String> {
    Context::from_pairs([
        (
            "purpose".to_string(),
            RestrictedExpression::new_string(purpose.to_string()),
        ),
        ("now".to_string(), RestrictedExpression::new_long(now)),
        (
            "holds_relationship".to_string(),
            RestrictedExpression::new_bool(holds_relationship),
        ),
    ])
    .map_err(|e| e.to_string())
}

/// The entity store of a subscribe request: the subscriber's authority and
/// user, and the subscription.
pub(crate) fn subscribe_entities(
    names: &Names,
    requester: &Requester,
    schema: Option<&cedar_policy::Schema>,
) -> Result<Entities, String> {
    let (authority, user) = RequesterEntities::new(names, requester).parts()?;
    let attrs = HashMap::from([(
        "subscriber".to_string(),
        RestrictedExpression::new_entity_uid(names.authority(&requester.authority_code)),
    )]);
    let subscription = Entity::new(
        subscription_uid(names, &requester.authority_code),
        attrs,
        HashSet::new(),
    )
    .map_err(|e| e.to_string())?;
    Entities::from_entities([authority, user, subscription], schema).map_err(|e| e.to_string())
}

impl PolicySet {
    /// Whether `requester` may subscribe, for `purpose` at `now` (epoch
    /// seconds), given whether its authority holds a current relationship
    /// record of its own for the person. Fails closed: anything that
    /// cannot be evaluated refuses.
    pub fn may_subscribe(
        &self,
        requester: &Requester,
        purpose: &str,
        now: i64,
        holds_relationship: bool,
    ) -> SubscribeDecision {
        let fail = |why: &str, forbidding: Vec<String>| SubscribeDecision {
            allowed: false,
            permitting: Vec::new(),
            forbidding,
            reason: format!(
                "no subscription: the subscription policy could not be evaluated ({why}); report it to your Kith administrator"
            ),
        };
        let request_error = || vec!["error:request".to_string()];
        if !self.subscribe_defined {
            return fail(
                "the policy set's schema declares no subscribe action",
                request_error(),
            );
        }
        let entities = match subscribe_entities(&self.names, requester, None) {
            Ok(e) => e,
            Err(e) => return fail(&e, request_error()),
        };
        let ctx = match subscribe_context(purpose, now, holds_relationship) {
            Ok(c) => c,
            Err(e) => return fail(&e, request_error()),
        };
        let resp = match self.evaluate(
            &self.names.user(requester),
            &self.names.subscribe,
            &subscription_uid(&self.names, &requester.authority_code),
            &ctx,
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
            return SubscribeDecision {
                allowed: true,
                permitting: reasons,
                forbidding: Vec::new(),
                reason: format!("{} may subscribe for {purpose}", requester.authority_code),
            };
        }
        let reason = reasons
            .iter()
            .find_map(|id| self.meta.get(id).and_then(|m| m.advice.clone()))
            .unwrap_or_else(|| {
                format!(
                    "no subscription: the role {} at {} is not given subscriptions for {purpose}",
                    requester.role, requester.authority_code
                )
            });
        SubscribeDecision {
            allowed: false,
            permitting: Vec::new(),
            forbidding: reasons,
            reason,
        }
    }
}
