//! Who may read the audit log: `PolicySet::audit_scope` on the default set,
//! failing closed, and audit cases in the checker.

use std::fs;
use std::path::{Path, PathBuf};

use kith_policy::{AuditScope, PolicySet, Requester, check};

fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn copy_of_default() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.path().is_dir() {
                copy(&e.path(), &target);
            } else {
                fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    copy(&default_dir(), tmp.path());
    tmp
}

fn who(code: &str, kind: &str, role: &str) -> Requester {
    Requester {
        authority_code: code.into(),
        authority_kind: kind.into(),
        jurisdiction: "england".into(),
        user_id: "u1".into(),
        role: role.into(),
        team: "information governance".into(),
    }
}

#[test]
fn default_set_gives_each_role_its_scope() {
    let set = PolicySet::load(&default_dir()).unwrap();
    let dpo = set.audit_scope(&who("E08000003", "council", "auditor"));
    assert_eq!(dpo.scope, AuditScope::OwnAuthority, "{dpo:?}");
    assert_eq!(dpo.permitting, vec!["audit-own-authority".to_string()]);
    assert!(dpo.forbidding.is_empty(), "{dpo:?}");
    assert!(dpo.reason.contains("E08000003"), "{}", dpo.reason);

    let fed = set.audit_scope(&who("KITHFED", "federation", "federation_auditor"));
    assert_eq!(fed.scope, AuditScope::Federation, "{fed:?}");
    assert_eq!(fed.permitting, vec!["audit-federation".to_string()]);

    for (code, kind, role) in [
        ("E08000003", "council", "federation_auditor"),
        ("R0A", "nhs_trust", "safeguarding_lead"),
        ("E23000005", "police", "police_officer"),
        ("KITHFED", "federation", "social_worker"),
        ("E08000003", "council", "no_such_role"),
    ] {
        let a = set.audit_scope(&who(code, kind, role));
        assert_eq!(a.scope, AuditScope::None, "{role} at {kind}: {a:?}");
        assert!(a.permitting.is_empty() && a.forbidding.is_empty(), "{a:?}");
        assert!(a.reason.starts_with("no audit access"), "{}", a.reason);
    }
    // An auditor at the oversight body audits the body's own entries.
    let a = set.audit_scope(&who("KITHFED", "federation", "auditor"));
    assert_eq!(a.scope, AuditScope::OwnAuthority);
}

#[test]
fn scope_words_round_trip() {
    for s in [
        AuditScope::None,
        AuditScope::OwnAuthority,
        AuditScope::Federation,
    ] {
        assert_eq!(s.as_str().parse::<AuditScope>(), Ok(s));
        assert_eq!(s.to_string(), s.as_str());
    }
    assert!("everything".parse::<AuditScope>().is_err());
    assert!(AuditScope::None < AuditScope::OwnAuthority);
    assert!(AuditScope::OwnAuthority < AuditScope::Federation);
}

#[test]
fn a_forbid_narrows_and_its_advice_is_the_reason() {
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("default/41-suspended.cedar"),
        r#"@id("forbid-suspended-audit")
@reason("suspended staff do not audit")
@advice("ask your information governance lead")
forbid (
  principal,
  action in [Kith::Action::"audit_federation", Kith::Action::"audit_own_authority"],
  resource
)
when { principal.team == "suspended" };

@id("forbid-federation-audit-outside-england")
@reason("test: federation audit only from England")
forbid (principal, action == Kith::Action::"audit_federation", resource)
when { principal.authority.jurisdiction != "england" };

@id("permit-federation-auditor-own")
@reason("test: a federation auditor also audits its own body")
permit (principal, action == Kith::Action::"audit_own_authority", resource)
when { principal.role == "federation_auditor" && resource == principal.authority };
"#,
    )
    .unwrap();
    let set = PolicySet::load(tmp.path()).unwrap();
    let mut r = who("E08000003", "council", "auditor");
    r.team = "suspended".into();
    let a = set.audit_scope(&r);
    assert_eq!(a.scope, AuditScope::None, "{a:?}");
    assert_eq!(a.forbidding, vec!["forbid-suspended-audit".to_string()]);
    assert_eq!(a.reason, "ask your information governance lead");

    // Federation scope forbidden, own authority still permitted: the
    // forbid that kept it below federation is listed.
    let mut f = who("KITHFED", "federation", "federation_auditor");
    f.jurisdiction = "wales".into();
    let a = set.audit_scope(&f);
    assert_eq!(a.scope, AuditScope::OwnAuthority, "{a:?}");
    assert_eq!(
        a.permitting,
        vec!["permit-federation-auditor-own".to_string()]
    );
    assert_eq!(
        a.forbidding,
        vec!["forbid-federation-audit-outside-england".to_string()]
    );
}

