use super::*;
use crate::codes::{Article6Basis, Purpose, RelationshipType, Residency, Sensitivity};
use crate::record::{Contact, LawfulBasis, Period, Provenance, Subject};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn person(given: &str, family: &str, dob: Option<NaiveDate>, postcode: &str) -> Demographics {
    Demographics {
        given_name: given.into(),
        family_name: family.into(),
        date_of_birth: dob,
        postcode: postcode.into(),
    }
}

/// Zoë O'Brien, born 7 March 1980, of M1 1AE.
fn zoe() -> Demographics {
    person("Zoë", "O'Brien", Some(date(1980, 3, 7)), "M1 1AE")
}

fn outcome(s: &MatchScore, field: MatchField) -> FieldOutcome {
    s.field(field).expect("every field is listed").outcome
}

fn field_weight(s: &MatchScore, field: MatchField) -> f64 {
    s.field(field).expect("every field is listed").weight
}

fn rules() -> MatchRules {
    MatchRules::default()
}

#[test]
fn spelling_variants_of_a_name_agree_in_full() {
    let r = rules();
    for (a, b) in [
        ("O'Brien", "OBrien"),
        ("O’Brien", "O Brien"),
        ("Smith-Jones", "Smith Jones"),
        ("SMITH-JONES", "smithjones"),
        ("Zoë", "Zoe"),
    ] {
        let mut x = zoe();
        let mut y = zoe();
        x.family_name = a.into();
        y.family_name = b.into();
        let s = score(&r, &x, &y);
        assert_eq!(
            outcome(&s, MatchField::FamilyName),
            FieldOutcome::Agree,
            "{a} / {b}"
        );
        x.given_name = a.into();
        y.given_name = b.into();
        let s = score(&r, &x, &y);
        assert_eq!(
            outcome(&s, MatchField::GivenName),
            FieldOutcome::Agree,
            "{a} / {b}"
        );
    }
}

#[test]
fn a_double_barrelled_surname_partly_agrees_with_one_half() {
    let r = rules();
    let mut a = zoe();
    let mut b = zoe();
    a.family_name = "Smith-Jones".into();
    b.family_name = "Jones".into();
    let s = score(&r, &a, &b);
    assert_eq!(
        outcome(&s, MatchField::FamilyName),
        FieldOutcome::Partial(PartialKind::TokenSubset)
    );
    let w = field_weight(&s, MatchField::FamilyName);
    assert!(w > 0.0 && w < r.family_name.agree.agreement_weight(), "{w}");

    // Sharing one word, with neither a subset of the other, is weaker still.
    b.family_name = "Jones-Brown".into();
    let s2 = score(&r, &a, &b);
    assert_eq!(
        outcome(&s2, MatchField::FamilyName),
        FieldOutcome::Partial(PartialKind::AnyToken)
    );
    assert!(field_weight(&s2, MatchField::FamilyName) < w);

    b.family_name = "Brown".into();
    let s3 = score(&r, &a, &b);
    assert_eq!(outcome(&s3, MatchField::FamilyName), FieldOutcome::Disagree);
    assert!(field_weight(&s3, MatchField::FamilyName) < 0.0);
}

#[test]
fn a_date_of_birth_with_day_and_month_swapped_is_partial_not_full() {
    let r = rules();
    let a = zoe();
    let mut b = zoe();
    b.date_of_birth = Some(date(1980, 7, 3));
    let s = score(&r, &a, &b);
    assert_eq!(
        outcome(&s, MatchField::DateOfBirth),
        FieldOutcome::Partial(PartialKind::DayMonthSwapped)
    );
    let w = field_weight(&s, MatchField::DateOfBirth);
    assert!(
        w > 0.0 && w < r.date_of_birth.agree.agreement_weight(),
        "{w}"
    );

    // Swapped but in another year is not a swap.
    b.date_of_birth = Some(date(1981, 7, 3));
    assert_eq!(
        outcome(&score(&r, &a, &b), MatchField::DateOfBirth),
        FieldOutcome::Disagree
    );
    b.date_of_birth = Some(date(1980, 3, 17));
    assert_eq!(
        outcome(&score(&r, &a, &b), MatchField::DateOfBirth),
        FieldOutcome::Partial(PartialKind::SameYearMonth)
    );
    // A day above 12 cannot be a month: no swap to find.
    let mut c = zoe();
    c.date_of_birth = Some(date(1980, 3, 25));
    b.date_of_birth = Some(date(1980, 12, 3));
    assert_eq!(
        outcome(&score(&r, &c, &b), MatchField::DateOfBirth),
        FieldOutcome::Disagree
    );
}

