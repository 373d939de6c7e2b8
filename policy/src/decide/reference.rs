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
    let candidates = set
        .index
        .candidates(&set.agreements, requester, record, category, purpose);
    let cand: Vec<&Agreement> = candidates.iter().map(|&i| &set.agreements[i]).collect();
    let fail = |what: String| Decision {
        level: Level::Hidden,
        permitting: Vec::new(),
        forbidding: vec!["error:request".into()],
        reason: format!("the request could not be evaluated ({what}); nothing is disclosed"),
    };
    let entities = match request_entities(&set.names, requester, record, category, &cand, None) {
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
        // Roles are bound to authority kinds (05-role-kinds.cedar): mostly
        // ask as a kind that holds the role, so that every level is still
        // reached, and sometimes as any kind.
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
