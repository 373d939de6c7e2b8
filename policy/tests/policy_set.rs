//! Loading the default policy set, rejecting broken ones, and running the
//! checker over the default test cases.

use std::fs;
use std::path::{Path, PathBuf};

use kith_policy::{Level, PolicyError, PolicySet, RecordFacts, Requester, check};

fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// A scratch copy of the default set to break.
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

fn problems(err: PolicyError) -> String {
    err.to_string()
}

fn social_worker() -> Requester {
    Requester {
        authority_code: "E08000007".into(),
        authority_kind: "council".into(),
        jurisdiction: "england".into(),
        user_id: "sw-3".into(),
        role: "social_worker".into(),
        team: "children's services".into(),
    }
}

fn cpp() -> RecordFacts {
    RecordFacts {
        custodian_code: "E08000003".into(),
        custodian_kind: "council".into(),
        custodian_jurisdiction: "england".into(),
        record_key: "cpp-1".into(),
        relationship_type: "child_protection_plan".into(),
        sensitivity: "normal".into(),
        residency: "uk".into(),
        lawful_basis: "Children Act 1989 s47".into(),
        permitted_purposes: vec!["safeguarding".into()],
        objection: false,
        directive: "none".into(),
    }
}

const JAN_2026: i64 = 1_768_435_200;

#[test]
fn loads_the_default_set() {
    let set = PolicySet::load(&default_dir()).expect("default set loads");
    assert_eq!(set.agreement_count(), 3);
    assert!(set.policy_count() >= 15);
    assert_eq!(set.fingerprint().len(), 64);
    assert_eq!(set.category_of("mental_health"), "health");
    assert!(set.explain("forbid-objection").is_some());
    assert_eq!(
        set.agreement_of("children-safeguarding.detail")
            .map(|a| a.0),
        Some("children-safeguarding")
    );
    let d = set.decide(&social_worker(), &cpp(), "safeguarding", JAN_2026, false);
    assert_eq!(d.level, Level::Detail, "{d:?}");
    assert!(d.reason.contains("Children's safeguarding"), "{}", d.reason);
    // Same files, same fingerprint.
    assert_eq!(
        PolicySet::load(&default_dir()).unwrap().fingerprint(),
        set.fingerprint()
    );
}

#[test]
fn fingerprint_changes_with_any_file() {
    let tmp = copy_of_default();
    let before = PolicySet::load(tmp.path())
        .unwrap()
        .fingerprint()
        .to_string();
    let f = tmp.path().join("default/20-break-glass.cedar");
    let text = fs::read_to_string(&f).unwrap() + "\n// edited\n";
    fs::write(&f, text).unwrap();
    assert_ne!(PolicySet::load(tmp.path()).unwrap().fingerprint(), before);
}

#[test]
fn syntax_error_is_rejected_naming_the_file() {
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("default/40-broken.cedar"),
        "@id(\"broken\")\n@reason(\"x\")\npermit (principal, action, resource)\nwhen { principal.role == };\n",
    )
    .unwrap();
    let err = PolicySet::load(tmp.path()).unwrap_err();
    let text = problems(err);
    assert!(text.contains("40-broken.cedar:4"), "{text}");
    assert!(text.contains("syntax error"), "{text}");
}

#[test]
fn schema_violation_is_rejected_naming_the_file_and_policy() {
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("default/40-typo.cedar"),
        "@id(\"typo\")\n@reason(\"x\")\npermit (principal, action == Kith::Action::\"view_summary\", resource)\nwhen { resource.sensitivty == \"normal\" };\n",
    )
    .unwrap();
    let err = PolicySet::load(tmp.path()).unwrap_err();
    let text = problems(err);
    assert!(text.contains("40-typo.cedar"), "{text}");
    assert!(text.contains("\"typo\" fails schema validation"), "{text}");
}

#[test]
fn missing_annotations_and_unknown_agreement_are_rejected() {
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("default/40-bad.cedar"),
        "permit (principal, action == Kith::Action::\"acknowledge\", resource);\n\
         @id(\"no-reason\")\npermit (principal, action == Kith::Action::\"acknowledge\", resource);\n\
         @id(\"ghost\")\n@reason(\"r\")\n@agreement(\"no-such\")\npermit (principal, action == Kith::Action::\"acknowledge\", resource);\n\
         @id(\"forbid-objection\")\n@reason(\"dup\")\nforbid (principal, action, resource);\n",
    )
    .unwrap();
    let err = PolicySet::load(tmp.path()).unwrap_err();
    assert_eq!(err.problems().len(), 4, "{err}");
    let text = problems(err);
    assert!(text.contains("no @id"), "{text}");
    assert!(text.contains("no @reason"), "{text}");
    assert!(text.contains("\"no-such\""), "{text}");
    assert!(text.contains("already used"), "{text}");
}

