//! Deciding one record for one request: the highest of detail, summary and
//! acknowledge (withheld) that the policy set permits, else hidden; and the
//! data-location decision. Any evaluation error counts as a deny.
//!
//! Semantics: for each action, the general policies are evaluated without an
//! agreement, and each candidate agreement (see `agreement.rs`) with
//! `context.agreement` set to it against the general forbids plus its own
//! policies. An action is permitted if any of these evaluations allows it;
//! an evaluation allows when a permit is satisfied and no forbid is, and no
//! policy errs.
//!
//! Mechanics: those evaluations share most of their policies, so the engine
//! gets per-policy results and combines them per action exactly as one
//! Cedar evaluation of the combined set would. It gets them from one
//! *batch* (see `batch.rs`: every candidate agreement specialised into one
//! request, permits flipped so that one response lists every satisfied
//! policy) where every candidate can be specialised, else from *units*
//! (see `compile.rs`) evaluated lazily, one request per agreement.

use cedar_policy::{Context, Decision as CedarDecision, Entities, EntityUid, PolicyId, Response};

use std::sync::Mutex;

use crate::batch::{ANY, Batch};
use crate::compile::{Unit, Units};
use crate::decision::{Decision, HoldDecision, Level};
use crate::entities::{
    RequesterEntities, StoreCache, cached_record_entities, hold_entities, query_context,
    record_entities,
};
use crate::input::{RecordFacts, Requester};
use crate::policy_set::PolicySet;

const LEVELS: [Level; 3] = [Level::Detail, Level::Summary, Level::Withheld];

/// Outcome of one evaluation.
enum Outcome {
    Allow(Vec<String>),
    Deny(Vec<String>),
}

/// The policies whose evaluation failed, as `error:<policy id>` (the
/// caller fails closed on any).
pub(crate) fn evaluation_errors(resp: &Response) -> Vec<String> {
    resp.diagnostics()
        .errors()
        .map(|e| match e {
            cedar_policy::AuthorizationError::PolicyEvaluationError(pe) => {
                format!("error:{}", pe.policy_id())
            }
        })
        .collect()
}

/// The ids of the policies that decided the response.
pub(crate) fn reasons(resp: &Response) -> Vec<String> {
    resp.diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect()
}

fn outcome(resp: &Response) -> Outcome {
    let errors = evaluation_errors(resp);
    let reasons = reasons(resp);
    if !errors.is_empty() {
        // Fail closed: an erroring forbid must not let a permit through.
        Outcome::Deny(errors)
    } else if resp.decision() == CedarDecision::Allow {
        Outcome::Allow(reasons)
    } else {
        Outcome::Deny(reasons)
    }
}

pub(crate) fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// What one evaluation of a unit says about each of its policies.
#[derive(Debug)]
struct UnitResult {
    /// The request could not be built (counts as `error:request`).
    request_error: bool,
    /// Policies that erred.
    errors: Vec<PolicyId>,
    /// Forbids that are satisfied.
    forbids: Vec<PolicyId>,
    /// Permits that are satisfied; `None` while a satisfied forbid hides
    /// them (Cedar then reports only the forbids).
    permits: Option<Vec<PolicyId>>,
}

/// A unit with what it is evaluated against and its cached result.
struct Part<'x> {
    unit: &'x Unit,
    ctx: &'x Context,
    action: &'x EntityUid,
    result: &'x mut Option<UnitResult>,
}

/// The lazily evaluated units of one candidate agreement.
struct Candidate {
    index: usize,
    ctx: Option<Context>,
    any: Option<UnitResult>,
    per_action: [Option<UnitResult>; 3],
}

