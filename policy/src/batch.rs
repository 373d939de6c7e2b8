//! One Cedar call for all of a record's evaluations (the *batch*).
//!
//! A disclosure decision is, per action, one evaluation without an
//! agreement (record forbids + general policies, base context) and one per
//! candidate agreement (record forbids + the general forbids that read
//! `context.agreement` + the agreement's own policies, with
//! `context.agreement` set to it). `decide.rs` combines per-policy results
//! into those evaluations. This module gets every per-policy result with as
//! few Cedar calls as possible:
//!
//! - **specialised copies**: in an agreement's policies, `context.agreement`
//!   is replaced by the agreement's entity literal and `context has
//!   agreement` by `true`. With the agreement in the entity store, each
//!   copy gives, under the base context, exactly the result the policy
//!   gives under that agreement's context. So every candidate agreement's
//!   policies go into one request with the base context. (The general
//!   forbids that read `context.agreement` get one renamed copy per
//!   candidate; results are reported under their own ids.) A policy that
//!   still uses `context` otherwise after this is not specialised, and
//!   decisions with that agreement are made the unit way (`decide.rs`).
//! - **flipped permits**: Cedar lists the satisfied permits only when no
//!   forbid is satisfied. In the batch every permit is turned into a forbid
//!   with the same scope and condition (a policy's result does not depend
//!   on its effect), so a single response lists every satisfied policy of
//!   the batch and every error.
//! - **guards**: the forbids that can be (action-free, unconstrained
//!   principal and resource) are replaced by two guards, one for the record
//!   forbids and one for the others, each the disjunction of its members'
//!   conditions: false without error means every member is false without
//!   error. A guard that holds or errs is answered by evaluating its
//!   members on their own (a second call).
//!
//! Action-free policies are evaluated once, together; the others once per
//! action, with that action.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cedar_policy::{Effect, Policy, PolicyId, PolicySet};
use serde_json::{Value, json};

use crate::compile::{Compiled, agreement_free, member_condition_est};

/// The slot of a policy evaluated with every action at once.
pub(crate) const ANY: u8 = 3;

/// Prefix of the ids the batch gives its own policies.
const INTERNAL: &str = "kith-internal:batch";

/// One policy in batch form.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The evaluation form with effect `forbid` (permits flipped), under an
    /// id unique in any batch.
    policy: Policy,
    /// The id the decision reports.
    orig: Arc<str>,
    permit: bool,
    /// Bit k: its scope may apply to `DISCLOSURE_ACTIONS[k]`.
    mask: u8,
    action_free: bool,
    /// For a forbid that can join a guard: its condition.
    guard_cond: Option<Value>,
}

