//! The evaluation form of the policies, built once at load.
//!
//! A disclosure decision used to evaluate every policy that may apply once
//! per (action × candidate agreement). Most policies give the same answer
//! in all of those evaluations, so they are grouped into *units* that are
//! evaluated once per decision and whose per-policy results are then
//! combined, per action, exactly as Cedar would have combined them:
//!
//! - a policy whose action scope names only known actions (or none) and
//!   whose condition does not read `action` is *action-free*: its scope is
//!   replaced by `action` (the engine applies the scope itself, through the
//!   policy's action mask), so one evaluation answers for every action;
//! - a policy whose condition reads `context` only as `context.<attr>` /
//!   `context has <attr>` with `<attr>` other than `agreement` is
//!   *agreement-free*: it answers the same with or without
//!   `context.agreement`, so it is evaluated once, without it, for the
//!   general evaluation and for every candidate agreement alike (the entity
//!   store is the same for all of them);
//! - a set literal of plain values in `[..].contains(x)` is rewritten to
//!   `x == v1 || x == v2 || ..`, which Cedar evaluates without building a
//!   set (the same value for every `x`, and an error exactly when `x` errs).
//!
//! Anything the analysis does not recognise is kept as written (its scope
//! evaluated by Cedar, per action) and treated as reading the agreement.
//! Only the evaluation form is rewritten; validation, `explain` and the
//! audit ids use the policies as written.

use cedar_policy::{ActionConstraint, Effect, EntityUid, Policy, PolicyId, PolicySet};
use serde_json::{Value, json};

use crate::entities::Names;

/// Whether `policy`'s action scope may include `action`. Without action
/// groups, `in [..]` is membership; an unknown entry (a group) is treated
/// as possibly applying.
pub(crate) fn may_apply(policy: &Policy, action: &EntityUid, known: &[EntityUid]) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => &a == action,
        ActionConstraint::In(list) => list.iter().any(|a| a == action || !known.contains(a)),
    }
}

/// One policy in evaluation form.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub policy: Policy,
    /// Bit k: the scope may apply to `DISCLOSURE_ACTIONS[k]`.
    pub mask: u8,
    /// Scope replaced by `action`; one evaluation answers for every action
    /// in `mask`.
    pub action_free: bool,
    /// Does not read `context.agreement` (see the module doc).
    pub agreement_free: bool,
    /// The evaluation form as EST JSON (`None` when kept as written).
    pub est: Option<Value>,
}

/// Builds the evaluation form of `p` (see the module doc).
pub(crate) fn compile(p: &Policy, names: &Names, known: &[EntityUid]) -> Compiled {
    let mask = (0..3)
        .filter(|&k| may_apply(p, &names.disclosure[k], known))
        .fold(0u8, |m, k| m | (1 << k));
    let as_written = |agreement_free| Compiled {
        policy: p.clone(),
        mask,
        action_free: false,
        agreement_free,
        est: None,
    };
    let Ok(mut json) = p.to_json() else {
        return as_written(false);
    };
    let Some(conditions) = json.get_mut("conditions") else {
        return as_written(false);
    };
    let agreement_free = agreement_free(conditions);
    let exact_scope = match p.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => known.contains(&a),
        ActionConstraint::In(list) => list.iter().all(|a| known.contains(a)),
    };
    let action_free = exact_scope && !uses_var(conditions, "action");
    rewrite_literal_contains(conditions);
    if action_free {
        json["action"] = json!({ "op": "All" });
    }
    match Policy::from_json(Some(p.id().clone()), json.clone()) {
        Ok(policy) if policy.effect() == p.effect() => Compiled {
            policy,
            mask,
            action_free,
            agreement_free,
            est: Some(json),
        },
        _ => as_written(agreement_free),
    }
}

fn is_var(v: &Value, name: &str) -> bool {
    v.get("Var").and_then(Value::as_str) == Some(name)
}

/// Whether the expression (EST JSON) mentions the variable `name`.
fn uses_var(v: &Value, name: &str) -> bool {
    match v {
        Value::Object(m) => is_var(v, name) || m.values().any(|x| uses_var(x, name)),
        Value::Array(a) => a.iter().any(|x| uses_var(x, name)),
        _ => false,
    }
}

