//! Mapping the plain inputs onto Cedar: entity ids, the per-request entity
//! store (user, authorities, record, candidate agreements) and contexts.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression,
};

use crate::agreement::Agreement;
use crate::input::{RecordFacts, Requester};

/// The disclosure actions, highest level first.
pub(crate) const DISCLOSURE_ACTIONS: [&str; 3] = ["view_detail", "view_summary", "acknowledge"];

/// The audit actions, widest scope first.
pub(crate) const AUDIT_ACTIONS: [&str; 2] = ["audit_federation", "audit_own_authority"];

/// The break-glass review action (validated and evaluated with the audit
/// actions: its resource is not a record).
pub(crate) const REVIEW_ACTION: &str = "review_break_glass";

/// The subscribe action (validated and evaluated with the audit actions:
/// its resource is not a record).
pub(crate) const SUBSCRIBE_ACTION: &str = "subscribe";

/// Pre-parsed Cedar names (parsing them per request would cost time).
#[derive(Debug, Clone)]
pub(crate) struct Names {
    authority: EntityTypeName,
    user: EntityTypeName,
    record: EntityTypeName,
    agreement: EntityTypeName,
    hub: EntityTypeName,
    federation: EntityTypeName,
    break_glass_access: EntityTypeName,
    subscription: EntityTypeName,
    /// view_detail, view_summary, acknowledge.
    pub disclosure: [EntityUid; 3],
    pub hold_detail: EntityUid,
    /// audit_federation, audit_own_authority.
    pub audit: [EntityUid; 2],
    /// review_break_glass.
    pub review: EntityUid,
    /// subscribe.
    pub subscribe: EntityUid,
}

impl Names {
    pub(crate) fn new() -> Names {
        let ty = |s: &str| EntityTypeName::from_str(s).expect("constant type name parses");
        let action =
            |s: &str| EntityUid::from_type_name_and_id(ty("Kith::Action"), EntityId::new(s));
        Names {
            authority: ty("Kith::Authority"),
            user: ty("Kith::User"),
            record: ty("Kith::Record"),
            agreement: ty("Kith::Agreement"),
            hub: ty("Kith::Hub"),
            federation: ty("Kith::Federation"),
            break_glass_access: ty("Kith::BreakGlassAccess"),
            subscription: ty("Kith::Subscription"),
            disclosure: DISCLOSURE_ACTIONS.map(action),
            hold_detail: action("hold_detail"),
            audit: AUDIT_ACTIONS.map(action),
            review: action(REVIEW_ACTION),
            subscribe: action(SUBSCRIBE_ACTION),
        }
    }

    /// Every action the engine asks about (an action scope naming only
    /// these is applied exactly; anything else may be a group).
    pub(crate) fn known_actions(&self) -> Vec<EntityUid> {
        self.disclosure
            .iter()
            .chain([&self.hold_detail])
            .chain(&self.audit)
            .chain([&self.review, &self.subscribe])
            .cloned()
            .collect()
    }

    fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    pub(crate) fn authority(&self, code: &str) -> EntityUid {
        Self::uid(&self.authority, code)
    }
    pub(crate) fn agreement(&self, id: &str) -> EntityUid {
        Self::uid(&self.agreement, id)
    }
    pub(crate) fn user(&self, r: &Requester) -> EntityUid {
        Self::uid(&self.user, &format!("{}/{}", r.authority_code, r.user_id))
    }
    pub(crate) fn record(&self, r: &RecordFacts) -> EntityUid {
        Self::uid(
            &self.record,
            &format!("{}/{}", r.custodian_code, r.record_key),
        )
    }
    pub(crate) fn hub(&self, jurisdiction: &str) -> EntityUid {
        Self::uid(&self.hub, jurisdiction)
    }
    pub(crate) fn federation(&self, id: &str) -> EntityUid {
        Self::uid(&self.federation, id)
    }
    pub(crate) fn break_glass_access(&self, id: &str) -> EntityUid {
        Self::uid(&self.break_glass_access, id)
    }
    pub(crate) fn subscription(&self, id: &str) -> EntityUid {
        Self::uid(&self.subscription, id)
    }
    /// Whether `a` is an audit action, the review action or the subscribe
    /// action (rules naming one are validated against the whole schema and
    /// evaluated apart).
    pub(crate) fn is_audit_like(&self, a: &EntityUid) -> bool {
        self.audit.contains(a) || a == &self.review || a == &self.subscribe
    }
}

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_string())
}

pub(crate) fn authority_entity(
    uid: EntityUid,
    kind: &str,
    jurisdiction: &str,
) -> Result<Entity, String> {
    let attrs = HashMap::from([
        ("kind".to_string(), s(kind)),
        ("jurisdiction".to_string(), s(jurisdiction)),
    ]);
    Entity::new(uid, attrs, HashSet::new()).map_err(|e| e.to_string())
}

