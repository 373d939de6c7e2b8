//! Deciding a record through units (see `compile.rs`), evaluated lazily,
//! one request per candidate agreement: the path for records whose
//! agreements cannot be batched.

use super::*;

impl Decider<'_> {
    /// The decision unit by unit (see `compile.rs`).
    pub(super) fn decide_units(&self, record: &RecordFacts) -> Decision {
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
