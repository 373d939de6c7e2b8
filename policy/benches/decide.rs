//! Decision latency benchmark (plain `Instant` loop, `harness = false`):
//! the default policy set, then the default set plus 1,000 generated local
//! agreements (one policy each), each measured two ways:
//!
//! - `decide`: one `PolicySet::decide` call per decision, timed on its own;
//! - `decider`: the hub's query path, one `PolicySet::decider` per query
//!   (one requester, purpose and time) deciding the query's
//!   `RECORDS_PER_QUERY` records; a sample is the query's total time
//!   (decider included) divided by its records;
//! - `decider, unit path`: the same through `PolicySet::decider_on_units`,
//!   which never batches (what a record whose agreements cannot be batched
//!   costs).
//!
//! It asserts that all three give the same decision for every case. (The
//! `timing` test that also timed the pre-unit reference evaluator is gone:
//! the reference is test-only, `src/decide/reference.rs`, and checks
//! decisions, not speed; its last figures are in `BENCHMARKS.md`.)
//!
//! Prints a table and one final JSON line.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-policy cargo bench`

use std::fs;
use std::path::Path;
use std::time::Instant;

use kith_policy::{PolicySet, RecordFacts, Requester};

const NOW: i64 = 1_768_435_200; // 2026-01-15
const SAMPLES: usize = 20_000;
const GENERATED: usize = 1_000;
/// Records decided per query in the `decider` measurement.
const RECORDS_PER_QUERY: usize = 8;

fn requester(code: &str, kind: &str, role: &str) -> Requester {
    Requester {
        authority_code: code.into(),
        authority_kind: kind.into(),
        jurisdiction: "england".into(),
        user_id: "u1".into(),
        role: role.into(),
        team: "team".into(),
    }
}

fn record(code: &str, kind: &str, ty: &str) -> RecordFacts {
    RecordFacts {
        custodian_code: code.into(),
        custodian_kind: kind.into(),
        custodian_jurisdiction: "england".into(),
        record_key: "r1".into(),
        relationship_type: ty.into(),
        sensitivity: "normal".into(),
        residency: "uk".into(),
        lawful_basis: "UK GDPR 6(1)(e)".into(),
        permitted_purposes: vec![
            "safeguarding".into(),
            "direct_care".into(),
            "care_planning".into(),
            "emergency".into(),
        ],
        objection: false,
        directive: "none".into(),
    }
}

type Case = (Requester, RecordFacts, &'static str, bool);

/// A mix of requests covering every outcome.
fn default_mix() -> Vec<Case> {
    let mut objection = record("E08000003", "council", "child_in_need");
    objection.objection = true;
    vec![
        (
            requester("E08000007", "council", "social_worker"),
            record("E08000003", "council", "child_protection_plan"),
            "safeguarding",
            false,
        ),
        (
            requester("R0A", "nhs_trust", "ed_clinician"),
            record("E08000003", "council", "child_protection_plan"),
            "direct_care",
            false,
        ),
        (
            requester("E08000007", "council", "social_worker"),
            objection,
            "safeguarding",
            false,
        ),
        (
            requester("E23000005", "police", "police_officer"),
            record("E08000003", "council", "adult_social_care"),
            "care_planning",
            false,
        ),
        (
            requester("RX7", "ambulance", "paramedic"),
            record("E08000003", "council", "child_protection_plan"),
            "emergency",
            true,
        ),
        (
            requester("RX7", "ambulance", "paramedic"),
            record("E23000005", "police", "vulnerability_marker"),
            "emergency",
            false,
        ),
    ]
}

/// Writes a copy of `base` plus `n` generated local agreements between
/// named councils and NHS trusts, one policy each.
fn generate(base: &Path, out: &Path, n: usize) {
    for sub in ["", "default", "tests"] {
        fs::create_dir_all(out.join(sub)).unwrap();
    }
    for entry in [
        "kith.cedarschema",
        "vocabulary.json",
        "relationship_types.json",
    ] {
        fs::copy(base.join(entry), out.join(entry)).unwrap();
    }
    for e in fs::read_dir(base.join("default")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), out.join("default").join(e.file_name())).unwrap();
    }
    let mut agreements: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(base.join("agreements.json")).unwrap()).unwrap();
    let list = agreements["agreements"].as_array_mut().unwrap();
    let cats = [
        ["adults", "health"],
        ["children", "housing"],
        ["health", "housing"],
        ["adults", "housing"],
    ];
    let purposes = [
        ["direct_care", "care_planning"],
        ["safeguarding", "direct_care"],
        ["care_planning", "safeguarding"],
    ];
    let roles = ["social_worker", "nurse", "gp", "safeguarding_lead"];
    let mut policies = String::new();
    for i in 0..n {
        let id = format!("local-{i:04}");
        list.push(serde_json::json!({
            "id": id,
            "title": format!("Local agreement {i}"),
            "party_kinds": ["council", "nhs_trust"],
            "party_authorities": [format!("C{:03}", i % 300), format!("T{:03}", i % 150)],
            "categories": cats[i % cats.len()],
            "purposes": purposes[i % purposes.len()],
            "valid_from": "2025-01-01",
            "valid_until": "2028-12-31"
        }));
        policies.push_str(&format!(
            "@id(\"{id}.detail\")\n@agreement(\"{id}\")\n@reason(\"generated\")\npermit (principal, action in [Kith::Action::\"view_detail\", Kith::Action::\"view_summary\", Kith::Action::\"acknowledge\"], resource)\nwhen {{ principal.role == \"{}\" && principal.team != \"suspended\" }};\n\n",
            roles[i % roles.len()]
        ));
    }
    fs::write(
        out.join("agreements.json"),
        serde_json::to_string_pretty(&agreements).unwrap(),
    )
    .unwrap();
    fs::write(out.join("default/generated.cedar"), policies).unwrap();
}

