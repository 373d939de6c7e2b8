//! The policy checker: load a set strictly and run every test case in its
//! `tests/` folder (`kith-hub policy check [DIR]` calls [`check`]).
//!
//! A test file is JSON: `{"defaults": {..}, "cases": [{..}, ..]}`. Each case
//! has a `name`, optional `requester` and `record` (merged field by field
//! over the defaults), `purpose`, `now` (a date, UTC time or epoch seconds),
//! `break_glass`, and `expect`: `detail`, `summary`, `withheld` or `hidden`
//! for a disclosure case, or `hold` / `no_hold` (with `hub_jurisdiction`)
//! for a data-location case. An audit-access case has `expect_scope`
//! (`federation`, `own_authority` or `none`) instead of `expect`, and needs
//! only a `requester`. A break-glass review case has `expect_review`
//! (`allowed` or `refused`), a `requester` (the reviewer) and an
//! `accessor` (the user who broke glass: `user_id`, and optionally `role`,
//! `team` and `authority_code`, `authority_kind`, `jurisdiction`, each
//! taken from the requester when left out). A subscribe case has
//! `expect_subscribe` (`allowed` or `refused`), a `requester` (the
//! subscribing user), `purpose`, `now` and `holds_relationship` (whether
//! the subscriber authority holds a current relationship record of its own
//! for the person). `expect_permitting` / `expect_forbidding`, when
//! given, must equal the determining policy ids (in any order).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::audit::AuditScope;
use crate::decision::Level;
use crate::input::{RecordFacts, Requester};
use crate::policy_set::PolicySet;
use crate::time::parse_time;

/// One case that did not give what it expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    pub file: PathBuf,
    pub case: String,
    pub expected: String,
    pub actual: String,
}

/// What [`check`] found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub dir: PathBuf,
    /// Set when the policy set itself failed to load (no case was run).
    pub load_error: Option<String>,
    /// Fingerprint of the loaded set.
    pub fingerprint: Option<String>,
    pub cases_run: usize,
    pub failures: Vec<CaseFailure>,
}

impl CheckReport {
    /// The set loaded and every case passed.
    pub fn passed(&self) -> bool {
        self.load_error.is_none() && self.failures.is_empty() && self.cases_run > 0
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.load_error {
            return write!(
                f,
                "FAIL {}: the policy set does not load\n{e}",
                self.dir.display()
            );
        }
        for x in &self.failures {
            writeln!(
                f,
                "FAIL {} :: {}\n  expected: {}\n  actual:   {}",
                x.file.display(),
                x.case,
                x.expected,
                x.actual
            )?;
        }
        let verdict = if self.passed() { "ok" } else { "FAILED" };
        write!(
            f,
            "{verdict}: {} case(s) run, {} failed; policy set {} fingerprint {}",
            self.cases_run,
            self.failures.len(),
            self.dir.display(),
            self.fingerprint.as_deref().unwrap_or("-")
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(rename = "_comment", default)]
    _comment: Option<Value>,
    #[serde(default)]
    defaults: Map<String, Value>,
    cases: Vec<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    #[serde(default)]
    requester: Option<Requester>,
    #[serde(default)]
    record: Option<RecordFacts>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    now: Option<Value>,
    #[serde(default)]
    break_glass: bool,
    #[serde(default)]
    hub_jurisdiction: Option<String>,
    #[serde(default)]
    expect: Option<String>,
    /// For an audit-access case: `federation`, `own_authority` or `none`.
    #[serde(default)]
    expect_scope: Option<String>,
    /// For a break-glass review case: `allowed` or `refused`.
    #[serde(default)]
    expect_review: Option<String>,
    /// For a break-glass review case: who broke glass.
    #[serde(default)]
    accessor: Option<AccessorCase>,
    /// For a subscribe case: `allowed` or `refused`.
    #[serde(default)]
    expect_subscribe: Option<String>,
    /// For a subscribe case: the subscriber holds a current relationship
    /// record of its own for the person.
    #[serde(default)]
    holds_relationship: bool,
    #[serde(default)]
    expect_permitting: Option<Vec<String>>,
    #[serde(default)]
    expect_forbidding: Option<Vec<String>>,
}

/// The user who broke glass, in a review case; what is left out is the
/// reviewer's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessorCase {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    authority_code: Option<String>,
    #[serde(default)]
    authority_kind: Option<String>,
    #[serde(default)]
    jurisdiction: Option<String>,
}

