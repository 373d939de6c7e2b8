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

fn outcome(resp: &Response) -> Outcome {
    let errors: Vec<String> = resp
        .diagnostics()
        .errors()
        .map(|e| match e {
            cedar_policy::AuthorizationError::PolicyEvaluationError(pe) => {
                format!("error:{}", pe.policy_id())
            }
        })
        .collect();
    let reasons = resp
        .diagnostics()
        .reason()
        .map(|id| id.to_string())
        .collect();
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

    /// The decision through one batch (see `batch.rs`); `None` when the
    /// record's candidate agreements cannot be batched.
    fn decide_batched(&self, record: &RecordFacts) -> Option<Decision> {
        let set = self.set;
        let base_items = set.batch_base.as_ref()?;
        let requester = self.requester;
        let purpose = self.purpose;
        let category = set.category_of(&record.relationship_type);
        let candidates =
            set.index
                .candidates(&set.agreements, requester, record, category, purpose);
        let mut items = Vec::with_capacity(candidates.len());
        for &i in &candidates {
            items.push(set.agreement_items(i)?);
        }
        let batch = set
            .batches
            .get_or_build(&candidates, || Batch::build(base_items, &items))?;
        let fail = |what: String| Decision {
            level: Level::Hidden,
            permitting: Vec::new(),
            forbidding: vec!["error:request".into()],
            reason: format!("the request could not be evaluated ({what}); nothing is disclosed"),
        };
        let entities = match cached_record_entities(
            &set.names,
            &self.entities,
            requester,
            record,
            category,
            &candidates,
            &set.agreements,
            &self.stores,
        ) {
            Ok(e) => e,
            Err(e) => return Some(fail(e)),
        };
        let base = match &self.base {
            Ok(c) => c,
            Err(e) => return Some(fail(e.clone())),
        };
        let mut run = BatchRun {
            set,
            batch: &batch,
            principal: &self.principal,
            resource: set.names.record(record),
            ctx: base,
            entities: &entities,
            state: vec![UNKNOWN; batch.entries.len()],
            done_any: false,
            done_action: [false; 3],
            request_error: false,
        };
        let mut forbidding = Vec::new();
        for (k, level) in LEVELS.into_iter().enumerate() {
            let general = set.general_applies[k];
            let applies = |j: usize| set.agreement_applies[candidates[j]][k];
            if !general && !(0..candidates.len()).any(applies) {
                continue;
            }
            run.evaluate(k);
            let mut permitting = Vec::new();
            let mut consider = |o: Outcome| match o {
                Outcome::Allow(ids) => permitting.extend(ids),
                Outcome::Deny(ids) => forbidding.extend(ids),
            };
            if general {
                consider(run.outcome(1, k));
            }
            for j in (0..candidates.len()).filter(|&j| applies(j)) {
                consider(run.outcome(2 + j, k));
            }
            if !permitting.is_empty() {
                return Some(set.decision(
                    level,
                    permitting,
                    forbidding,
                    &candidates,
                    requester,
                    purpose,
                ));
            }
        }
        Some(set.decision(
            Level::Hidden,
            Vec::new(),
            forbidding,
            &candidates,
            requester,
            purpose,
        ))
    }

    /// The decision unit by unit (see `compile.rs`).
    fn decide_units(&self, record: &RecordFacts) -> Decision {
        let set = self.set;
        let requester = self.requester;
        let purpose = self.purpose;
        let category = set.category_of(&record.relationship_type);
        let candidates =
            set.index
                .candidates(&set.agreements, requester, record, category, purpose);
        let fail = |what: String| Decision {
            level: Level::Hidden,
            permitting: Vec::new(),
            forbidding: vec!["error:request".into()],
            reason: format!("the request could not be evaluated ({what}); nothing is disclosed"),
        };
        let entities = match record_entities(
            &set.names,
            &self.entities,
            requester,
            record,
            category,
            candidates.iter().map(|&i| &set.agreements[i]),
            None,
        ) {
            Ok(e) => e,
            Err(e) => return fail(e),
        };
        let base = match &self.base {
            Ok(c) => c,
            Err(e) => return fail(e.clone()),
        };
        let mut cands = Vec::with_capacity(candidates.len());
        for &index in &candidates {
            cands.push(Candidate {
                index,
                ctx: None,
                any: None,
                per_action: [None, None, None],
            });
        }
        let mut eval = Evaluation {
            set,
            principal: &self.principal,
            resource: set.names.record(record),
            entities: &entities,
            base,
            record_any: None,
            record_per_action: [None, None, None],
            general_any: None,
            general_per_action: [None, None, None],
        };

        let mut forbidding = Vec::new();
        for (k, level) in LEVELS.into_iter().enumerate() {
            let mut permitting = Vec::new();
            let mut consider = |o: Outcome| match o {
                Outcome::Allow(ids) => permitting.extend(ids),
                Outcome::Deny(ids) => forbidding.extend(ids),
            };
            if set.general_applies[k] {
                consider(eval.general(k));
            }
            for cand in cands.iter_mut() {
                if set.agreement_applies[cand.index][k] {
                    if cand.ctx.is_none() {
                        match self.agreement_context(cand.index) {
                            Ok(c) => cand.ctx = Some(c),
                            Err(e) => return fail(e),
                        }
                    }
                    consider(eval.agreement(k, cand));
                }
            }
            if !permitting.is_empty() {
                return set.decision(
                    level,
                    permitting,
                    forbidding,
                    &candidates,
                    requester,
                    purpose,
                );
            }
        }
        set.decision(
            Level::Hidden,
            Vec::new(),
            forbidding,
            &candidates,
            requester,
            purpose,
        )
    }
}