/// Requests against the generated set: half hit a generated agreement.
fn generated_mix() -> Vec<Case> {
    let mut mix = default_mix();
    for i in (0..GENERATED).step_by(97) {
        let council = format!("C{:03}", i % 300);
        let trust = format!("T{:03}", i % 150);
        let roles = ["social_worker", "nurse", "gp", "safeguarding_lead"];
        let types = [
            "adult_social_care",
            "child_in_need",
            "mental_health",
            "housing_support",
        ];
        let purposes = ["direct_care", "safeguarding", "care_planning"];
        let req = requester(&council, "council", roles[i % 4]);
        let rec = record(&trust, "nhs_trust", types[i % 4]);
        mix.push((req, rec, purposes[i % 3], false));
    }
    mix
}

struct Stats {
    median_ns: u128,
    p99_ns: u128,
    mean_ns: u128,
}

fn measure(set: &PolicySet, mix: &[Case]) -> (Stats, [usize; 4]) {
    let mut levels = [0usize; 4];
    // Warm up.
    for (r, rec, p, bg) in mix.iter().cycle().take(2_000) {
        std::hint::black_box(set.decide(r, rec, p, NOW, *bg));
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for (r, rec, p, bg) in mix.iter().cycle().take(SAMPLES) {
        let t = Instant::now();
        let d = std::hint::black_box(set.decide(r, rec, p, NOW, *bg));
        samples.push(t.elapsed().as_nanos());
        levels[d.level as usize] += 1;
    }
    samples.sort_unstable();
    let mean_ns = samples.iter().sum::<u128>() / samples.len() as u128;
    let stats = Stats {
        median_ns: samples[samples.len() / 2],
        p99_ns: samples[samples.len() * 99 / 100],
        mean_ns,
    };
    (stats, levels)
}

/// Per-decision time through a `Decider`: each sample is one query of
/// `RECORDS_PER_QUERY` records (the case's record under different keys),
/// decider construction included, divided by the number of records.
fn measure_decider(set: &PolicySet, mix: &[Case], units: bool) -> (Stats, [usize; 4]) {
    let queries: Vec<(&Case, Vec<RecordFacts>)> = mix
        .iter()
        .map(|c| {
            let records = (0..RECORDS_PER_QUERY)
                .map(|i| {
                    let mut r = c.1.clone();
                    r.record_key = format!("{}-{i}", r.record_key);
                    r
                })
                .collect();
            (c, records)
        })
        .collect();
    let mut levels = [0usize; 4];
    let run = |(c, records): &(&Case, Vec<RecordFacts>), levels: &mut [usize; 4]| {
        let (r, _, p, bg) = c;
        let decider = if units {
            set.decider_on_units(r, p, NOW, *bg)
        } else {
            set.decider(r, p, NOW, *bg)
        };
        for rec in records {
            let d = std::hint::black_box(decider.decide(rec));
            levels[d.level as usize] += 1;
        }
    };
    let n = SAMPLES / RECORDS_PER_QUERY;
    let mut ignore = [0usize; 4];
    for q in queries.iter().cycle().take(2_000 / RECORDS_PER_QUERY) {
        run(q, &mut ignore);
    }
    let mut samples = Vec::with_capacity(n);
    for q in queries.iter().cycle().take(n) {
        let t = Instant::now();
        run(q, &mut levels);
        samples.push(t.elapsed().as_nanos() / RECORDS_PER_QUERY as u128);
    }
    samples.sort_unstable();
    let mean_ns = samples.iter().sum::<u128>() / samples.len() as u128;
    let stats = Stats {
        median_ns: samples[samples.len() / 2],
        p99_ns: samples[samples.len() * 99 / 100],
        mean_ns,
    };
    (stats, levels)
}

fn main() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let default_set = PolicySet::load(&base).expect("default policy set loads");

    let tmp = tempfile::tempdir().unwrap();
    generate(&base, tmp.path(), GENERATED);
    let t = Instant::now();
    let big = PolicySet::load(tmp.path()).expect("generated policy set loads");
    let load_ms = t.elapsed().as_millis();

    if std::env::var_os("KITH_BENCH_PER_CASE").is_some() {
        for (i, c) in default_mix().into_iter().enumerate() {
            let (s, l) = measure(&default_set, std::slice::from_ref(&c));
            let (q, _) = measure_decider(&default_set, std::slice::from_ref(&c), false);
            println!(
                "case {i}: decide median {:.1}µs, decider median {:.1}µs, levels {l:?}",
                s.median_ns as f64 / 1000.0,
                q.median_ns as f64 / 1000.0
            );
        }
    }
    let (d, dl) = measure(&default_set, &default_mix());
    let (g, gl) = measure(&big, &generated_mix());
    let (dq, dql) = measure_decider(&default_set, &default_mix(), false);
    let (gq, gql) = measure_decider(&big, &generated_mix(), false);
    let (du, _) = measure_decider(&default_set, &default_mix(), true);
    let (gu, _) = measure_decider(&big, &generated_mix(), true);
    // Every path must give the same decisions.
    for (set, mix) in [(&default_set, default_mix()), (&big, generated_mix())] {
        for (r, rec, p, bg) in &mix {
            let decided = set.decide(r, rec, p, NOW, *bg);
            assert_eq!(decided, set.decider(r, p, NOW, *bg).decide(rec));
            assert_eq!(decided, set.decider_on_units(r, p, NOW, *bg).decide(rec));
        }
    }

    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9}",
        "scenario", "policies", "median", "p99", "mean"
    );
    for (name, set, s) in [
        ("decide: default set", &default_set, &d),
        ("decide: default + 1,000 generated", &big, &g),
        ("decider: default set", &default_set, &dq),
        ("decider: default + 1,000 generated", &big, &gq),
        ("decider, unit path: default set", &default_set, &du),
        ("decider, unit path: default + 1,000 generated", &big, &gu),
    ] {
        println!(
            "{:<44} {:>9} {:>7.1}µs {:>7.1}µs {:>7.1}µs",
            name,
            set.policy_count(),
            s.median_ns as f64 / 1000.0,
            s.p99_ns as f64 / 1000.0,
            s.mean_ns as f64 / 1000.0
        );
    }
    println!(
        "outcomes (hidden/withheld/summary/detail): decide: default {dl:?}, generated {gl:?}; decider: default {dql:?}, generated {gql:?}; load of generated set {load_ms} ms"
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "kith-policy decide",
            "samples_per_scenario": SAMPLES,
            "default": {"policies": default_set.policy_count(), "median_us": d.median_ns as f64 / 1000.0, "p99_us": d.p99_ns as f64 / 1000.0},
            "generated_1000": {"policies": big.policy_count(), "agreements": big.agreement_count(), "median_us": g.median_ns as f64 / 1000.0, "p99_us": g.p99_ns as f64 / 1000.0, "load_ms": load_ms},
            "decider_default": {"records_per_query": RECORDS_PER_QUERY, "median_us": dq.median_ns as f64 / 1000.0, "p99_us": dq.p99_ns as f64 / 1000.0},
            "decider_generated_1000": {"records_per_query": RECORDS_PER_QUERY, "median_us": gq.median_ns as f64 / 1000.0, "p99_us": gq.p99_ns as f64 / 1000.0},
            "unit_path_default": {"median_us": du.median_ns as f64 / 1000.0},
            "unit_path_generated_1000": {"median_us": gu.median_ns as f64 / 1000.0},
            "target_median_us": 20
        })
    );
}