/// Replaces `context.agreement` by the entity literal of agreement `id` and
/// `context has agreement` by `true`.
fn specialise(v: &mut Value, id: &str) {
    let on_agreement = |m: &serde_json::Map<String, Value>, op: &str| {
        m.len() == 1
            && m.get(op).is_some_and(|inner| {
                inner
                    .get("left")
                    .and_then(|l| l.get("Var"))
                    .and_then(Value::as_str)
                    == Some("context")
                    && inner.get("attr").and_then(Value::as_str) == Some("agreement")
                    && inner
                        .as_object()
                        .is_some_and(|o| o.keys().all(|k| k == "left" || k == "attr"))
            })
    };
    match v {
        Value::Object(m) => {
            if on_agreement(m, ".") {
                *v = json!({ "Value": { "__entity": { "type": "Kith::Agreement", "id": id } } });
            } else if on_agreement(m, "has") {
                *v = json!({ "Value": true });
            } else {
                m.values_mut().for_each(|x| specialise(x, id));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| specialise(x, id)),
        _ => {}
    }
}

impl Item {
    /// `c` in batch form under `id`, specialised to agreement `agreement`
    /// when given; `None` when that is not possible.
    pub(crate) fn new(c: &Compiled, id: PolicyId, agreement: Option<&str>) -> Option<Item> {
        let mut json = c.est.clone()?;
        if let Some(a) = agreement {
            let conditions = json.get_mut("conditions")?;
            specialise(conditions, a);
            if !agreement_free(conditions) {
                return None;
            }
        }
        let permit = c.policy.effect() == Effect::Permit;
        json["effect"] = json!("forbid");
        json["annotations"] = json!({});
        let guard_cond = member_condition_est(&json, !permit, c.action_free);
        let policy = Policy::from_json(Some(id), json).ok()?;
        Some(Item {
            policy,
            orig: Arc::from(c.policy.id().to_string()),
            permit,
            mask: c.mask,
            action_free: c.action_free,
            guard_cond,
        })
    }

    /// `c` in batch form under its own id.
    pub(crate) fn own(c: &Compiled, agreement: Option<&str>) -> Option<Item> {
        Item::new(c, c.policy.id().clone(), agreement)
    }
}

/// An id for a renamed copy of `orig` for agreement `agreement`, not used
/// by any policy of the set.
pub(crate) fn copy_id(agreement: &str, orig: &str, taken: &dyn Fn(&str) -> bool) -> PolicyId {
    let mut id = format!("{INTERNAL}:{agreement}:{orig}");
    while taken(&id) {
        id.push('_');
    }
    PolicyId::new(id)
}

/// What every batch holds besides its candidates' items.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    /// Group 0: the agreement-free general forbids.
    pub record: Vec<Item>,
    /// Group 1: the other general policies, for the evaluation without an
    /// agreement.
    pub general: Vec<Item>,
    /// Ids not to use for guards (every policy id of the set).
    pub taken: std::collections::HashSet<String>,
}

/// One policy of a batch and its place in the decision.
#[derive(Debug)]
pub(crate) struct Entry {
    pub orig: Arc<str>,
    pub permit: bool,
    pub mask: u8,
    /// `ANY`, or the action it is evaluated with.
    pub slot: u8,
}

/// A guard and the members it stands for.
#[derive(Debug)]
pub(crate) struct Guard {
    pub members: PolicySet,
}

/// The policy sets and bookkeeping for one list of candidate agreements.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The action-free policies, guards in place of their members.
    pub any: Option<PolicySet>,
    /// The other policies, per action.
    pub per_action: [Option<PolicySet>; 3],
    pub entries: Vec<Entry>,
    /// Entries by group: 0 the record forbids, 1 the general policies,
    /// 2 + j the j-th candidate's.
    pub groups: Vec<Vec<usize>>,
    /// Ids of the `ANY` entries (in `any` or in a guard's members).
    pub any_index: HashMap<PolicyId, usize>,
    pub action_index: [HashMap<PolicyId, usize>; 3],
    pub guards: HashMap<PolicyId, Guard>,
}