/// Whether every use of `context` is `context.<attr>` or `context has
/// <attr>` with `<attr>` a plain name other than `agreement`.
pub(crate) fn agreement_free(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            for op in [".", "has"] {
                let on_context = m.get(op).filter(|inner| {
                    m.len() == 1 && inner.get("left").is_some_and(|l| is_var(l, "context"))
                });
                if let Some(inner) = on_context {
                    let attr_ok = inner
                        .get("attr")
                        .and_then(Value::as_str)
                        .is_some_and(|a| a != "agreement");
                    let only_left_and_attr = inner
                        .as_object()
                        .is_some_and(|o| o.keys().all(|k| k == "left" || k == "attr"));
                    return attr_ok && only_left_and_attr;
                }
            }
            !is_var(v, "context") && m.values().all(agreement_free)
        }
        Value::Array(a) => a.iter().all(agreement_free),
        _ => true,
    }
}

/// Rewrites `[v1, .., vn].contains(x)`, with every `vi` a plain string,
/// number or boolean and 1 ≤ n ≤ 16, to `x == v1 || .. || x == vn`.
fn rewrite_literal_contains(v: &mut Value) {
    const MAX: usize = 16;
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                rewrite_literal_contains(x);
            }
            let Some(inner) = m.get("contains").filter(|_| m.len() == 1) else {
                return;
            };
            let Some(items) = inner
                .get("left")
                .and_then(|l| l.get("Set"))
                .and_then(Value::as_array)
            else {
                return;
            };
            let plain = |i: &Value| {
                i.as_object().is_some_and(|o| o.len() == 1)
                    && i.get("Value")
                        .is_some_and(|x| x.is_string() || x.is_i64() || x.is_boolean())
            };
            let Some(x) = inner.get("right") else { return };
            if items.is_empty() || items.len() > MAX || !items.iter().all(plain) {
                return;
            }
            let mut chain: Option<Value> = None;
            for item in items {
                let eq = json!({ "==": { "left": x.clone(), "right": item.clone() } });
                chain = Some(match chain {
                    None => eq,
                    Some(c) => json!({ "||": { "left": c, "right": eq } }),
                });
            }
            if let Some(c) = chain {
                *v = c;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_literal_contains),
        _ => {}
    }
}

/// The id of a unit's guard (see [`Unit`]), unless a policy uses it.
const GUARD_ID: &str = "kith-internal:forbid-guard";

/// A group of policies evaluated together with one request.
///
/// When several of its forbids are action-free with unconstrained principal
/// and resource, the unit also has a *guard*: one forbid whose condition is
/// the disjunction of theirs (`c1 || c2 || ..`). The guard is evaluated in
/// their place; when it is false without error, each of them is false
/// without error (`||` evaluates every operand until one is true or errs),
/// which is by far the common case. Otherwise the unit is evaluated again
/// policy by policy.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub all: PolicySet,
    /// The guard plus the members it does not cover; `None` without a guard.
    pub fast: Option<PolicySet>,
    /// The guard's id.
    pub guard: PolicyId,
    /// The permits alone, to learn which are satisfied when a satisfied
    /// forbid hides them in the response; `None` when there are none.
    pub permits: Option<PolicySet>,
    /// For an action-free unit evaluated after the record forbids: the
    /// record forbids' guard plus this unit's fast (or whole) set, to
    /// evaluate both with one request (see `Units::attach_record_guard`).
    pub with_record: Option<PolicySet>,
}

/// The condition of a guard member as one expression: its conditions in
/// order (`when c` as `c`, `unless c` as `!c`) joined by `&&`, as Cedar
/// joins them. `None` when it cannot be a member.
fn member_condition(c: &Compiled) -> Option<Value> {
    member_condition_est(
        c.est.as_ref()?,
        c.policy.effect() == Effect::Forbid,
        c.action_free,
    )
}

/// As [`member_condition`], from a policy's evaluation form.
pub(crate) fn member_condition_est(est: &Value, forbid: bool, action_free: bool) -> Option<Value> {
    let all = |k: &str| est.get(k).and_then(|s| s.get("op")).and_then(Value::as_str) == Some("All");
    if !forbid || !action_free || !all("principal") || !all("resource") || !all("action") {
        return None;
    }
    let mut expr: Option<Value> = None;
    for cond in est.get("conditions")?.as_array()? {
        let body = cond.get("body")?.clone();
        let term = match cond.get("kind")?.as_str()? {
            "when" => body,
            "unless" => json!({ "!": { "arg": body } }),
            _ => return None,
        };
        expr = Some(match expr {
            None => term,
            Some(e) => json!({ "&&": { "left": e, "right": term } }),
        });
    }
    Some(expr.unwrap_or_else(|| json!({ "Value": true })))
}