const UNKNOWN: u8 = 0;
const FALSE: u8 = 1;
const SATISFIED: u8 = 2;
const ERRED: u8 = 3;

/// One record's evaluation through a batch: each entry's result so far.
struct BatchRun<'r> {
    set: &'r PolicySet,
    batch: &'r Batch,
    principal: &'r EntityUid,
    resource: EntityUid,
    ctx: &'r Context,
    entities: &'r Entities,
    state: Vec<u8>,
    done_any: bool,
    done_action: [bool; 3],
    /// A request could not be built (every evaluation counts as
    /// `error:request`).
    request_error: bool,
}

impl BatchRun<'_> {
    /// Makes sure every entry action `k`'s evaluations use has a result.
    fn evaluate(&mut self, k: usize) {
        let batch = self.batch;
        if !self.done_any {
            self.done_any = true;
            if let Some(any) = &batch.any {
                self.run(any, &batch.any_index, ANY, &self.set.names.disclosure[0]);
            }
        }
        if !self.done_action[k] {
            self.done_action[k] = true;
            if let Some(set) = &batch.per_action[k] {
                self.run(
                    set,
                    &batch.action_index[k],
                    k as u8,
                    &self.set.names.disclosure[k],
                );
            }
        }
    }

    fn call(&self, policies: &cedar_policy::PolicySet, action: &EntityUid) -> Option<Response> {
        self.set
            .evaluate(
                self.principal,
                action,
                &self.resource,
                self.ctx,
                policies,
                self.entities,
            )
            .ok()
    }

    /// Evaluates one slot's set; the entries of the members of a guard that
    /// holds or errs are evaluated on their own.
    fn run(
        &mut self,
        policies: &cedar_policy::PolicySet,
        index: &std::collections::HashMap<PolicyId, usize>,
        slot: u8,
        action: &EntityUid,
    ) {
        let Some(resp) = self.call(policies, action) else {
            self.request_error = true;
            return;
        };
        for (i, e) in self.batch.entries.iter().enumerate() {
            if e.slot == slot {
                self.state[i] = FALSE;
            }
        }
        let mut open = Vec::new();
        let mut mark = |state: &mut Vec<u8>, id: &PolicyId, value: u8| match index.get(id) {
            Some(&i) => state[i] = value,
            None => {
                if self.batch.guards.contains_key(id) && !open.contains(id) {
                    open.push(id.clone());
                }
            }
        };
        for id in resp.diagnostics().reason() {
            mark(&mut self.state, id, SATISFIED);
        }
        for e in resp.diagnostics().errors() {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
            mark(&mut self.state, pe.policy_id(), ERRED);
        }
        for g in open {
            let members = &self.batch.guards[&g].members;
            let Some(resp) = self.call(members, action) else {
                self.request_error = true;
                return;
            };
            for id in resp.diagnostics().reason() {
                if let Some(&i) = index.get(id) {
                    self.state[i] = SATISFIED;
                }
            }
            for e in resp.diagnostics().errors() {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
                if let Some(&i) = index.get(pe.policy_id()) {
                    self.state[i] = ERRED;
                }
            }
        }
    }

    /// The outcome, for action `k`, of the evaluation of group `group`
    /// (1: without an agreement, 2 + j: with the j-th candidate) together
    /// with the record forbids: what Cedar gives for it, from the entries'
    /// results.
    fn outcome(&self, group: usize, k: usize) -> Outcome {
        if self.request_error {
            return Outcome::Deny(vec!["error:request".into()]);
        }
        let mut errors = Vec::new();
        let mut forbids = Vec::new();
        let mut permits = Vec::new();
        for g in [0, group] {
            for &i in &self.batch.groups[g] {
                let e = &self.batch.entries[i];
                if e.mask & (1 << k) == 0 || (e.slot != ANY && usize::from(e.slot) != k) {
                    continue;
                }
                match self.state[i] {
                    ERRED => errors.push(format!("error:{}", e.orig)),
                    SATISFIED if e.permit => permits.push(e.orig.to_string()),
                    SATISFIED => forbids.push(e.orig.to_string()),
                    _ => {}
                }
            }
        }
        if !errors.is_empty() {
            Outcome::Deny(errors)
        } else if !forbids.is_empty() {
            Outcome::Deny(forbids)
        } else if permits.is_empty() {
            Outcome::Deny(Vec::new())
        } else {
            Outcome::Allow(permits)
        }
    }
}