#[test]
fn postcodes_agree_with_or_without_the_space_and_partly_by_sector() {
    let r = rules();
    let cases = [
        ("M1 1AE", "m11ae", FieldOutcome::Agree),
        ("SW1A 1AA", "SW1A1AA", FieldOutcome::Agree),
        (
            "M1 1AE",
            "M1 1BB",
            FieldOutcome::Partial(PartialKind::SameSector),
        ),
        (
            "M1 1AE",
            "M1 2AB",
            FieldOutcome::Partial(PartialKind::SameOutwardCode),
        ),
        // M11 is not M1, though "M11AE" starts with "M11".
        ("M1 1AE", "M11 1AE", FieldOutcome::Disagree),
        ("M1 1AE", "B33 8TH", FieldOutcome::Disagree),
        // Not postcodes: only full equality could agree.
        ("M1 1XX9", "M1 1XX8", FieldOutcome::Disagree),
    ];
    for (pa, pb, want) in cases {
        let mut a = zoe();
        let mut b = zoe();
        a.postcode = pa.into();
        b.postcode = pb.into();
        assert_eq!(
            outcome(&score(&r, &a, &b), MatchField::Postcode),
            want,
            "{pa} / {pb}"
        );
    }
}

#[test]
fn full_agreement_is_certain_and_links_automatically() {
    let r = rules();
    let a = zoe();
    let b = person("ZOE", "OBrien", Some(date(1980, 3, 7)), "m11ae");
    let s = score(&r, &a, &b);
    assert!(
        s.fields.iter().all(|f| f.outcome == FieldOutcome::Agree),
        "{s:?}"
    );
    assert_eq!(s.band, MatchBand::Certain);
    assert_eq!(s.rules_version, "kith-match-1");
    let link = s.auto_link().expect("a certain match links");
    assert_eq!(link.method, LinkMethod::Demographic);
    assert_eq!(link.score, Some(s.total));
    assert_eq!(link.rules_version, "kith-match-1");
}

#[test]
fn a_plausible_near_match_is_possible_and_does_not_link_itself() {
    let r = rules();
    let a = zoe();
    let b = person("Zoe", "O'Brien", Some(date(1980, 7, 3)), "M1 1ZZ");
    let s = score(&r, &a, &b);
    assert_eq!(
        outcome(&s, MatchField::DateOfBirth),
        FieldOutcome::Partial(PartialKind::DayMonthSwapped)
    );
    assert_eq!(
        outcome(&s, MatchField::Postcode),
        FieldOutcome::Partial(PartialKind::SameSector)
    );
    assert_eq!(s.band, MatchBand::Possible, "total {}", s.total);
    assert_eq!(
        s.auto_link(),
        None,
        "only certain matches link automatically"
    );
    let confirmed = s.confirm().expect("a possible match can be confirmed");
    assert_eq!(confirmed.method, LinkMethod::Confirmed);
    assert_eq!(confirmed.band, MatchBand::Possible);
    assert_eq!(confirmed.score, Some(s.total));
}

#[test]
fn a_different_person_is_a_non_match() {
    let r = rules();
    // Same first name, same address (a lodger, a relative by marriage).
    let a = zoe();
    let b = person("Zoe", "Patel", Some(date(1994, 11, 20)), "M1 1AE");
    let s = score(&r, &a, &b);
    assert_eq!(outcome(&s, MatchField::FamilyName), FieldOutcome::Disagree);
    assert_eq!(outcome(&s, MatchField::DateOfBirth), FieldOutcome::Disagree);
    assert_eq!(s.band, MatchBand::NonMatch, "total {}", s.total);
    assert_eq!(s.auto_link(), None);
    assert_eq!(s.confirm(), None, "a non-match is never offered to confirm");
}