#[test]
fn agreement_vocabulary_typo_is_rejected() {
    let tmp = copy_of_default();
    let f = tmp.path().join("agreements.json");
    let text = fs::read_to_string(&f)
        .unwrap()
        .replacen("\"safeguarding\"", "\"safegaurding\"", 1);
    fs::write(&f, text).unwrap();
    let text = problems(PolicySet::load(tmp.path()).unwrap_err());
    assert!(
        text.contains("agreements.json") && text.contains("safegaurding"),
        "{text}"
    );
}

#[test]
fn every_default_test_case_passes() {
    let report = check(&default_dir());
    assert!(report.passed(), "{report}");
    assert!(report.cases_run >= 25, "{report}");
}

#[test]
fn a_wrong_test_case_is_reported() {
    let tmp = copy_of_default();
    fs::write(
        tmp.path().join("tests/zz-wrong.json"),
        r#"{
          "defaults": {},
          "cases": [{
            "name": "deliberately wrong: police see adult social care detail",
            "requester": {"authority_code": "E23000005", "authority_kind": "police", "jurisdiction": "england", "user_id": "pc", "role": "police_officer", "team": "response"},
            "record": {"custodian_code": "E08000003", "custodian_kind": "council", "custodian_jurisdiction": "england", "record_key": "a", "relationship_type": "adult_social_care", "sensitivity": "normal", "residency": "uk", "lawful_basis": "Care Act 2014", "permitted_purposes": ["care_planning"], "objection": false},
            "purpose": "care_planning", "now": "2026-01-15", "expect": "detail"
          }]
        }"#,
    )
    .unwrap();
    let report = check(tmp.path());
    assert!(!report.passed());
    assert_eq!(report.failures.len(), 1, "{report}");
    let f = &report.failures[0];
    assert!(f.case.starts_with("deliberately wrong"));
    assert!(f.expected.starts_with("detail"), "{}", f.expected);
    assert!(f.actual.starts_with("hidden"), "{}", f.actual);
    assert!(
        f.actual
            .contains("no sharing agreement covers purpose care_planning for police"),
        "{}",
        f.actual
    );
}

#[test]
fn check_reports_a_set_that_does_not_load() {
    let tmp = copy_of_default();
    fs::write(tmp.path().join("default/40-broken.cedar"), "permit (").unwrap();
    let report = check(tmp.path());
    assert!(!report.passed());
    assert_eq!(report.cases_run, 0);
    assert!(report.load_error.unwrap().contains("40-broken.cedar"));
}

#[test]
fn evaluation_error_fails_closed() {
    // A request whose custodian shares the requester's code but not its kind
    // cannot be evaluated: nothing is disclosed.
    let set = PolicySet::load(&default_dir()).unwrap();
    let mut rec = cpp();
    rec.custodian_code = social_worker().authority_code;
    rec.custodian_kind = "nhs_trust".into();
    let d = set.decide(&social_worker(), &rec, "safeguarding", JAN_2026, false);
    assert_eq!(d.level, Level::Hidden);
    assert_eq!(d.forbidding, vec!["error:request".to_string()]);
}

#[test]
fn own_authority_record_is_decided() {
    let set = PolicySet::load(&default_dir()).unwrap();
    let mut rec = cpp();
    rec.custodian_code = social_worker().authority_code;
    let d = set.decide(&social_worker(), &rec, "safeguarding", JAN_2026, false);
    assert_eq!(d.level, Level::Detail, "{d:?}");
}

#[test]
fn agreements_covering_depend_on_requester_kind_and_purpose_only() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let set = kith_policy::PolicySet::load(&dir).unwrap();
    let requester = |kind: &str| kith_policy::Requester {
        authority_code: "X1".into(),
        authority_kind: kind.into(),
        jurisdiction: "england".into(),
        user_id: "u".into(),
        role: "police_officer".into(),
        team: String::new(),
    };
    let ids = |kind: &str, purpose: &str| -> Vec<String> {
        set.agreements_covering(&requester(kind), purpose)
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect()
    };
    assert_eq!(ids("police", "care_planning"), Vec::<String>::new());
    assert_eq!(
        ids("police", "emergency"),
        ["children-safeguarding", "emergency-services"]
    );
    assert_eq!(ids("council", "care_planning"), ["adult-care-integration"]);
}