#[test]
fn an_erring_rule_fails_closed() {
    let tmp = copy_of_default();
    // Errs (overflow) at the oversight body, only for audit_own_authority.
    fs::write(
        tmp.path().join("default/41-overflow.cedar"),
        r#"@id("overflow-own-audit")
@reason("errs")
forbid (principal, action == Kith::Action::"audit_own_authority", resource)
when { principal.authority.kind == "federation" && 1000000000000 * 1000000000000 > 0 };
"#,
    )
    .unwrap();
    let set = PolicySet::load(tmp.path()).unwrap();
    // The federation permit holds, but a rule erred: no access at all.
    let a = set.audit_scope(&who("KITHFED", "federation", "federation_auditor"));
    assert_eq!(a.scope, AuditScope::None, "{a:?}");
    assert_eq!(a.forbidding, vec!["error:overflow-own-audit".to_string()]);
    assert!(a.permitting.is_empty());
    assert!(a.reason.contains("could not be evaluated"), "{}", a.reason);
    // Elsewhere the rule does not err.
    let a = set.audit_scope(&who("E08000003", "council", "auditor"));
    assert_eq!(a.scope, AuditScope::OwnAuthority, "{a:?}");
}

#[test]
fn a_set_without_audit_actions_loads_and_gives_no_audit_access() {
    let tmp = copy_of_default();
    let schema = tmp.path().join("kith.cedarschema");
    let text = fs::read_to_string(&schema).unwrap();
    let cut = text.find("  // Reading the audit log.").unwrap();
    fs::write(&schema, format!("{}}}\n", &text[..cut])).unwrap();
    fs::remove_file(tmp.path().join("default/40-audit.cedar")).unwrap();
    // The schema's later declarations (subscribe) went with the cut: so do
    // the rules naming them.
    fs::remove_file(tmp.path().join("default/50-subscriptions.cedar")).unwrap();
    let set = PolicySet::load(tmp.path()).expect("a set written before audit actions loads");
    let a = set.audit_scope(&who("E08000003", "council", "auditor"));
    assert_eq!(a.scope, AuditScope::None);
    assert_eq!(a.forbidding, vec!["error:request".to_string()]);
}

#[test]
fn a_rule_without_action_scope_is_not_an_audit_rule() {
    // Valid for disclosure and data location (it reads a record attribute),
    // so it still loads; it neither grants nor refuses audit access.
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("default/41-unscoped.cedar"),
        r#"@id("unscoped-permit")
@reason("test")
permit (principal, action, resource)
when { resource.category == "housing" };

@id("unscoped-forbid")
@reason("test")
forbid (principal, action, resource)
when { resource.sensitivity != "anything" };
"#,
    )
    .unwrap();
    let set = PolicySet::load(tmp.path()).unwrap();
    assert_eq!(
        set.audit_scope(&who("E08000003", "council", "auditor"))
            .scope,
        AuditScope::OwnAuthority
    );
    assert_eq!(
        set.audit_scope(&who("R0A", "nhs_trust", "nurse")).scope,
        AuditScope::None
    );
}

#[test]
fn audit_rules_are_validated_and_may_not_belong_to_an_agreement() {
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("default/41-bad-audit.cedar"),
        r#"@id("audit-typo")
@reason("reads a record attribute of an authority")
permit (principal, action == Kith::Action::"audit_own_authority", resource)
when { resource.category == "children" };

@id("audit-under-agreement")
@agreement("children-safeguarding")
@reason("audit rules do not belong to agreements")
permit (principal, action == Kith::Action::"audit_own_authority", resource)
when { principal.role == "auditor" };
"#,
    )
    .unwrap();
    let err = PolicySet::load(tmp.path()).unwrap_err().to_string();
    assert!(
        err.contains("\"audit-typo\" fails schema validation"),
        "{err}"
    );
    assert!(
        err.contains("\"audit-under-agreement\" names an audit action and has @agreement"),
        "{err}"
    );
}