/// Units are built only from policies whose ids are unique, so the guard's
/// id just has to differ from theirs. It names the first member, so that
/// guards of units with disjoint members differ too (see
/// `attach_record_guard`).
fn guard_id(members: &[&&Compiled]) -> PolicyId {
    let first = members.first().map(|c| c.policy.id().to_string());
    let mut id = format!("{GUARD_ID}:{}", first.unwrap_or_default());
    while members.iter().any(|c| c.policy.id().to_string() == id) {
        id.push('_');
    }
    PolicyId::new(id)
}

/// The units of one group of policies: the action-free ones together, the
/// others per action.
#[derive(Debug, Clone, Default)]
pub(crate) struct Units {
    pub any: Option<Unit>,
    pub per_action: [Option<Unit>; 3],
}

/// Guards already built, by their members' ids (every agreement's units
/// share the general forbids that read `context.agreement`).
pub(crate) type GuardCache = std::collections::HashMap<Vec<PolicyId>, Option<Policy>>;

impl Units {
    pub(crate) fn build<'c>(
        list: impl Iterator<Item = &'c Compiled>,
        cache: &mut GuardCache,
    ) -> Units {
        let list: Vec<&Compiled> = list.collect();
        let mut unit = |members: &mut dyn Iterator<Item = &&Compiled>| {
            let members: Vec<&&Compiled> = members.collect();
            if members.is_empty() {
                return None;
            }
            let guard = guard_id(&members);
            let mut all = PolicySet::new();
            let mut permits = PolicySet::new();
            let mut any_permit = false;
            for c in &members {
                // Cannot fail: ids are unique (checked at load).
                let _ = all.add(c.policy.clone());
                if c.policy.effect() == Effect::Permit {
                    any_permit = true;
                    let _ = permits.add(c.policy.clone());
                }
            }
            let guarded: Vec<(usize, Value)> = members
                .iter()
                .enumerate()
                .filter_map(|(i, c)| member_condition(c).map(|e| (i, e)))
                .collect();
            let mut fast = None;
            let key: Vec<PolicyId> = guarded
                .iter()
                .map(|(i, _)| members[*i].policy.id().clone())
                .chain([guard.clone()])
                .collect();
            let built = cache.entry(key).or_insert_with(|| {
                if guarded.len() < 2 {
                    return None;
                }
                let mut disjunction: Option<Value> = None;
                for (_, e) in &guarded {
                    disjunction = Some(match disjunction {
                        None => e.clone(),
                        Some(d) => json!({ "||": { "left": d, "right": e } }),
                    });
                }
                let guard_json = json!({
                    "effect": "forbid",
                    "principal": { "op": "All" },
                    "action": { "op": "All" },
                    "resource": { "op": "All" },
                    "conditions": [{ "kind": "when", "body": disjunction }],
                    "annotations": {},
                });
                Policy::from_json(Some(guard.clone()), guard_json).ok()
            });
            if let Some(g) = built.clone() {
                {
                    let mut set = PolicySet::new();
                    let mut ok = set.add(g).is_ok();
                    for (i, c) in members.iter().enumerate() {
                        if !guarded.iter().any(|(j, _)| *j == i) {
                            ok &= set.add(c.policy.clone()).is_ok();
                        }
                    }
                    fast = ok.then_some(set);
                }
            }
            Some(Unit {
                all,
                fast,
                guard,
                permits: any_permit.then_some(permits),
                with_record: None,
            })
        };
        let any = unit(&mut list.iter().filter(|c| c.action_free));
        let per_action = [0, 1, 2].map(|k| {
            unit(
                &mut list
                    .iter()
                    .filter(|c| !c.action_free && c.mask & (1 << k) != 0),
            )
        });
        Units { any, per_action }
    }

    /// When every record forbid is covered by the record units' guard (so
    /// they are agreement-free and action-free, and the guard answers the
    /// same in any context), lets this group's action-free unit be
    /// evaluated together with that guard.
    pub(crate) fn attach_record_guard(&mut self, record: &Units) {
        let Some(record_any) = &record.any else {
            return;
        };
        let Some(record_fast) = &record_any.fast else {
            return;
        };
        if record.per_action.iter().any(Option::is_some)
            || record_fast.policies().count() != 1
            || record_any.permits.is_some()
        {
            return;
        }
        let Some(guard) = record_fast.policy(&record_any.guard) else {
            return;
        };
        if let Some(unit) = &mut self.any {
            let own = unit.fast.as_ref().unwrap_or(&unit.all);
            if own.policy(&record_any.guard).is_some() {
                return;
            }
            let mut set = PolicySet::new();
            let mut ok = set.add(guard.clone()).is_ok();
            for p in own.policies() {
                ok &= set.add(p.clone()).is_ok();
            }
            unit.with_record = ok.then_some(set);
        }
    }
}