/// The state of one record's decision: the unit results so far.
struct Evaluation<'e> {
    set: &'e PolicySet,
    principal: &'e EntityUid,
    resource: EntityUid,
    entities: &'e Entities,
    base: &'e Context,
    record_any: Option<UnitResult>,
    record_per_action: [Option<UnitResult>; 3],
    general_any: Option<UnitResult>,
    general_per_action: [Option<UnitResult>; 3],
}

impl Evaluation<'_> {
    /// The general evaluation for action `k` (no agreement).
    fn general(&mut self, k: usize) -> Outcome {
        let set = self.set;
        let action = &set.names.disclosure[k];
        let mut parts = Vec::with_capacity(4);
        push_parts(
            &mut parts,
            &set.record_units,
            k,
            self.base,
            action,
            &mut self.record_any,
            &mut self.record_per_action[k],
        );
        push_parts(
            &mut parts,
            &set.general_units,
            k,
            self.base,
            action,
            &mut self.general_any,
            &mut self.general_per_action[k],
        );
        combine(
            set,
            self.principal,
            &self.resource,
            self.entities,
            k,
            &mut parts,
        )
    }

    /// The evaluation for action `k` with candidate agreement `cand`.
    fn agreement(&mut self, k: usize, cand: &mut Candidate) -> Outcome {
        let set = self.set;
        let action = &set.names.disclosure[k];
        let Some(ctx) = cand.ctx.as_ref() else {
            return Outcome::Deny(vec!["error:request".into()]);
        };
        let mut parts = Vec::with_capacity(4);
        push_parts(
            &mut parts,
            &set.record_units,
            k,
            self.base,
            action,
            &mut self.record_any,
            &mut self.record_per_action[k],
        );
        push_parts(
            &mut parts,
            &set.agreement_units[cand.index],
            k,
            ctx,
            action,
            &mut cand.any,
            &mut cand.per_action[k],
        );
        combine(
            set,
            self.principal,
            &self.resource,
            self.entities,
            k,
            &mut parts,
        )
    }
}

fn push_parts<'x>(
    parts: &mut Vec<Part<'x>>,
    units: &'x Units,
    k: usize,
    ctx: &'x Context,
    action: &'x EntityUid,
    any: &'x mut Option<UnitResult>,
    per_action: &'x mut Option<UnitResult>,
) {
    if let Some(unit) = &units.any {
        parts.push(Part {
            unit,
            ctx,
            action,
            result: any,
        });
    }
    if let Some(unit) = &units.per_action[k] {
        parts.push(Part {
            unit,
            ctx,
            action,
            result: per_action,
        });
    }
}

/// Evaluates one unit: through its guard when it has one and the guard
/// holds nothing back, else policy by policy.
fn run(
    set: &PolicySet,
    principal: &EntityUid,
    resource: &EntityUid,
    entities: &Entities,
    part: &Part<'_>,
    use_fast: bool,
) -> UnitResult {
    let eval = |policies| {
        set.evaluate(
            principal,
            part.action,
            resource,
            part.ctx,
            policies,
            entities,
        )
    };
    let mut resp = None;
    if let Some(fast) = part.unit.fast.as_ref().filter(|_| use_fast) {
        match eval(fast) {
            Ok(r) => {
                let guard = &part.unit.guard;
                let guard_erred = r.diagnostics().errors().any(|e| match e {
                    cedar_policy::AuthorizationError::PolicyEvaluationError(pe) => {
                        pe.policy_id() == guard
                    }
                });
                let guard_held = r.diagnostics().reason().any(|id| id == guard);
                if !guard_erred && !guard_held {
                    resp = Some(r);
                }
            }
            Err(()) => return UnitResult::request_error(),
        }
    }
    let resp = match resp {
        Some(r) => r,
        None => match eval(&part.unit.all) {
            Ok(r) => r,
            Err(()) => return UnitResult::request_error(),
        },
    };
    let errors = resp
        .diagnostics()
        .errors()
        .map(|e| match e {
            cedar_policy::AuthorizationError::PolicyEvaluationError(pe) => pe.policy_id().clone(),
        })
        .collect();
    let reasons: Vec<PolicyId> = resp.diagnostics().reason().cloned().collect();
    let (forbids, permits) = if resp.decision() == CedarDecision::Allow {
        // No forbid is satisfied; the reasons are the satisfied permits.
        (Vec::new(), Some(reasons))
    } else if reasons.is_empty() {
        // Neither a forbid nor a permit is satisfied.
        (Vec::new(), Some(Vec::new()))
    } else if part.unit.permits.is_none() {
        (reasons, Some(Vec::new()))
    } else {
        // Satisfied forbids hide the permits.
        (reasons, None)
    };
    UnitResult {
        request_error: false,
        errors,
        forbids,
        permits,
    }
}

impl UnitResult {
    fn request_error() -> UnitResult {
        UnitResult {
            request_error: true,
            errors: Vec::new(),
            forbids: Vec::new(),
            permits: Some(Vec::new()),
        }
    }
}