#[test]
fn checker_runs_audit_cases_and_reports_a_wrong_one() {
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("tests/zz-audit-wrong.json"),
        r#"{
          "defaults": {"requester": {"authority_code": "R0A", "authority_kind": "nhs_trust", "jurisdiction": "england", "user_id": "n", "role": "nurse", "team": "ward"}},
          "cases": [
            {"name": "deliberately wrong: a nurse audits the trust", "expect_scope": "own_authority"},
            {"name": "both kinds of expectation", "expect_scope": "none", "expect": "hidden"},
            {"name": "an unknown scope", "expect_scope": "everything"},
            {"name": "a nurse does not audit", "expect_scope": "none", "expect_permitting": []}
          ]
        }"#,
    )
    .unwrap();
    let report = check(tmp.path());
    assert_eq!(report.failures.len(), 3, "{report}");
    let f = &report.failures[0];
    assert!(f.case.starts_with("deliberately wrong"), "{report}");
    assert!(
        f.expected.starts_with("audit scope own_authority"),
        "{}",
        f.expected
    );
    assert!(f.actual.starts_with("audit scope none"), "{}", f.actual);
    assert!(report.failures[1].actual.contains("both given"), "{report}");
    assert!(
        report.failures[2].actual.contains("unknown audit scope"),
        "{report}"
    );
    // The default set's own audit cases pass.
    let report = check(&default_dir());
    assert!(report.passed(), "{report}");
}

fn council_user(user_id: &str, role: &str) -> Requester {
    Requester {
        authority_code: "E08000003".into(),
        authority_kind: "council".into(),
        jurisdiction: "england".into(),
        user_id: user_id.into(),
        role: role.into(),
        team: "t".into(),
    }
}

#[test]
fn a_review_is_the_authoritys_auditors_never_the_accessors_and_fails_closed_without_the_action() {
    let set = PolicySet::load(&default_dir()).unwrap();
    let dpo = council_user("dpo-1", "auditor");
    let d = set.may_review_break_glass(&dpo, &council_user("sw-1", "social_worker"));
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.permitting, ["review-break-glass-own-authority"]);
    let own = set.may_review_break_glass(&dpo, &dpo);
    assert!(!own.allowed, "{own:?}");
    assert_eq!(own.forbidding, ["forbid-review-own-break-glass"]);
    assert!(own.reason.contains("another auditor"), "{}", own.reason);

    // A set whose schema has no review action (and so no review rules)
    // loads, and nobody may review.
    let tmp = copy_of_default();
    let schema = tmp.path().join("kith.cedarschema");
    let text = fs::read_to_string(&schema).unwrap();
    let start = text.find("  action review_break_glass").unwrap();
    let end = start + text[start..].find("};").unwrap() + 2;
    fs::write(&schema, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let rules = tmp.path().join("default/40-audit.cedar");
    let text = fs::read_to_string(&rules).unwrap();
    let cut = text.find("// Break-glass review").unwrap();
    fs::write(&rules, &text[..cut]).unwrap();
    fs::remove_file(tmp.path().join("tests/break-glass-review.json")).unwrap();
    let set = PolicySet::load(tmp.path()).unwrap();
    let d = set.may_review_break_glass(&dpo, &council_user("sw-1", "social_worker"));
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.forbidding, ["error:request"]);
    assert_eq!(set.audit_scope(&dpo).scope, AuditScope::OwnAuthority);
}

#[test]
fn a_set_without_the_subscribe_action_loads_and_refuses_every_subscription() {
    let tmp = copy_of_default();
    let schema = tmp.path().join("kith.cedarschema");
    let text = fs::read_to_string(&schema).unwrap();
    let cut = text.find("  // A subscription asked for").unwrap();
    fs::write(&schema, format!("{}}}\n", &text[..cut])).unwrap();
    fs::remove_file(tmp.path().join("default/50-subscriptions.cedar")).unwrap();
    let set = PolicySet::load(tmp.path()).expect("a set written before subscriptions loads");
    let d = set.may_subscribe(
        &who("R0A", "nhs_trust", "ed_clinician"),
        "direct_care",
        0,
        true,
    );
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.forbidding, vec!["error:request".to_string()]);
}

#[test]
fn subscribing_is_decided_by_the_policy_set_not_by_the_fact_alone() {
    // An IG lead narrows subscriptions to safeguarding: a rule in the set,
    // not a change to the hub, refuses direct care even with a relationship.
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("default/51-safeguarding-only.cedar"),
        r#"@id("subscribe-safeguarding-only")
@reason("test")
forbid (principal, action == Kith::Action::"subscribe", resource)
unless { context.purpose == "safeguarding" };
"#,
    )
    .unwrap();
    let set = PolicySet::load(tmp.path()).unwrap();
    let who = who("R0A", "nhs_trust", "ed_clinician");
    let d = set.may_subscribe(&who, "direct_care", 0, true);
    assert!(!d.allowed);
    assert_eq!(
        d.forbidding,
        vec!["subscribe-safeguarding-only".to_string()]
    );
    let d = set.may_subscribe(&who, "safeguarding", 0, true);
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.permitting, vec!["subscribe-while-involved".to_string()]);
}