#[test]
fn missing_fields_count_neither_for_nor_against() {
    let r = rules();
    let full = zoe();
    let mut no_postcode = zoe();
    no_postcode.postcode = "  ".into();
    let mut elsewhere = zoe();
    elsewhere.postcode = "B33 8TH".into();

    let agree = score(&r, &full, &full);
    let missing = score(&r, &full, &no_postcode);
    let disagree = score(&r, &full, &elsewhere);
    assert_eq!(
        outcome(&missing, MatchField::Postcode),
        FieldOutcome::Missing
    );
    assert_eq!(field_weight(&missing, MatchField::Postcode), 0.0);
    let others: f64 = missing.fields.iter().map(|f| f.weight).sum();
    assert!((missing.total - others).abs() < 1e-9);
    assert!(disagree.total < missing.total && missing.total < agree.total);

    // Missing on the other side, or both, is the same.
    assert_eq!(score(&r, &no_postcode, &full).total, missing.total);
    assert_eq!(score(&r, &no_postcode, &no_postcode).total, missing.total);

    // A record with no date of birth neither helps nor hurts.
    let mut no_dob = zoe();
    no_dob.date_of_birth = None;
    let s = score(&r, &full, &no_dob);
    assert_eq!(outcome(&s, MatchField::DateOfBirth), FieldOutcome::Missing);
    assert_eq!(field_weight(&s, MatchField::DateOfBirth), 0.0);

    // Nothing on one side at all: nothing to go on.
    let empty = score(&r, &full, &Demographics::default());
    assert_eq!(empty.total, 0.0);
    assert!(
        empty
            .fields
            .iter()
            .all(|f| f.outcome == FieldOutcome::Missing)
    );
    assert_eq!(empty.band, MatchBand::NonMatch);
}

#[test]
fn known_alternative_given_names_partly_agree() {
    let r = rules();
    let bill = person("Bill", "Smith", Some(date(1950, 1, 2)), "LS1 4AP");
    let william = person("William", "Smith", Some(date(1950, 1, 2)), "LS1 4AP");
    let s = score(&r, &bill, &william);
    assert_eq!(
        outcome(&s, MatchField::GivenName),
        FieldOutcome::Partial(PartialKind::AlternativeName)
    );
    assert_eq!(s.band, MatchBand::Certain, "total {}", s.total);

    let robert = person("Robert", "Smith", Some(date(1950, 1, 2)), "LS1 4AP");
    let s = score(&r, &bill, &robert);
    assert_eq!(outcome(&s, MatchField::GivenName), FieldOutcome::Disagree);

    // The table is configuration: without it Bill is not William.
    let mut bare = rules();
    bare.alternative_names.clear();
    assert_eq!(
        outcome(&score(&bare, &bill, &william), MatchField::GivenName),
        FieldOutcome::Disagree
    );
}

#[test]
fn given_names_by_middle_name_and_initial() {
    let r = rules();
    let given = |a: &str, b: &str| {
        let mut x = zoe();
        let mut y = zoe();
        x.given_name = a.into();
        y.given_name = b.into();
        outcome(&score(&r, &x, &y), MatchField::GivenName)
    };
    assert_eq!(given("Mary", "Mary Jane"), FieldOutcome::Agree);
    assert_eq!(
        given("Mary Ann", "Mary Jane"),
        FieldOutcome::Partial(PartialKind::AlternativeName)
    );
    assert_eq!(
        given("Jane", "Mary Jane"),
        FieldOutcome::Partial(PartialKind::AlternativeName)
    );
    assert_eq!(
        given("J", "James"),
        FieldOutcome::Partial(PartialKind::Initial)
    );
    assert_eq!(
        given("J.", "J"),
        FieldOutcome::Partial(PartialKind::Initial)
    );
    assert_eq!(
        given("Jon", "Jan"),
        FieldOutcome::Partial(PartialKind::Initial)
    );
    assert_eq!(
        given("J. A.", "J A"),
        FieldOutcome::Partial(PartialKind::Initial)
    );
    assert_eq!(given("K", "James"), FieldOutcome::Disagree);
}

#[test]
fn scores_are_symmetric() {
    let r = rules();
    let pairs = [
        (
            zoe(),
            person("Zoe", "O'Brien", Some(date(1980, 7, 3)), "M1 1ZZ"),
        ),
        (
            person("Bill", "Smith-Jones", Some(date(1950, 1, 2)), "LS1 4AP"),
            person("William", "Jones", None, "LS1 5AP"),
        ),
        (zoe(), Demographics::default()),
    ];
    for (a, b) in pairs {
        let ab = score(&r, &a, &b);
        let ba = score(&r, &b, &a);
        assert_eq!(ab.total, ba.total);
        assert_eq!(ab.fields, ba.fields);
    }
}