impl AccessorCase {
    fn requester(&self, reviewer: &Requester) -> Requester {
        let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
        Requester {
            authority_code: or(&self.authority_code, &reviewer.authority_code),
            authority_kind: or(&self.authority_kind, &reviewer.authority_kind),
            jurisdiction: or(&self.jurisdiction, &reviewer.jurisdiction),
            user_id: self.user_id.clone(),
            role: or(&self.role, &reviewer.role),
            team: or(&self.team, &reviewer.team),
        }
    }
}

/// Defaults then case; nested objects (requester, record) merged per field.
fn merge(defaults: &Map<String, Value>, case: &Map<String, Value>) -> Map<String, Value> {
    let mut out = defaults.clone();
    for (k, v) in case {
        match (out.get_mut(k), v) {
            (Some(Value::Object(base)), Value::Object(over)) => {
                for (k2, v2) in over {
                    base.insert(k2.clone(), v2.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn now_of(v: &Option<Value>) -> Result<i64, String> {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("now {n} is not whole seconds")),
        Some(Value::String(s)) => parse_time(s),
        Some(other) => Err(format!("now {other} is neither a date nor epoch seconds")),
        None => Err("the case has no `now`".into()),
    }
}

fn same_ids(expected: &Option<Vec<String>>, actual: &[String]) -> bool {
    expected.as_ref().is_none_or(|e| {
        let mut e = e.clone();
        e.sort();
        e.dedup();
        e == actual
    })
}

/// Runs one case; `Err((expected, actual))` when it fails.
fn run_case(set: &PolicySet, case: &Case) -> Result<(), (String, String)> {
    let ids = |p: &[String], f: &[String]| format!("permitting {p:?}, forbidding {f:?}");
    let want_ids = format!(
        "permitting {}, forbidding {}",
        case.expect_permitting
            .as_ref()
            .map_or("(any)".into(), |v| format!("{v:?}")),
        case.expect_forbidding
            .as_ref()
            .map_or("(any)".into(), |v| format!("{v:?}"))
    );
    if let Some(subscribe) = &case.expect_subscribe {
        if case.expect.is_some() || case.expect_scope.is_some() || case.expect_review.is_some() {
            return Err((
                "expect_subscribe alone (a subscribe case)".into(),
                "another expect given too".into(),
            ));
        }
        return run_subscribe_case(set, case, subscribe, &want_ids);
    }
    let expect = match (&case.expect, &case.expect_scope, &case.expect_review) {
        (Some(e), None, None) => e.as_str(),
        (None, Some(scope), None) => return run_audit_case(set, case, scope, &want_ids),
        (None, None, Some(review)) => return run_review_case(set, case, review, &want_ids),
        (None, None, None) => {
            return Err((
                "expect (or expect_scope for an audit case, expect_review for a break-glass review case)".into(),
                "none given".into(),
            ));
        }
        _ => {
            return Err((
                "one of expect (a disclosure or data-location case), expect_scope (an audit case) or expect_review (a break-glass review case)".into(),
                "both given".into(),
            ));
        }
    };
    let record = case
        .record
        .as_ref()
        .ok_or_else(|| ("a record".to_string(), "none given".to_string()))?;
    let words = set.vocabulary_problems(case.requester.as_ref(), Some(record));
    if !words.is_empty() {
        return Err((
            format!("case {:?} to use the vocabulary", case.name),
            words.join("; "),
        ));
    }
    match expect {
        "hold" | "no_hold" => {
            let hub = case.hub_jurisdiction.as_deref().ok_or_else(|| {
                (
                    "a hub_jurisdiction for a hold case".to_string(),
                    "none given".to_string(),
                )
            })?;
            let d = set.may_hold_at_hub(record, hub);
            let got = if d.allowed { "hold" } else { "no_hold" };
            if got != expect
                || !same_ids(&case.expect_permitting, &d.permitting)
                || !same_ids(&case.expect_forbidding, &d.forbidding)
            {
                return Err((
                    format!("{expect} ({want_ids})"),
                    format!("{got} ({})", ids(&d.permitting, &d.forbidding)),
                ));
            }
            Ok(())
        }
        other => {
            let want: Level = other
                .parse()
                .map_err(|e: String| ("a valid expect".to_string(), e))?;
            let requester = case
                .requester
                .as_ref()
                .ok_or_else(|| ("a requester".to_string(), "none given".to_string()))?;
            let purpose = case
                .purpose
                .as_deref()
                .ok_or_else(|| ("a purpose".to_string(), "none given".to_string()))?;
            let now = now_of(&case.now).map_err(|e| ("a valid now".to_string(), e))?;
            let d = set.decide(requester, record, purpose, now, case.break_glass);
            if d.level != want
                || !same_ids(&case.expect_permitting, &d.permitting)
                || !same_ids(&case.expect_forbidding, &d.forbidding)
            {
                return Err((
                    format!("{want} ({want_ids})"),
                    format!(
                        "{} ({}; reason {:?})",
                        d.level,
                        ids(&d.permitting, &d.forbidding),
                        d.reason
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// Runs an audit-access case (`expect_scope`).
fn run_audit_case(
    set: &PolicySet,
    case: &Case,
    scope: &str,
    want_ids: &str,
) -> Result<(), (String, String)> {
    let want: AuditScope = scope
        .parse()
        .map_err(|e: String| ("a valid expect_scope".to_string(), e))?;
    let requester = case
        .requester
        .as_ref()
        .ok_or_else(|| ("a requester".to_string(), "none given".to_string()))?;
    let words = set.vocabulary_problems(Some(requester), None);
    if !words.is_empty() {
        return Err((
            format!("case {:?} to use the vocabulary", case.name),
            words.join("; "),
        ));
    }
    let a = set.audit_scope(requester);
    if a.scope != want
        || !same_ids(&case.expect_permitting, &a.permitting)
        || !same_ids(&case.expect_forbidding, &a.forbidding)
    {
        return Err((
            format!("audit scope {want} ({want_ids})"),
            format!(
                "audit scope {} (permitting {:?}, forbidding {:?}; reason {:?})",
                a.scope, a.permitting, a.forbidding, a.reason
            ),
        ));
    }
    Ok(())
}

/// Runs a break-glass review case (`expect_review`).
fn run_review_case(
    set: &PolicySet,
    case: &Case,
    review: &str,
    want_ids: &str,
) -> Result<(), (String, String)> {
    let want = match review {
        "allowed" => true,
        "refused" => false,
        other => {
            return Err((
                "expect_review allowed or refused".into(),
                format!("{other:?}"),
            ));
        }
    };
    let requester = case
        .requester
        .as_ref()
        .ok_or_else(|| ("a requester".to_string(), "none given".to_string()))?;
    let accessor = case
        .accessor
        .as_ref()
        .ok_or_else(|| {
            (
                "an accessor (who broke glass)".to_string(),
                "none given".to_string(),
            )
        })?
        .requester(requester);
    let mut words = set.vocabulary_problems(Some(requester), None);
    words.extend(set.vocabulary_problems(Some(&accessor), None));
    if !words.is_empty() {
        return Err((
            format!("case {:?} to use the vocabulary", case.name),
            words.join("; "),
        ));
    }
    let d = set.may_review_break_glass(requester, &accessor);
    if d.allowed != want
        || !same_ids(&case.expect_permitting, &d.permitting)
        || !same_ids(&case.expect_forbidding, &d.forbidding)
    {
        let word = |a: bool| if a { "allowed" } else { "refused" };
        return Err((
            format!("review {} ({want_ids})", word(want)),
            format!(
                "review {} (permitting {:?}, forbidding {:?}; reason {:?})",
                word(d.allowed),
                d.permitting,
                d.forbidding,
                d.reason
            ),
        ));
    }
    Ok(())
}

/// Runs a subscribe case (`expect_subscribe`).
fn run_subscribe_case(
    set: &PolicySet,
    case: &Case,
    subscribe: &str,
    want_ids: &str,
) -> Result<(), (String, String)> {
    let want = match subscribe {
        "allowed" => true,
        "refused" => false,
        other => {
            return Err((
                "expect_subscribe allowed or refused".into(),
                format!("{other:?}"),
            ));
        }
    };
    let requester = case
        .requester
        .as_ref()
        .ok_or_else(|| ("a requester".to_string(), "none given".to_string()))?;
    let purpose = case
        .purpose
        .as_deref()
        .ok_or_else(|| ("a purpose".to_string(), "none given".to_string()))?;
    let now = now_of(&case.now).map_err(|e| ("a valid now".to_string(), e))?;
    let words = set.vocabulary_problems(Some(requester), None);
    if !words.is_empty() {
        return Err((
            format!("case {:?} to use the vocabulary", case.name),
            words.join("; "),
        ));
    }
    let d = set.may_subscribe(requester, purpose, now, case.holds_relationship);
    if d.allowed != want
        || !same_ids(&case.expect_permitting, &d.permitting)
        || !same_ids(&case.expect_forbidding, &d.forbidding)
    {
        let word = |a: bool| if a { "allowed" } else { "refused" };
        return Err((
            format!("subscribe {} ({want_ids})", word(want)),
            format!(
                "subscribe {} (permitting {:?}, forbidding {:?}; reason {:?})",
                word(d.allowed),
                d.permitting,
                d.forbidding,
                d.reason
            ),
        ));
    }
    Ok(())
}

/// Loads the policy set in `dir` strictly, then runs every case in
/// `dir/tests/*.json`, reporting each failure with the case name and
/// expected versus actual.
pub fn check(dir: &Path) -> CheckReport {
    let mut report = CheckReport {
        dir: dir.to_path_buf(),
        ..CheckReport::default()
    };
    let set = match PolicySet::load(dir) {
        Ok(s) => s,
        Err(e) => {
            report.load_error = Some(e.to_string());
            return report;
        }
    };
    report.fingerprint = Some(set.fingerprint().to_string());
    let tests = dir.join("tests");
    let mut files: Vec<PathBuf> = match fs::read_dir(&tests) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) => {
            report.failures.push(CaseFailure {
                file: tests.clone(),
                case: "(test folder)".into(),
                expected: "a readable tests/ folder of *.json case files".into(),
                actual: e.to_string(),
            });
            return report;
        }
    };
    files.sort();
    for file in files {
        let fail = |case: &str, expected: &str, actual: String| CaseFailure {
            file: file.clone(),
            case: case.to_string(),
            expected: expected.to_string(),
            actual,
        };
        let parsed: Result<TestFile, String> = fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
        let tf = match parsed {
            Ok(tf) => tf,
            Err(e) => {
                report
                    .failures
                    .push(fail("(whole file)", "a valid test file", e));
                continue;
            }
        };
        for (i, raw) in tf.cases.iter().enumerate() {
            let label = raw
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("case #{}", i + 1), str::to_string);
            report.cases_run += 1;
            let case: Case = match serde_json::from_value(Value::Object(merge(&tf.defaults, raw))) {
                Ok(c) => c,
                Err(e) => {
                    report
                        .failures
                        .push(fail(&label, "a well-formed case", e.to_string()));
                    continue;
                }
            };
            if let Err((expected, actual)) = run_case(&set, &case) {
                report.failures.push(fail(&label, &expected, actual));
            }
        }
    }
    report
}
