//! Deciding a record through one batch: every candidate agreement
//! specialised into one Cedar request (see `batch.rs`), permits flipped so
//! that one response lists every satisfied policy.

use super::*;

impl Decider<'_> {
    /// The decision through one batch (see `batch.rs`); `None` when the
    /// record's candidate agreements cannot be batched.
    pub(super) fn decide_batched(&self, record: &RecordFacts) -> Option<Decision> {
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