#[test]
fn a_candidate_summary_carries_no_demographic_values() {
    let r = rules();
    let b = person("Zoe", "O'Brien", Some(date(1980, 7, 3)), "M1 1ZZ");
    let json = serde_json::to_string(&score(&r, &zoe(), &b)).unwrap();
    for secret in ["zoe", "brien", "1980", "M1", "M11"] {
        assert!(
            !json.to_lowercase().contains(&secret.to_lowercase()),
            "{secret} leaked into {json}"
        );
    }
    assert!(
        json.contains(r#""outcome":{"partial":"day_month_swapped"}"#),
        "{json}"
    );
    assert!(json.contains(r#""field":"date_of_birth""#), "{json}");
}

#[test]
fn rules_from_json_and_a_changed_threshold_changes_the_band() {
    let a = zoe();
    let b = person("Zoe", "O'Brien", Some(date(1980, 7, 3)), "M1 1ZZ");
    let default_score = score(&rules(), &a, &b);
    assert_eq!(default_score.band, MatchBand::Possible);

    let json = r#"{
        "version": "council-a-strict-2",
        "thresholds": { "certain": 40.0, "possible": 25.0 },
        "family_name": {
            "agree": { "m": 0.95, "u": 0.01 },
            "token_subset": { "m": 0.03, "u": 0.001 },
            "any_token": { "m": 0.01, "u": 0.002 }
        },
        "given_name": {
            "agree": { "m": 0.9, "u": 0.01 },
            "alternative_name": { "m": 0.05, "u": 0.002 },
            "initial": { "m": 0.03, "u": 0.02 }
        },
        "date_of_birth": {
            "agree": { "m": 0.97, "u": 0.0005 },
            "day_month_swapped": { "m": 0.01, "u": 0.0002 },
            "same_year_month": { "m": 0.01, "u": 0.001 }
        },
        "postcode": {
            "agree": { "m": 0.85, "u": 0.001 },
            "same_sector": { "m": 0.05, "u": 0.01 },
            "same_outward_code": { "m": 0.03, "u": 0.02 }
        },
        "alternative_names": [["william", "bill"]]
    }"#;
    let strict = MatchRules::from_json(json).unwrap();
    let s = score(&strict, &a, &b);
    // Same probabilities as the defaults, so the same total...
    assert!((s.total - default_score.total).abs() < 1e-9);
    // ...but a higher bar: no longer even possible, and under its version.
    assert_eq!(s.band, MatchBand::NonMatch);
    assert_eq!(s.rules_version, "council-a-strict-2");

    // A lower certain threshold makes the same near-match link itself.
    let mut lax = rules();
    lax.version = "lax-test".into();
    lax.thresholds.certain = default_score.total - 0.5;
    let s = score(&lax, &a, &b);
    assert_eq!(s.band, MatchBand::Certain);
    assert_eq!(s.auto_link().unwrap().rules_version, "lax-test");

    // A threshold equal to the total is reached.
    lax.thresholds.certain = default_score.total;
    assert_eq!(score(&lax, &a, &b).band, MatchBand::Certain);
}

fn record(custodian: &str, nhs: Option<&str>, local: &[(&str, &str)]) -> Record {
    Record {
        record_id: "r-1".into(),
        version: 1,
        custodian: custodian.into(),
        subject: Subject {
            nhs_number: nhs.map(|n| n.parse().unwrap()),
            local_ids: local
                .iter()
                .map(|(s, v)| LocalId {
                    system: (*s).into(),
                    value: (*v).into(),
                })
                .collect(),
            demographics: Some(zoe()),
        },
        relationship_type: RelationshipType::AdultSocialCare,
        service: String::new(),
        period: Period {
            start: date(2024, 3, 1),
            end: None,
        },
        key_worker: Contact::default(),
        out_of_hours: Contact::default(),
        sensitivity: Sensitivity::Normal,
        security_labels: vec![],
        lawful_basis: LawfulBasis {
            article6: Article6Basis::PublicTask,
            article9: None,
            statute: String::new(),
        },
        permitted_purposes: vec![Purpose::DirectCare],
        residency: Residency::England,
        provenance: Provenance::default(),
        retain_until: None,
    }
}

fn local(system: &str, value: &str) -> LocalId {
    LocalId {
        system: system.into(),
        value: value.into(),
    }
}

#[test]
fn nhs_numbers_match_exactly() {
    let rec = record("E08000003", Some("9434765919"), &[]);
    let same: NhsNumber = "943 476 5919".parse().unwrap();
    let other: NhsNumber = "9990000018".parse().unwrap();
    assert_eq!(
        match_identifiers(Some(same), None, &rec),
        Some(IdentifierMatch::NhsNumber)
    );
    assert_eq!(match_identifiers(Some(other), None, &rec), None);
    assert_eq!(match_identifiers(None, None, &rec), None);
    let no_nhs = record("E08000003", None, &[("mosaic", "1")]);
    assert_eq!(match_identifiers(Some(same), None, &no_nhs), None);
}

#[test]
fn local_ids_match_only_within_their_issuing_authority() {
    let rec = record("E08000003", None, &[("mosaic", "12345")]);
    let id = local("mosaic", "12345");
    assert_eq!(
        match_identifiers(None, Some(("E08000003", &id)), &rec),
        Some(IdentifierMatch::LocalId)
    );
    // Same system and value, issued by another council: a different person.
    assert_eq!(
        match_identifiers(None, Some(("E08000007", &id)), &rec),
        None
    );
    // Same authority and value in another system.
    let other_system = local("liquidlogic", "12345");
    assert_eq!(
        match_identifiers(None, Some(("E08000003", &other_system)), &rec),
        None
    );
    let other_value = local("mosaic", "12346");
    assert_eq!(
        match_identifiers(None, Some(("E08000003", &other_value)), &rec),
        None
    );
}

#[test]
fn identifiers_decide_first_and_different_nhs_numbers_veto() {
    let r = rules();
    let rec = record("E08000003", Some("9434765919"), &[("mosaic", "12345")]);
    let q = zoe();

    let by_nhs = SubjectQuery {
        nhs_number: Some("9434765919".parse().unwrap()),
        demographics: Some(&q),
        ..Default::default()
    };
    let m = match_subject(&r, &by_nhs, &rec);
    assert_eq!(m, SubjectMatch::Identifier(IdentifierMatch::NhsNumber));
    let SubjectMatch::Identifier(id) = m else {
        unreachable!()
    };
    let link = id.link(&r);
    assert_eq!(link.method, LinkMethod::NhsNumber);
    assert_eq!(link.band, MatchBand::Certain);
    assert_eq!(link.score, None);
    assert_eq!(link.rules_version, "kith-match-1");

    // Identical demographics, different NHS number: not this person.
    let other_nhs = SubjectQuery {
        nhs_number: Some("9990000018".parse().unwrap()),
        demographics: Some(&q),
        ..Default::default()
    };
    assert_eq!(
        match_subject(&r, &other_nhs, &rec),
        SubjectMatch::NhsNumberDiffers
    );

    // A foreign local id does not match, so demographics decide.
    let id = local("mosaic", "12345");
    let foreign = SubjectQuery {
        local_id: Some(("E08000007", &id)),
        demographics: Some(&q),
        ..Default::default()
    };
    match match_subject(&r, &foreign, &rec) {
        SubjectMatch::Demographic(s) => assert_eq!(s.band, MatchBand::Certain),
        other => panic!("expected a demographic match, got {other:?}"),
    }

    // No NHS number on the query: demographics, even though the record has one.
    let by_name = SubjectQuery {
        demographics: Some(&q),
        ..Default::default()
    };
    assert!(matches!(
        match_subject(&r, &by_name, &rec),
        SubjectMatch::Demographic(_)
    ));
    assert_eq!(
        match_subject(&r, &SubjectQuery::default(), &rec),
        SubjectMatch::NotComparable
    );
}

#[test]
fn a_link_serialises_with_its_score_and_rules_version() {
    let s = score(&rules(), &zoe(), &zoe());
    let link = s.auto_link().unwrap();
    let v = serde_json::to_value(&link).unwrap();
    assert_eq!(v["method"], "demographic");
    assert_eq!(v["band"], "certain");
    assert_eq!(v["rules_version"], "kith-match-1");
    assert!((v["score"].as_f64().unwrap() - s.total).abs() < 1e-9);
    let back: MatchLink = serde_json::from_value(v).unwrap();
    assert_eq!(back, link);
}