pub(crate) fn record_entity(
    names: &Names,
    record: &RecordFacts,
    category: &str,
) -> Result<Entity, String> {
    let attrs = HashMap::from([
        (
            "custodian".to_string(),
            RestrictedExpression::new_entity_uid(names.authority(&record.custodian_code)),
        ),
        (
            "relationship_type".to_string(),
            s(&record.relationship_type),
        ),
        ("category".to_string(), s(category)),
        ("sensitivity".to_string(), s(&record.sensitivity)),
        ("residency".to_string(), s(&record.residency)),
        ("lawful_basis".to_string(), s(&record.lawful_basis)),
        (
            "permitted_purposes".to_string(),
            RestrictedExpression::new_set(record.permitted_purposes.iter().map(|p| s(p))),
        ),
        (
            "objection".to_string(),
            RestrictedExpression::new_bool(record.objection),
        ),
        ("directive".to_string(), s(&record.directive)),
    ]);
    Entity::new(names.record(record), attrs, HashSet::new()).map_err(|e| e.to_string())
}

/// The requester's side of a disclosure decision's entity store (their
/// authority and user), built once per query.
#[derive(Debug, Clone)]
pub(crate) struct RequesterEntities {
    authority: Result<Entity, String>,
    user: Result<Entity, String>,
    /// Both, as a store to extend per record (`None` when either failed,
    /// or when built for one record only).
    store: Option<Entities>,
}

impl RequesterEntities {
    pub(crate) fn new(names: &Names, requester: &Requester) -> RequesterEntities {
        let req_auth = names.authority(&requester.authority_code);
        let authority = authority_entity(
            req_auth.clone(),
            &requester.authority_kind,
            &requester.jurisdiction,
        );
        let user_attrs = HashMap::from([
            ("role".to_string(), s(&requester.role)),
            ("team".to_string(), s(&requester.team)),
            (
                "authority".to_string(),
                RestrictedExpression::new_entity_uid(req_auth.clone()),
            ),
        ]);
        let user = Entity::new(names.user(requester), user_attrs, HashSet::from([req_auth]))
            .map_err(|e| e.to_string());
        RequesterEntities {
            authority,
            user,
            store: None,
        }
    }

    /// The requester's authority and user entities (the first failure).
    pub(crate) fn parts(&self) -> Result<(Entity, Entity), String> {
        Ok((self.authority.clone()?, self.user.clone()?))
    }

    /// As `new`, with the two entities also kept as a store, for deciding
    /// several records: extending it per record is cheaper than building
    /// the whole store each time.
    pub(crate) fn shared(names: &Names, requester: &Requester) -> RequesterEntities {
        let mut r = RequesterEntities::new(names, requester);
        if let (Ok(a), Ok(u)) = (&r.authority, &r.user) {
            r.store = Entities::from_entities([a.clone(), u.clone()], None).ok();
        }
        r
    }
}

/// The entity store for one disclosure decision: the requester's entities,
/// the custodian, the record and the candidate agreements.
pub(crate) fn record_entities<'a>(
    names: &Names,
    requester_entities: &RequesterEntities,
    requester: &Requester,
    record: &RecordFacts,
    category: &str,
    agreements: impl ExactSizeIterator<Item = &'a Agreement>,
    schema: Option<&cedar_policy::Schema>,
) -> Result<Entities, String> {
    // Checked (and failing) in the same order as when everything is built
    // per record, so a failure reads the same either way.
    let shared = requester_entities
        .store
        .as_ref()
        .filter(|_| schema.is_none());
    let mut list = Vec::with_capacity(4 + agreements.len());
    let authority = requester_entities
        .authority
        .as_ref()
        .map_err(Clone::clone)?;
    if shared.is_none() {
        list.push(authority.clone());
    }
    if record.custodian_code != requester.authority_code {
        list.push(authority_entity(
            names.authority(&record.custodian_code),
            &record.custodian_kind,
            &record.custodian_jurisdiction,
        )?);
    } else if record.custodian_kind != requester.authority_kind
        || record.custodian_jurisdiction != requester.jurisdiction
    {
        return Err("the custodian and the requester share an authority code but not its kind or jurisdiction".into());
    }
    let user = requester_entities.user.as_ref().map_err(Clone::clone)?;
    if shared.is_none() {
        list.push(user.clone());
    }
    list.push(record_entity(names, record, category)?);
    list.extend(agreements.map(|a| a.entity.clone()));
    match shared {
        // The same entities, so the same store (and transitive closure).
        Some(store) => store.clone().add_entities(list, None),
        None => Entities::from_entities(list, schema),
    }
    .map_err(|e| e.to_string())
}