/// A query's fixed part: one requester asking for one purpose at one time.
/// Built by [`PolicySet::decider`]; decide each record of the query with
/// [`Decider::decide`]. The requester's entities and the query context are
/// built once and reused for every record.
#[derive(Debug)]
pub struct Decider<'a> {
    set: &'a PolicySet,
    requester: &'a Requester,
    purpose: &'a str,
    now: i64,
    break_glass: bool,
    principal: EntityUid,
    entities: RequesterEntities,
    base: Result<Context, String>,
    /// The query context with each agreement met so far.
    agreement_contexts: Mutex<Vec<(usize, Context)>>,
    /// Decide through batches (see `batch.rs`) where possible.
    batch: bool,
    /// Entity stores (requester, custodian, candidate agreements) met so far.
    stores: StoreCache,
}

impl PolicySet {
    pub(crate) fn evaluate(
        &self,
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
        ctx: &Context,
        set: &cedar_policy::PolicySet,
        entities: &Entities,
    ) -> Result<Response, ()> {
        cedar_policy::Request::new(
            principal.clone(),
            action.clone(),
            resource.clone(),
            ctx.clone(),
            None,
        )
        .map(|req| self.authorizer.is_authorized(&req, set, entities))
        .map_err(|_| ())
    }

    /// A [`Decider`] for the records of one query: `requester` asking for
    /// `purpose` at `now` (seconds since the Unix epoch, UTC), with or
    /// without break glass. Deciding many records through one `Decider` is
    /// cheaper than calling [`PolicySet::decide`] for each.
    pub fn decider<'a>(
        &'a self,
        requester: &'a Requester,
        purpose: &'a str,
        now: i64,
        break_glass: bool,
    ) -> Decider<'a> {
        self.make_decider(requester, purpose, now, break_glass, true, true)
    }

    /// A [`Decider`] that never batches: every record goes through units,
    /// one request per candidate agreement. It decides exactly as
    /// [`decider`](Self::decider) (the equivalence tests check both against
    /// the reference evaluator); it is public so that `benches/decide.rs`
    /// can time the unit path on its own.
    pub fn decider_on_units<'a>(
        &'a self,
        requester: &'a Requester,
        purpose: &'a str,
        now: i64,
        break_glass: bool,
    ) -> Decider<'a> {
        self.make_decider(requester, purpose, now, break_glass, true, false)
    }

    pub(crate) fn make_decider<'a>(
        &'a self,
        requester: &'a Requester,
        purpose: &'a str,
        now: i64,
        break_glass: bool,
        shared: bool,
        batch: bool,
    ) -> Decider<'a> {
        let entities = if shared {
            RequesterEntities::shared(&self.names, requester)
        } else {
            RequesterEntities::new(&self.names, requester)
        };
        Decider {
            set: self,
            requester,
            purpose,
            now,
            break_glass,
            principal: self.names.user(requester),
            entities,
            base: query_context(purpose, now, break_glass, None),
            agreement_contexts: Mutex::new(Vec::new()),
            batch,
            stores: Mutex::new(Vec::new()),
        }
    }

    /// The disclosure level of `record` for `requester` asking for
    /// `purpose` at `now` (seconds since the Unix epoch, UTC), with or
    /// without break glass. The same as
    /// `self.decider(requester, purpose, now, break_glass).decide(record)`.
    pub fn decide(
        &self,
        requester: &Requester,
        record: &RecordFacts,
        purpose: &str,
        now: i64,
        break_glass: bool,
    ) -> Decision {
        self.make_decider(requester, purpose, now, break_glass, false, true)
            .decide(record)
    }
    /// A decision from the policy ids collected (sorted, without repeats)
    /// and the reason a case worker is given.
    fn decision(
        &self,
        level: Level,
        permitting: Vec<String>,
        forbidding: Vec<String>,
        candidates: &[usize],
        requester: &Requester,
        purpose: &str,
    ) -> Decision {
        let permitting = sorted(permitting);
        let forbidding = sorted(forbidding);
        let reason = self.reason(
            level,
            &permitting,
            &forbidding,
            candidates,
            requester,
            purpose,
        );
        Decision {
            level,
            permitting,
            forbidding,
            reason,
        }
    }

    /// Case-worker text: what was shared and under what, or what to do next.
    /// Uses only forbid `@advice`, never `@reason`, so it does not reveal
    /// what withholds a record.
    fn reason(
        &self,
        level: Level,
        permitting: &[String],
        forbidding: &[String],
        candidates: &[usize],
        requester: &Requester,
        purpose: &str,
    ) -> String {
        let mut under: Vec<&str> = Vec::new();
        for id in permitting {
            let what = match self.meta.get(id) {
                Some(m) => match (m.agreement, &m.title) {
                    (Some(i), _) => self.agreements[i].title.as_str(),
                    (None, Some(t)) => t.as_str(),
                    (None, None) => id.as_str(),
                },
                None => id.as_str(),
            };
            if !under.contains(&what) {
                under.push(what);
            }
        }
        let advice = forbidding
            .iter()
            .find_map(|id| self.meta.get(id).and_then(|m| m.advice.as_deref()));
        let under = under.join("; ");
        match level {
            Level::Detail => format!("detail shared under {under}"),
            Level::Summary => match advice {
                Some(a) => format!("summary shared under {under}; {a}"),
                None => format!(
                    "summary shared under {under}; your role is not given the detail: contact the custodian if you need more"
                ),
            },
            Level::Withheld => advice
                .unwrap_or("withheld: contact the custodian to discuss")
                .to_string(),
            Level::Hidden => {
                if forbidding.iter().any(|f| f.starts_with("error:")) {
                    "not disclosed: the policy could not be evaluated for this request (fails closed); report it to your Kith administrator".to_string()
                } else if candidates.is_empty() {
                    format!(
                        "no sharing agreement covers purpose {purpose} for {}",
                        requester.authority_kind
                    )
                } else if let Some(a) = advice {
                    a.to_string()
                } else if !forbidding.is_empty() {
                    "not disclosed under the sharing rules in force".to_string()
                } else {
                    format!(
                        "no sharing agreement gives the role {} access for purpose {purpose}",
                        requester.role
                    )
                }
            }
        }
    }

    /// Data location: may a hub in `hub_jurisdiction` store `record`'s
    /// detail? Otherwise it keeps the index and summary only.
    pub fn may_hold_at_hub(&self, record: &RecordFacts, hub_jurisdiction: &str) -> HoldDecision {
        let category = self.category_of(&record.relationship_type);
        let denied = |id: &str| HoldDecision {
            allowed: false,
            permitting: Vec::new(),
            forbidding: vec![id.to_string()],
        };
        let entities = match hold_entities(&self.names, record, category, hub_jurisdiction, None) {
            Ok(e) => e,
            Err(_) => return denied("error:request"),
        };
        let outcome = match self.evaluate(
            &self.names.hub(hub_jurisdiction),
            &self.names.hold_detail,
            &self.names.record(record),
            &Context::empty(),
            &self.hold,
            &entities,
        ) {
            Ok(resp) => outcome(&resp),
            Err(()) => Outcome::Deny(vec!["error:request".into()]),
        };
        match outcome {
            Outcome::Allow(ids) => HoldDecision {
                allowed: true,
                permitting: sorted(ids),
                forbidding: Vec::new(),
            },
            Outcome::Deny(ids) => HoldDecision {
                allowed: false,
                permitting: Vec::new(),
                forbidding: sorted(ids),
            },
        }
    }
}

impl Decider<'_> {
    /// The query context with agreement `index`, built once per query.
    fn agreement_context(&self, index: usize) -> Result<Context, String> {
        let mut cache = self
            .agreement_contexts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, c)) = cache.iter().find(|(i, _)| *i == index) {
            return Ok(c.clone());
        }
        let c = query_context(
            self.purpose,
            self.now,
            self.break_glass,
            Some(&self.set.agreements[index].uid),
        )?;
        cache.push((index, c.clone()));
        Ok(c)
    }

    /// The disclosure level of `record` for this query.
    pub fn decide(&self, record: &RecordFacts) -> Decision {
        if self.batch
            && let Some(d) = self.decide_batched(record)
        {
            return d;
        }
        self.decide_units(record)
    }
}

mod batched;
#[cfg(test)]
mod reference;
mod units;