/// When neither the record forbids (`parts[0]`) nor an action-free unit
/// that can go with them has been evaluated, evaluates both with one
/// request and keeps the result when it is unambiguous: neither guard holds
/// or errs and no other forbid holds. Otherwise leaves both to `run`.
fn together(
    set: &PolicySet,
    principal: &EntityUid,
    resource: &EntityUid,
    entities: &Entities,
    parts: &mut [Part<'_>],
) {
    let Some(record) = &set.record_units.any else {
        return;
    };
    let Some((first, rest)) = parts.split_first_mut() else {
        return;
    };
    if !std::ptr::eq(first.unit, record) || first.result.is_some() {
        return;
    }
    let Some(other) = rest
        .iter_mut()
        .find(|p| p.unit.with_record.is_some() && p.result.is_none())
    else {
        return;
    };
    let Some(combined) = &other.unit.with_record else {
        return;
    };
    let Ok(resp) = set.evaluate(
        principal,
        other.action,
        resource,
        other.ctx,
        combined,
        entities,
    ) else {
        return;
    };
    let errors: Vec<PolicyId> = resp
        .diagnostics()
        .errors()
        .map(|e| match e {
            cedar_policy::AuthorizationError::PolicyEvaluationError(pe) => pe.policy_id().clone(),
        })
        .collect();
    let allow = resp.decision() == CedarDecision::Allow;
    let reasons: Vec<PolicyId> = resp.diagnostics().reason().cloned().collect();
    let guards = [&record.guard, &other.unit.guard];
    if errors.contains(&record.guard) || reasons.contains(&record.guard) {
        // A record forbid holds (or errs): evaluate them one by one; the
        // other unit is left to `run`.
        let r = run(set, principal, resource, entities, first, false);
        *first.result = Some(r);
        return;
    }
    if errors.iter().any(|e| guards.contains(&e)) || (!allow && !reasons.is_empty()) {
        return;
    }
    *first.result = Some(UnitResult {
        request_error: false,
        errors: Vec::new(),
        forbids: Vec::new(),
        permits: Some(Vec::new()),
    });
    *other.result = Some(UnitResult {
        request_error: false,
        errors,
        forbids: Vec::new(),
        permits: Some(if allow { reasons } else { Vec::new() }),
    });
}

/// The outcome, for action `k`, of one evaluation of the union of `parts`:
/// what Cedar gives for that union, from the per-policy results.
fn combine(
    set: &PolicySet,
    principal: &EntityUid,
    resource: &EntityUid,
    entities: &Entities,
    k: usize,
    parts: &mut [Part<'_>],
) -> Outcome {
    let applies = |id: &PolicyId| set.masks.get(id).is_none_or(|m| m & (1 << k) != 0);
    together(set, principal, resource, entities, parts);
    for part in parts.iter_mut() {
        if part.result.is_none() {
            let r = run(set, principal, resource, entities, part, true);
            *part.result = Some(r);
        }
    }
    let results = || parts.iter().filter_map(|p| p.result.as_ref());
    if results().any(|r| r.request_error) {
        return Outcome::Deny(vec!["error:request".into()]);
    }
    let errors: Vec<String> = results()
        .flat_map(|r| &r.errors)
        .filter(|id| applies(id))
        .map(|id| format!("error:{id}"))
        .collect();
    if !errors.is_empty() {
        // Fail closed: an erroring forbid must not let a permit through.
        return Outcome::Deny(errors);
    }
    let forbids: Vec<String> = results()
        .flat_map(|r| &r.forbids)
        .filter(|id| applies(id))
        .map(PolicyId::to_string)
        .collect();
    if !forbids.is_empty() {
        return Outcome::Deny(forbids);
    }
    let mut permits = Vec::new();
    for part in parts.iter_mut() {
        let Some(result) = part.result.as_mut() else {
            continue;
        };
        if result.permits.is_none() {
            // Which permits are satisfied, with the forbids set aside.
            let only = match &part.unit.permits {
                Some(p) => set.evaluate(principal, part.action, resource, part.ctx, p, entities),
                None => Err(()),
            };
            result.permits = Some(match only {
                Ok(resp) if resp.decision() == CedarDecision::Allow => {
                    resp.diagnostics().reason().cloned().collect()
                }
                Ok(_) => Vec::new(),
                Err(()) => return Outcome::Deny(vec!["error:request".into()]),
            });
        }
        if let Some(p) = &result.permits {
            permits.extend(p.iter().filter(|id| applies(id)).map(PolicyId::to_string));
        }
    }
    if permits.is_empty() {
        Outcome::Deny(Vec::new())
    } else {
        Outcome::Allow(permits)
    }
}

#[cfg(test)]
mod equivalence {
    //! The unit evaluation must decide exactly as the straightforward one it
    //! replaced: every general policy, and every candidate agreement's
    //! policies with the general forbids, evaluated by Cedar as written,
    //! once per (action × evaluation). `reference` is that implementation.

    use std::path::Path;
    use std::str::FromStr;

    use cedar_policy::{Effect, PolicyId};

    use super::*;
    use crate::agreement::Agreement;
    use crate::compile::may_apply;
    use crate::entities::request_entities;

    /// The policies as written, sliced per action as before.
    pub(super) struct Reference {
        general: [Option<cedar_policy::PolicySet>; 3],
        by_agreement: Vec<[Option<cedar_policy::PolicySet>; 3]>,
    }

    pub(super) fn reference_sets(set: &PolicySet, dir: &Path) -> Reference {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    if !p.ends_with("tests") {
                        stack.push(p);
                    }
                } else if p.extension().is_some_and(|x| x == "cedar") {
                    files.push(p);
                }
            }
        }
        let mut general = Vec::new();
        let mut own: Vec<Vec<cedar_policy::Policy>> = vec![Vec::new(); set.agreements.len()];
        let mut general_forbids = Vec::new();
        for f in files {
            let parsed =
                cedar_policy::PolicySet::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            for p in parsed.policies() {
                let p = p.new_id(PolicyId::new(p.annotation("id").unwrap()));
                match p.annotation("agreement") {
                    Some(a) => {
                        let i = set.agreements.iter().position(|x| x.id == a).unwrap();
                        own[i].push(p);
                    }
                    None => {
                        if p.effect() == Effect::Forbid {
                            general_forbids.push(p.clone());
                        }
                        general.push(p);
                    }
                }
            }
        }
        let known = set.names.known_actions();
        let slice = |from: &mut dyn Iterator<Item = &cedar_policy::Policy>, a: &EntityUid| {
            let mut out = cedar_policy::PolicySet::new();
            let mut any_permit = false;
            for p in from.filter(|p| may_apply(p, a, &known)) {
                any_permit |= p.effect() == Effect::Permit;
                out.add(p.clone()).unwrap();
            }
            (out, any_permit)
        };
        Reference {
            general: set.names.disclosure.clone().map(|a| {
                let (s, any) = slice(&mut general.iter(), &a);
                any.then_some(s)
            }),
            by_agreement: own
                .iter()
                .map(|own| {
                    set.names.disclosure.clone().map(|a| {
                        let (s, any) = slice(&mut general_forbids.iter().chain(own), &a);
                        let own_permit = own
                            .iter()
                            .any(|p| p.effect() == Effect::Permit && may_apply(p, &a, &known));
                        (any && own_permit).then_some(s)
                    })
                })
                .collect(),
        }
    }

    /// The decision as the engine made it before units.
    pub(super) fn reference(
        set: &PolicySet,
        r: &Reference,
        requester: &Requester,
        record: &RecordFacts,
        purpose: &str,
        now: i64,
        break_glass: bool,
    ) -> Decision {
        let evaluate =
            |a: &EntityUid, ctx: &Context, ps: &cedar_policy::PolicySet, e: &Entities| match set
                .evaluate(
                    &set.names.user(requester),
                    a,
                    &set.names.record(record),
                    ctx,
                    ps,
                    e,
                ) {
                Ok(resp) => outcome(&resp),
                Err(()) => Outcome::Deny(vec!["error:request".into()]),
            };
        let category = set.category_of(&record.relationship_type);
        let candidates =
            set.index
                .candidates(&set.agreements, requester, record, category, purpose);
        let cand: Vec<&Agreement> = candidates.iter().map(|&i| &set.agreements[i]).collect();
        let fail = |what: String| Decision {
            level: Level::Hidden,
            permitting: Vec::new(),
            forbidding: vec!["error:request".into()],
            reason: format!("the request could not be evaluated ({what}); nothing is disclosed"),
        };
        let entities = match request_entities(&set.names, requester, record, category, &cand, None)
        {
            Ok(e) => e,
            Err(e) => return fail(e),
        };
        let base = query_context(purpose, now, break_glass, None).unwrap();
        let contexts: Vec<Context> = cand
            .iter()
            .map(|a| query_context(purpose, now, break_glass, Some(&a.uid)).unwrap())
            .collect();
        let mut forbidding = Vec::new();
        for (k, level) in LEVELS.into_iter().enumerate() {
            let action = &set.names.disclosure[k];
            let mut permitting = Vec::new();
            let mut consider = |o: Outcome| match o {
                Outcome::Allow(ids) => permitting.extend(ids),
                Outcome::Deny(ids) => forbidding.extend(ids),
            };
            if let Some(ps) = &r.general[k] {
                consider(evaluate(action, &base, ps, &entities));
            }
            for (ci, &ai) in candidates.iter().enumerate() {
                if let Some(ps) = &r.by_agreement[ai][k] {
                    consider(evaluate(action, &contexts[ci], ps, &entities));
                }
            }
            if !permitting.is_empty() {
                let permitting = sorted(permitting);
                let forbidding = sorted(forbidding);
                let reason = set.reason(
                    level,
                    &permitting,
                    &forbidding,
                    &candidates,
                    requester,
                    purpose,
                );
                return Decision {
                    level,
                    permitting,
                    forbidding,
                    reason,
                };
            }
        }
        let forbidding = sorted(forbidding);
        let reason = set.reason(
            Level::Hidden,
            &[],
            &forbidding,
            &candidates,
            requester,
            purpose,
        );
        Decision {
            level: Level::Hidden,
            permitting: Vec::new(),
            forbidding,
            reason,
        }
    }

    /// A small deterministic generator (xorshift).
    struct Rng(u64);
    impl Rng {
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            from[(self.0 % from.len() as u64) as usize]
        }
        fn chance(&mut self) -> bool {
            self.pick(&["a", "b", "c"]) == "a"
        }
    }

    /// Compares every path with the reference on `n` generated requests.
    /// The agreements named in `unbatched` are made unbatchable (as if a
    /// policy of theirs could not be specialised), so that decisions with
    /// them take the unit path.
    fn compare(dir: &Path, n: usize, seed: u64, unbatched: &[&str]) -> [usize; 4] {
        let mut set = PolicySet::load(dir).unwrap();
        for (i, a) in set.agreements.iter().enumerate() {
            if unbatched.contains(&a.id.as_str()) {
                set.agreement_items[i] = std::sync::OnceLock::from(None);
            }
        }
        let set = set;
        let batchable = set.batch_base.is_some()
            && (0..set.agreements.len()).all(|i| set.agreement_items(i).is_some());
        assert_eq!(
            batchable,
            unbatched.is_empty(),
            "every policy can be batched"
        );
        let r = reference_sets(&set, dir);
        let mut rng = Rng(seed);
        let kinds = ["council", "nhs_trust", "police", "fire", "ambulance"];
        let codes = [
            "E08000003",
            "E08000007",
            "R0A",
            "RX7",
            "E23000005",
            "C001",
            "T001",
            "C002",
            "T002",
        ];
        let nations = ["england", "wales", "scotland", "northern_ireland"];
        let roles = [
            "social_worker",
            "safeguarding_lead",
            "ed_clinician",
            "nurse",
            "gp",
            "police_officer",
            "public_protection_officer",
            "paramedic",
            "firefighter",
            "auditor",
            "janitor",
        ];
        let types = [
            "child_protection_plan",
            "looked_after_child",
            "child_in_need",
            "adult_social_care",
            "s42_safeguarding_enquiry",
            "mental_health",
            "housing_support",
            "vulnerability_marker",
            "home_fire_safety",
            "unlisted",
        ];
        let purposes = [
            "direct_care",
            "safeguarding",
            "emergency",
            "care_planning",
            "public_protection",
            "curiosity",
        ];
        let times = [
            1_700_000_000,
            1_735_689_600,
            1_768_435_200,
            1_800_000_000,
            1_900_000_000,
        ];
        let mut levels = [0; 4];
        for _ in 0..n {
            let requester = Requester {
                authority_code: rng.pick(&codes).into(),
                authority_kind: rng.pick(&kinds).into(),
                jurisdiction: rng
                    .pick(&[
                        "england",
                        "england",
                        "england",
                        "wales",
                        "scotland",
                        "northern_ireland",
                    ])
                    .into(),
                user_id: rng.pick(&["u1", "u2"]).into(),
                role: rng.pick(&roles).into(),
                team: rng.pick(&["t", "suspended"]).into(),
            };
            // Roles are bound to authority kinds (05-role-kinds.cedar):
            // mostly ask as a kind that holds the role, so that every level
            // is still reached, and sometimes as any kind.
            let mut requester = requester;
            if !rng.chance() {
                let fitting: &[&str] = match requester.role.as_str() {
                    "social_worker" | "safeguarding_lead" => &["council", "nhs_trust"],
                    "ed_clinician" | "nurse" | "gp" => &["nhs_trust"],
                    "police_officer" | "public_protection_officer" => &["police"],
                    "paramedic" => &["ambulance"],
                    "firefighter" => &["fire"],
                    _ => &kinds,
                };
                requester.authority_kind = rng.pick(fitting).into();
            }
            let same = rng.chance();
            let record = RecordFacts {
                custodian_code: if same {
                    requester.authority_code.clone()
                } else {
                    rng.pick(&codes).into()
                },
                custodian_kind: if same && rng.chance() {
                    requester.authority_kind.clone()
                } else {
                    rng.pick(&kinds).into()
                },
                custodian_jurisdiction: if same || rng.chance() {
                    requester.jurisdiction.clone()
                } else {
                    rng.pick(&nations).into()
                },
                record_key: rng.pick(&["r1", "r2"]).into(),
                relationship_type: rng.pick(&types).into(),
                sensitivity: rng
                    .pick(&[
                        "normal",
                        "normal",
                        "normal",
                        "normal",
                        "restricted",
                        "sealed",
                    ])
                    .into(),
                residency: rng
                    .pick(&["uk", "uk", "uk", "uk", "england", "wales", "source_only"])
                    .into(),
                lawful_basis: rng
                    .pick(&["UK GDPR 6(1)(e)", "UK GDPR 6(1)(e)", "UK GDPR 6(1)(e)", ""])
                    .into(),
                permitted_purposes: purposes
                    .iter()
                    .filter(|_| !(rng.chance() && rng.chance()))
                    .map(|p| p.to_string())
                    .collect(),
                objection: rng.chance() && rng.chance(),
                directive: "none".into(),
            };
            let known_only = usize::from(rng.chance());
            let purpose = rng.pick(&purposes[..purposes.len() - known_only]);
            let now = times[rng
                .pick(&["0", "1", "2", "2", "2", "2", "3", "4"])
                .parse::<usize>()
                .unwrap()];
            let bg = rng.chance();
            let want = reference(&set, &r, &requester, &record, purpose, now, bg);
            let got = set.decide(&requester, &record, purpose, now, bg);
            assert_eq!(got, want, "{requester:?} {record:?} {purpose} {now} {bg}");
            let decider = set.decider(&requester, purpose, now, bg);
            assert_eq!(decider.decide(&record), want);
            assert_eq!(decider.decide(&record), want, "second use of a decider");
            // The batch path (above) and the unit path, each with and
            // without a shared store; a sibling record reuses the query's
            // cached store.
            assert!(
                decider.decide_batched(&record).is_some() || !batchable,
                "the batch path is taken"
            );
            for (shared, batch) in [(true, false), (false, false), (false, true)] {
                let d = set.make_decider(&requester, purpose, now, bg, shared, batch);
                assert_eq!(d.decide(&record), want, "shared {shared}, batch {batch}");
            }
            let mut sibling = record.clone();
            sibling.record_key = format!("{}-b", record.record_key);
            assert_eq!(
                decider.decide(&sibling),
                set.make_decider(&requester, purpose, now, bg, false, false)
                    .decide(&sibling),
                "sibling record"
            );
            levels[want.level as usize] += 1;
        }
        levels
    }

    fn default_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    #[test]
    fn decides_as_the_reference_on_the_default_set() {
        let levels = compare(&default_dir(), 10_000, 0x9e37_79b9_7f4a_7c15, &[]);
        assert!(
            levels.iter().all(|&n| n > 20),
            "every level is exercised: {levels:?}"
        );
    }

    #[test]
    fn decides_as_the_reference_with_an_unbatchable_agreement() {
        let levels = compare(
            &default_dir(),
            4_000,
            0x0bad_cafe_f00d_d00d,
            &["adult-care-integration"],
        );
        assert!(
            levels.iter().all(|&n| n > 10),
            "every level is exercised: {levels:?}"
        );
    }

    #[test]
    fn decides_as_the_reference_with_unusual_policies() {
        // Policies the unit analysis must keep apart: an erring forbid for
        // one action, conditions on `action`, `unless`, a permit reading
        // `context.agreement`, a forbid testing only `context has
        // agreement`, principal and resource scopes, an unknown entry in an
        // action list, and agreement-specific forbids.
        let tmp = tempfile::tempdir().unwrap();
        let copy = |from: &Path, to: &Path| {
            fn go(from: &Path, to: &Path) {
                std::fs::create_dir_all(to).unwrap();
                for e in std::fs::read_dir(from).unwrap() {
                    let e = e.unwrap();
                    if e.path().is_dir() {
                        go(&e.path(), &to.join(e.file_name()));
                    } else {
                        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
                    }
                }
            }
            go(from, to)
        };
        copy(&default_dir(), tmp.path());
        std::fs::write(
            tmp.path().join("default/90-unusual.cedar"),
            r#"
@id("u-overflow-detail")
@reason("errs for restricted records")
forbid (principal, action == Kith::Action::"view_detail", resource)
when { resource.sensitivity == "restricted" && context.now * 1000000000000 > 0 };

@id("u-action-in-body")
@reason("reads action")
forbid (principal, action, resource)
when { action == Kith::Action::"view_summary" && principal.team == "suspended" };

@id("u-unless")
@reason("unless")
@advice("unless advice")
forbid (principal, action in [Kith::Action::"view_detail", Kith::Action::"acknowledge"], resource)
unless { resource.residency == "uk" || principal.role != "gp" };

@id("u-has-agreement")
@reason("only outside agreements")
forbid (principal, action == Kith::Action::"view_summary", resource)
when { !(context has agreement) && principal.role == "nurse" };

@id("u-principal-scope")
@reason("principal scope")
forbid (principal in Kith::Authority::"C001", action, resource)
when { resource.category == "health" };

@id("u-general-permit")
@title("own records")
@reason("own authority's records, acknowledge only")
permit (principal, action == Kith::Action::"acknowledge", resource)
when { resource.custodian == principal.authority && principal.role != "auditor" };

@id("u-unknown-action-entry")
@reason("unknown action in list")
forbid (principal, action in [Kith::Action::"view_detail", Kith::Action::"hold_detail"], resource)
when { resource.lawful_basis like "*6(1)(e)*" && resource.objection };

@id("u-agreement-permit")
@agreement("adult-care-integration")
@reason("reads context.agreement")
permit (principal, action in [Kith::Action::"view_summary", Kith::Action::"acknowledge"], resource)
when {
  context has agreement && context.agreement.valid_until > context.now &&
  principal.role == "firefighter"
};

@id("u-agreement-forbid")
@agreement("children-safeguarding")
@reason("agreement-specific forbid")
@advice("agreement advice")
forbid (principal, action == Kith::Action::"view_detail", resource)
when { context.purpose == "emergency" };

@id("u-agreement-overflow")
@agreement("emergency-services")
@reason("errs for firefighters")
forbid (
  principal,
  action in
    [Kith::Action::"view_detail",
     Kith::Action::"view_summary",
     Kith::Action::"acknowledge"],
  resource
)
when { principal.role == "paramedic" && principal.team == "suspended" && context.now * 1000000000000 > 0 };
"#,
        )
        .unwrap();
        let levels = compare(tmp.path(), 10_000, 0x2545_f491_4f6c_dd1d, &[]);
        assert!(
            levels.iter().all(|&n| n > 20),
            "every level is exercised: {levels:?}"
        );
        // With one agreement unbatchable, decisions with it as a candidate
        // take the unit path, the others the batch path.
        let levels = compare(
            tmp.path(),
            4_000,
            0x1234_5678_9abc_def1,
            &["children-safeguarding"],
        );
        assert!(
            levels.iter().all(|&n| n > 20),
            "every level is exercised: {levels:?}"
        );
    }
}