impl Batch {
    /// The batch of the record and general policies plus `candidates`
    /// (each candidate's items, in order). `None` if a set cannot be built.
    pub(crate) fn build(base: &Base, candidates: &[&[Item]]) -> Option<Batch> {
        let mut batch = Batch {
            any: None,
            per_action: [None, None, None],
            entries: Vec::new(),
            groups: vec![Vec::new(); 2 + candidates.len()],
            any_index: HashMap::new(),
            action_index: [HashMap::new(), HashMap::new(), HashMap::new()],
            guards: HashMap::new(),
        };
        let mut any = PolicySet::new();
        let mut per_action = [PolicySet::new(), PolicySet::new(), PolicySet::new()];
        let mut any_used = false;
        let mut action_used = [false; 3];
        // Guard members: [record group, other groups].
        let mut guarded: [Vec<&Item>; 2] = [Vec::new(), Vec::new()];
        let all_groups = [&base.record[..], &base.general[..]]
            .into_iter()
            .chain(candidates.iter().copied());
        for (group, items) in all_groups.enumerate() {
            for item in items {
                if item.action_free {
                    let i = batch.entries.len();
                    batch.entries.push(Entry {
                        orig: item.orig.clone(),
                        permit: item.permit,
                        mask: item.mask,
                        slot: ANY,
                    });
                    batch.groups[group].push(i);
                    if batch
                        .any_index
                        .insert(item.policy.id().clone(), i)
                        .is_some()
                    {
                        return None;
                    }
                    if item.guard_cond.is_some() {
                        guarded[usize::from(group > 0)].push(item);
                    } else {
                        any.add(item.policy.clone()).ok()?;
                        any_used = true;
                    }
                } else {
                    for k in 0..3 {
                        if item.mask & (1 << k) == 0 {
                            continue;
                        }
                        let i = batch.entries.len();
                        batch.entries.push(Entry {
                            orig: item.orig.clone(),
                            permit: item.permit,
                            mask: 1 << k,
                            slot: k as u8,
                        });
                        batch.groups[group].push(i);
                        if batch.action_index[k]
                            .insert(item.policy.id().clone(), i)
                            .is_some()
                        {
                            return None;
                        }
                        per_action[k].add(item.policy.clone()).ok()?;
                        action_used[k] = true;
                    }
                }
            }
        }
        for (g, members) in guarded.iter().enumerate() {
            if members.len() < 2 {
                for m in members {
                    any.add(m.policy.clone()).ok()?;
                    any_used = true;
                }
                continue;
            }
            let mut disjunction: Option<Value> = None;
            let mut set = PolicySet::new();
            for m in members {
                let c = m.guard_cond.clone()?;
                disjunction = Some(match disjunction {
                    None => c,
                    Some(d) => json!({ "||": { "left": d, "right": c } }),
                });
                set.add(m.policy.clone()).ok()?;
            }
            let mut id = format!("{INTERNAL}-guard:{g}");
            while base.taken.contains(&id) || batch.any_index.contains_key(&PolicyId::new(&id)) {
                id.push('_');
            }
            let id = PolicyId::new(id);
            let guard = Policy::from_json(
                Some(id.clone()),
                json!({
                    "effect": "forbid",
                    "principal": { "op": "All" },
                    "action": { "op": "All" },
                    "resource": { "op": "All" },
                    "conditions": [{ "kind": "when", "body": disjunction }],
                    "annotations": {},
                }),
            )
            .ok()?;
            any.add(guard).ok()?;
            any_used = true;
            batch.guards.insert(id, Guard { members: set });
        }
        batch.any = any_used.then_some(any);
        for k in 0..3 {
            if action_used[k] {
                batch.per_action[k] = Some(std::mem::replace(&mut per_action[k], PolicySet::new()));
            }
        }
        Some(batch)
    }
}

/// Batches already built, by candidate list. Cleared when it grows past
/// `CAP` (distinct candidate lists are few in practice).
#[derive(Debug, Default)]
pub(crate) struct BatchCache(RwLock<HashMap<Vec<usize>, Arc<Batch>>>);

impl BatchCache {
    const CAP: usize = 4096;

    pub(crate) fn get_or_build(
        &self,
        key: &[usize],
        build: impl FnOnce() -> Option<Batch>,
    ) -> Option<Arc<Batch>> {
        if let Some(b) = self.0.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Some(b.clone());
        }
        let b = Arc::new(build()?);
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::CAP {
            map.clear();
        }
        map.insert(key.to_vec(), b.clone());
        Some(b)
    }
}

impl Clone for BatchCache {
    /// A clone starts empty (the batches are rebuilt on demand).
    fn clone(&self) -> Self {
        BatchCache::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specialise_replaces_only_the_agreement() {
        let mut v = json!({"&&": {
            "left": {"has": {"left": {"Var": "context"}, "attr": "agreement"}},
            "right": {"<": {
                "left": {".": {"left": {"Var": "context"}, "attr": "now"}},
                "right": {".": {"left": {".": {"left": {"Var": "context"}, "attr": "agreement"}}, "attr": "valid_from"}}
            }}
        }});
        specialise(&mut v, "a-1");
        assert_eq!(
            v,
            json!({"&&": {
                "left": {"Value": true},
                "right": {"<": {
                    "left": {".": {"left": {"Var": "context"}, "attr": "now"}},
                    "right": {".": {"left": {"Value": {"__entity": {"type": "Kith::Agreement", "id": "a-1"}}}, "attr": "valid_from"}}
                }}
            }})
        );
        assert!(agreement_free(&v));
    }
}