/// Stores of requester, custodian and candidate agreements met so far in a
/// query, by (custodian code, kind, jurisdiction, candidates).
pub(crate) type StoreCache = std::sync::Mutex<Vec<(StoreKey, Entities)>>;
pub(crate) type StoreKey = (String, String, String, Vec<usize>);

/// As [`record_entities`] for the candidate agreements `candidates` (indices
/// into `agreements`), reusing, within a query, the store of the
/// requester, the custodian and those agreements: only the record is added
/// per record. The same store, and the same failures, as
/// [`record_entities`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn cached_record_entities(
    names: &Names,
    requester_entities: &RequesterEntities,
    requester: &Requester,
    record: &RecordFacts,
    category: &str,
    candidates: &[usize],
    agreements: &[Agreement],
    cache: &StoreCache,
) -> Result<Entities, String> {
    const CAP: usize = 32;
    let Some(shared) = &requester_entities.store else {
        return record_entities(
            names,
            requester_entities,
            requester,
            record,
            category,
            candidates.iter().map(|&i| &agreements[i]),
            None,
        );
    };
    // With a shared store, the requester's authority and user were built.
    let differs = record.custodian_code != requester.authority_code;
    if !differs
        && (record.custodian_kind != requester.authority_kind
            || record.custodian_jurisdiction != requester.jurisdiction)
    {
        return Err("the custodian and the requester share an authority code but not its kind or jurisdiction".into());
    }
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let found = cache.iter().position(|((code, kind, jurisdiction, c), _)| {
        *code == record.custodian_code
            && *kind == record.custodian_kind
            && *jurisdiction == record.custodian_jurisdiction
            && c == candidates
    });
    let store = match found {
        Some(i) => cache[i].1.clone(),
        None => {
            let mut list = Vec::with_capacity(1 + candidates.len());
            if differs {
                list.push(authority_entity(
                    names.authority(&record.custodian_code),
                    &record.custodian_kind,
                    &record.custodian_jurisdiction,
                )?);
            }
            // As `record_entities` would fail for the record itself.
            let rec = record_entity(names, record, category)?;
            list.extend(candidates.iter().map(|&i| agreements[i].entity.clone()));
            let store = shared
                .clone()
                .add_entities(list, None)
                .map_err(|e| e.to_string())?;
            if cache.len() >= CAP {
                cache.clear();
            }
            cache.push((
                (
                    record.custodian_code.clone(),
                    record.custodian_kind.clone(),
                    record.custodian_jurisdiction.clone(),
                    candidates.to_vec(),
                ),
                store.clone(),
            ));
            drop(cache);
            return store.add_entities([rec], None).map_err(|e| e.to_string());
        }
    };
    drop(cache);
    let rec = record_entity(names, record, category)?;
    store.add_entities([rec], None).map_err(|e| e.to_string())
}

/// The entity store for one disclosure decision, built from scratch.
pub(crate) fn request_entities(
    names: &Names,
    requester: &Requester,
    record: &RecordFacts,
    category: &str,
    agreements: &[&Agreement],
    schema: Option<&cedar_policy::Schema>,
) -> Result<Entities, String> {
    record_entities(
        names,
        &RequesterEntities::new(names, requester),
        requester,
        record,
        category,
        agreements.iter().copied(),
        schema,
    )
}

/// The entity store for one data-location decision.
pub(crate) fn hold_entities(
    names: &Names,
    record: &RecordFacts,
    category: &str,
    hub_jurisdiction: &str,
    schema: Option<&cedar_policy::Schema>,
) -> Result<Entities, String> {
    let hub = Entity::new(
        names.hub(hub_jurisdiction),
        HashMap::from([("jurisdiction".to_string(), s(hub_jurisdiction))]),
        HashSet::new(),
    )
    .map_err(|e| e.to_string())?;
    let custodian = authority_entity(
        names.authority(&record.custodian_code),
        &record.custodian_kind,
        &record.custodian_jurisdiction,
    )?;
    let rec = record_entity(names, record, category)?;
    Entities::from_entities([hub, custodian, rec], schema).map_err(|e| e.to_string())
}

/// The query context, optionally with one candidate agreement.
pub(crate) fn query_context(
    purpose: &str,
    now: i64,
    break_glass: bool,
    agreement: Option<&EntityUid>,
) -> Result<Context, String> {
    let mut pairs = vec![
        ("purpose".to_string(), s(purpose)),
        ("now".to_string(), RestrictedExpression::new_long(now)),
        (
            "break_glass".to_string(),
            RestrictedExpression::new_bool(break_glass),
        ),
    ];
    if let Some(a) = agreement {
        pairs.push((
            "agreement".to_string(),
            RestrictedExpression::new_entity_uid(a.clone()),
        ));
    }
    Context::from_pairs(pairs).map_err(|e| e.to_string())
}