#[cfg(test)]
mod timing {
    //! `cargo test --release --lib timing -- --ignored --nocapture`: the
    //! reference (pre-unit) implementation against `decide`, a `Decider`
    //! (batch path) and a `Decider` on the unit path, interleaved on the
    //! benchmark's default mix, so that machine load affects all alike.

    use std::time::Instant;

    use super::equivalence::{reference, reference_sets};
    use super::*;

    #[test]
    #[ignore]
    fn reference_against_units() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let set = PolicySet::load(&dir).unwrap();
        let r = reference_sets(&set, &dir);
        let req = |code: &str, kind: &str, role: &str| Requester {
            authority_code: code.into(),
            authority_kind: kind.into(),
            jurisdiction: "england".into(),
            user_id: "u1".into(),
            role: role.into(),
            team: "team".into(),
        };
        let rec = |code: &str, kind: &str, ty: &str, objection: bool| RecordFacts {
            custodian_code: code.into(),
            custodian_kind: kind.into(),
            custodian_jurisdiction: "england".into(),
            record_key: "r1".into(),
            relationship_type: ty.into(),
            sensitivity: "normal".into(),
            residency: "uk".into(),
            lawful_basis: "UK GDPR 6(1)(e)".into(),
            permitted_purposes: ["safeguarding", "direct_care", "care_planning", "emergency"]
                .map(String::from)
                .to_vec(),
            objection,
            directive: if objection { "objection" } else { "none" }.into(),
        };
        let mix = [
            (
                req("E08000007", "council", "social_worker"),
                rec("E08000003", "council", "child_protection_plan", false),
                "safeguarding",
                false,
            ),
            (
                req("R0A", "nhs_trust", "ed_clinician"),
                rec("E08000003", "council", "child_protection_plan", false),
                "direct_care",
                false,
            ),
            (
                req("E08000007", "council", "social_worker"),
                rec("E08000003", "council", "child_in_need", true),
                "safeguarding",
                false,
            ),
            (
                req("E23000005", "police", "police_officer"),
                rec("E08000003", "council", "adult_social_care", false),
                "care_planning",
                false,
            ),
            (
                req("RX7", "ambulance", "paramedic"),
                rec("E08000003", "council", "child_protection_plan", false),
                "emergency",
                true,
            ),
            (
                req("RX7", "ambulance", "paramedic"),
                rec("E23000005", "police", "vulnerability_marker", false),
                "emergency",
                false,
            ),
        ];
        const NOW: i64 = 1_768_435_200;
        let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for round in 0..3000 {
            for (q, rc, p, bg) in &mix {
                let t = Instant::now();
                std::hint::black_box(reference(&set, &r, q, rc, p, NOW, *bg));
                let a = t.elapsed();
                let t = Instant::now();
                std::hint::black_box(set.decide(q, rc, p, NOW, *bg));
                let b = t.elapsed();
                let t = Instant::now();
                let d = set.decider(q, p, NOW, *bg);
                for _ in 0..8 {
                    std::hint::black_box(d.decide(rc));
                }
                let c = t.elapsed() / 8;
                let t = Instant::now();
                let d = set.make_decider(q, p, NOW, *bg, true, false);
                for _ in 0..8 {
                    std::hint::black_box(d.decide(rc));
                }
                let u = t.elapsed() / 8;
                if round >= 300 {
                    samples[0].push(a);
                    samples[1].push(b);
                    samples[2].push(c);
                    samples[3].push(u);
                }
            }
        }
        for (name, s) in [
            "reference",
            "decide",
            "decider (8 records)",
            "decider, unit path (8 records)",
        ]
        .iter()
        .zip(&mut samples)
        {
            s.sort();
            println!("{name}: median {:.1}µs", s[s.len() / 2].as_secs_f64() * 1e6);
        }
    }
}
