//! Conversions between the `kith.v1` wire types and the domain.
//!
//! From the wire, conversion is validation: [`record_from_wire`] returns a
//! [`Record`] only when every field parses, and otherwise every failing field.
//! Towards the wire nothing can fail.

use chrono::{DateTime, NaiveDate, Utc};
use kith_proto::v1 as pb;

use crate::acting_user::ActingUser;
use crate::codes::*;
use crate::directive::Directive;
use crate::error::{FieldError, capped, quote};
use crate::nhs_number::NhsNumber;
use crate::query::{BreakGlassRequest, CheckedQuery, QueryRequest, SubjectSearch};
use crate::record::*;
use crate::validate::{MAX_PURPOSES, check_count};

/// Parses an ISO 8601 date; `Ok(None)` for an empty string.
pub fn parse_date(field: &str, value: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    if value.is_empty() {
        return None;
    }
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                format!("{} is not a date (YYYY-MM-DD)", quote(value)),
            ));
            None
        }
    }
}

fn code<T>(
    field: &str,
    value: i32,
    from: fn(i32) -> Option<T>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let parsed = from(value);
    if parsed.is_none() {
        let reason = if value == 0 {
            "is required".to_string()
        } else {
            format!("{value} is not a known code")
        };
        errors.push(FieldError::new(field, reason));
    }
    parsed
}

fn contact_from_wire(c: Option<pb::Contact>) -> Contact {
    let c = c.unwrap_or_default();
    Contact {
        name: c.name,
        role: c.role,
        phone: c.phone,
        email: c.email,
    }
}

fn contact_to_wire(c: &Contact) -> Option<pb::Contact> {
    (!c.is_empty()).then(|| pb::Contact {
        name: c.name.clone(),
        role: c.role.clone(),
        phone: c.phone.clone(),
        email: c.email.clone(),
    })
}

/// Parses an NHS number field; empty means absent.
pub fn nhs_number_from_wire(
    field: &str,
    value: &str,
    errors: &mut Vec<FieldError>,
) -> Option<NhsNumber> {
    if value.is_empty() {
        return None;
    }
    match value.parse() {
        Ok(n) => Some(n),
        Err(e) => {
            errors.push(FieldError::new(field, e.to_string()));
            None
        }
    }
}

/// Converts a subject from the wire.
pub fn subject_from_wire(s: pb::Subject, prefix: &str, errors: &mut Vec<FieldError>) -> Subject {
    let nhs_number = nhs_number_from_wire(&format!("{prefix}.nhs_number"), &s.nhs_number, errors);
    let demographics = s.demographics.map(|d| Demographics {
        date_of_birth: parse_date(
            &format!("{prefix}.demographics.date_of_birth"),
            &d.date_of_birth,
            errors,
        ),
        given_name: d.given_name,
        family_name: d.family_name,
        postcode: d.postcode,
    });
    Subject {
        nhs_number,
        local_ids: s
            .local_ids
            .into_iter()
            .map(|l| LocalId {
                system: l.system,
                value: l.value,
            })
            .collect(),
        demographics,
    }
}

/// Converts a subject to the wire.
pub fn subject_to_wire(s: &Subject) -> pb::Subject {
    pb::Subject {
        nhs_number: s.nhs_number.map(|n| n.as_digits()).unwrap_or_default(),
        local_ids: s
            .local_ids
            .iter()
            .map(|l| pb::LocalIdentifier {
                system: l.system.clone(),
                value: l.value.clone(),
            })
            .collect(),
        demographics: s.demographics.as_ref().map(|d| pb::Demographics {
            given_name: d.given_name.clone(),
            family_name: d.family_name.clone(),
            date_of_birth: d.date_of_birth.map(|d| d.to_string()).unwrap_or_default(),
            postcode: d.postcode.clone(),
        }),
    }
}

/// Converts and validates a record from the wire, as of `today`.
pub fn record_from_wire(
    r: pb::RelationshipRecord,
    today: NaiveDate,
) -> Result<Record, Vec<FieldError>> {
    let mut errors = Vec::new();
    let subject = match r.subject {
        Some(s) => subject_from_wire(s, "subject", &mut errors),
        None => Subject::default(),
    };
    let relationship_type = code(
        "relationship_type",
        r.relationship_type,
        RelationshipType::from_wire,
        &mut errors,
    );
    let period = r.period.unwrap_or_default();
    let start = parse_date("period.start", &period.start, &mut errors);
    if period.start.is_empty() {
        errors.push(FieldError::new("period.start", "is required"));
    }
    let end = parse_date("period.end", &period.end, &mut errors);
    let sensitivity = code(
        "sensitivity",
        r.sensitivity,
        Sensitivity::from_wire,
        &mut errors,
    );
    let basis = r.lawful_basis.unwrap_or_default();
    let article6 = code(
        "lawful_basis.article6",
        basis.article6,
        Article6Basis::from_wire,
        &mut errors,
    );
    let article9 = match basis.article9 {
        0 => None,
        n => code(
            "lawful_basis.article9",
            n,
            Article9Condition::from_wire,
            &mut errors,
        ),
    };
    let mut permitted_purposes = Vec::new();
    check_count(
        "permitted_purposes",
        r.permitted_purposes.len(),
        MAX_PURPOSES,
        &mut errors,
    );
    // Only as many as may be valid are converted: a long list of bad codes
    // makes one error, not one per code.
    for (i, p) in r.permitted_purposes.iter().take(MAX_PURPOSES).enumerate() {
        if let Some(p) = code(
            &format!("permitted_purposes[{i}]"),
            *p,
            Purpose::from_wire,
            &mut errors,
        ) {
            permitted_purposes.push(p);
        }
    }
    let residency = code("residency", r.residency, Residency::from_wire, &mut errors);
    let retain_until = parse_date("retain_until", &r.retain_until, &mut errors);
    let provenance = r.provenance.unwrap_or_default();

    let (Some(relationship_type), Some(start), Some(sensitivity), Some(article6), Some(residency)) =
        (relationship_type, start, sensitivity, article6, residency)
    else {
        return Err(capped(errors));
    };
    let record = Record {
        record_id: r.record_id,
        version: r.version,
        custodian: r.custodian,
        subject,
        relationship_type,
        service: r.service,
        period: Period { start, end },
        key_worker: contact_from_wire(r.key_worker),
        out_of_hours: contact_from_wire(r.out_of_hours),
        sensitivity,
        security_labels: r.security_labels,
        lawful_basis: LawfulBasis {
            article6,
            article9,
            statute: basis.statute,
        },
        permitted_purposes,
        residency,
        provenance: Provenance {
            source_system: provenance.source_system,
            content_hash: provenance.content_hash,
        },
        retain_until,
    };
    record.collect_errors(today, &mut errors);
    if errors.is_empty() {
        Ok(record)
    } else {
        Err(capped(errors))
    }
}

/// Converts the acting user from the wire, trimmed (a missing message is a
/// user with every field empty). The domain checks it
/// ([`ActingUser::check`]) with the rest of its request, so every field
/// error comes back at once.
pub fn acting_user_from_wire(user: Option<pb::ActingUser>) -> ActingUser {
    let u = user.unwrap_or_default();
    ActingUser {
        user_id: u.user_id,
        display_name: u.display_name,
        role: u.role,
        team: u.team,
    }
    .trimmed()
}

/// Converts a query from the wire: every field as given (trimmed where
/// the bounds apply to the trimmed value), what could not be parsed in
/// `malformed`. Check it with [`QueryRequest::check`].
pub fn query_from_wire(req: pb::QueryRequest) -> QueryRequest {
    let mut malformed = Vec::new();
    let purpose = match req.purpose {
        0 => None,
        n => {
            let p = Purpose::from_wire(n);
            if p.is_none() {
                malformed.push(FieldError::new(
                    "purpose",
                    format!("{n} is not a known purpose"),
                ));
            }
            p
        }
    };
    let subject = req.subject.unwrap_or_default();
    let nhs_number =
        nhs_number_from_wire("subject.nhs_number", &subject.nhs_number, &mut malformed);
    let demographics = subject.demographics.map(|d| Demographics {
        date_of_birth: parse_date(
            "subject.demographics.date_of_birth",
            &d.date_of_birth,
            &mut malformed,
        ),
        given_name: d.given_name,
        family_name: d.family_name,
        postcode: d.postcode,
    });
    if subject.local_ids.len() > 1 {
        malformed.push(FieldError::new(
            "subject.local_ids",
            format!(
                "has {} identifiers; give at most one of your own",
                subject.local_ids.len()
            ),
        ));
    }
    let local_id = subject.local_ids.into_iter().next().map(|l| LocalId {
        system: l.system,
        value: l.value,
    });
    QueryRequest {
        user: acting_user_from_wire(req.acting_user),
        purpose,
        nhs_number,
        demographics,
        local_id,
        confirm_candidate: (!req.confirm_candidate.is_empty()).then_some(req.confirm_candidate),
        break_glass: req.break_glass.map(|b| BreakGlassRequest {
            reason_code: b.reason_code.trim().to_string(),
            justification: b.justification.trim().to_string(),
        }),
        malformed,
    }
}

/// Converts a checked query to the wire, as an agent sends it.
pub fn query_to_wire(q: &CheckedQuery) -> pb::QueryRequest {
    let subject = match &q.subject {
        SubjectSearch::NhsNumber(n) => pb::Subject {
            nhs_number: n.as_digits(),
            ..Default::default()
        },
        SubjectSearch::Demographics {
            demographics,
            local_id,
            ..
        } => pb::Subject {
            nhs_number: String::new(),
            local_ids: local_id
                .iter()
                .map(|l| pb::LocalIdentifier {
                    system: l.system.clone(),
                    value: l.value.clone(),
                })
                .collect(),
            demographics: subject_to_wire(&Subject {
                demographics: Some(demographics.clone()),
                ..Subject::default()
            })
            .demographics,
        },
    };
    pb::QueryRequest {
        acting_user: Some(acting_user_to_wire(&q.user)),
        purpose: q.purpose.to_wire() as i32,
        subject: Some(subject),
        break_glass: q.break_glass.as_ref().map(|b| pb::BreakGlass {
            reason_code: b.reason.as_str().to_string(),
            justification: b.justification.clone(),
        }),
        confirm_candidate: q.confirm_candidate.clone().unwrap_or_default(),
    }
}

/// Converts the acting user to the wire.
pub fn acting_user_to_wire(user: &ActingUser) -> pb::ActingUser {
    pb::ActingUser {
        user_id: user.user_id.clone(),
        display_name: user.display_name.clone(),
        role: user.role.clone(),
        team: user.team.clone(),
    }
}

/// Converts a record to the wire.
pub fn record_to_wire(r: &Record) -> pb::RelationshipRecord {
    pb::RelationshipRecord {
        record_id: r.record_id.clone(),
        version: r.version,
        custodian: r.custodian.clone(),
        subject: Some(subject_to_wire(&r.subject)),
        relationship_type: r.relationship_type.to_wire() as i32,
        service: r.service.clone(),
        period: Some(pb::Period {
            start: r.period.start.to_string(),
            end: r.period.end.map(|d| d.to_string()).unwrap_or_default(),
        }),
        key_worker: contact_to_wire(&r.key_worker),
        out_of_hours: contact_to_wire(&r.out_of_hours),
        sensitivity: r.sensitivity.to_wire() as i32,
        security_labels: r.security_labels.clone(),
        lawful_basis: Some(pb::LawfulBasis {
            article6: r.lawful_basis.article6.to_wire() as i32,
            article9: r.lawful_basis.article9.map_or(0, |a| a.to_wire() as i32),
            statute: r.lawful_basis.statute.clone(),
        }),
        permitted_purposes: r
            .permitted_purposes
            .iter()
            .map(|p| p.to_wire() as i32)
            .collect(),
        residency: r.residency.to_wire() as i32,
        provenance: Some(pb::Provenance {
            source_system: r.provenance.source_system.clone(),
            content_hash: r.provenance.content_hash.clone(),
        }),
        retain_until: r.retain_until.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// Converts field errors to the wire.
pub fn field_errors_to_wire(errors: &[FieldError]) -> Vec<pb::FieldError> {
    errors
        .iter()
        .map(|e| pb::FieldError {
            field: e.field.clone(),
            reason: e.reason.clone(),
        })
        .collect()
}

/// Converts and validates a directive from the wire.
pub fn directive_from_wire(d: pb::SharingDirective) -> Result<Directive, Vec<FieldError>> {
    let mut errors = Vec::new();
    let kind = DirectiveKind::from_wire(d.kind);
    if kind.is_none() {
        errors.push(FieldError::new("kind", wire_code_reason(d.kind)));
    }
    let status = DirectiveStatus::from_wire(d.status);
    if status.is_none() {
        errors.push(FieldError::new("status", wire_code_reason(d.status)));
    }
    let period = d.period.unwrap_or_default();
    if period.start.is_empty() {
        errors.push(FieldError::new("period.start", "is required"));
    }
    let start = parse_date("period.start", &period.start, &mut errors);
    let end = parse_date("period.end", &period.end, &mut errors);
    let mut purposes = Vec::new();
    for (i, p) in d.purposes.iter().enumerate() {
        match Purpose::from_wire(*p) {
            Some(p) => purposes.push(p),
            None => errors.push(FieldError::new(
                format!("purposes[{i}]"),
                wire_code_reason(*p),
            )),
        }
    }
    let recorded_at = if d.recorded_at.is_empty() {
        errors.push(FieldError::new("recorded_at", "is required"));
        None
    } else {
        match DateTime::parse_from_rfc3339(&d.recorded_at) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(FieldError::new(
                    "recorded_at",
                    format!("{} is not an RFC 3339 time", quote(&d.recorded_at)),
                ));
                None
            }
        }
    };
    let (Some(kind), Some(status), Some(start), Some(recorded_at)) =
        (kind, status, start, recorded_at)
    else {
        return Err(capped(errors));
    };
    let directive = Directive {
        directive_id: d.directive_id,
        version: d.version,
        custodian: d.custodian,
        record_id: d.record_id,
        kind,
        status,
        period: Period { start, end },
        grantor: d.grantor,
        purposes,
        recipient_kinds: d.recipient_kinds,
        recipient_authorities: d.recipient_authorities,
        recorded_at,
        note: d.note,
    };
    directive.collect_errors(&mut errors);
    if errors.is_empty() {
        Ok(directive)
    } else {
        Err(capped(errors))
    }
}

fn wire_code_reason(value: i32) -> String {
    if value == 0 {
        "is required".into()
    } else {
        format!("{value} is not a known code")
    }
}

/// Converts a directive to the wire.
pub fn directive_to_wire(d: &Directive) -> pb::SharingDirective {
    pb::SharingDirective {
        directive_id: d.directive_id.clone(),
        version: d.version,
        custodian: d.custodian.clone(),
        record_id: d.record_id.clone(),
        kind: d.kind.to_wire() as i32,
        status: d.status.to_wire() as i32,
        period: Some(pb::Period {
            start: d.period.start.to_string(),
            end: d.period.end.map(|e| e.to_string()).unwrap_or_default(),
        }),
        grantor: d.grantor.clone(),
        purposes: d.purposes.iter().map(|p| p.to_wire() as i32).collect(),
        recipient_kinds: d.recipient_kinds.clone(),
        recipient_authorities: d.recipient_authorities.clone(),
        // Every digit the time has: truncating to seconds would reorder
        // directives recorded within one second (the most recent wins).
        recorded_at: d
            .recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        note: d.note.clone(),
    }
}

/// Converts a subscription request from the wire: every field as given,
/// what could not be parsed (a code out of range) in `malformed`.
pub fn subscribe_from_wire(req: pb::SubscribeRequest) -> crate::subscription::SubscribeRequest {
    let mut malformed = Vec::new();
    let purpose = match req.purpose {
        0 => None,
        n => {
            let p = Purpose::from_wire(n);
            if p.is_none() {
                malformed.push(FieldError::new(
                    "purpose",
                    format!("{n} is not a known purpose"),
                ));
            }
            p
        }
    };
    let mut relationship_types = Vec::new();
    for (i, n) in req
        .relationship_types
        .iter()
        .take(crate::subscription::MAX_SUBSCRIPTION_CODES + 1)
        .enumerate()
    {
        match RelationshipType::from_wire(*n) {
            Some(t) => relationship_types.push(t),
            None => malformed.push(FieldError::new(
                format!("relationship_types[{i}]"),
                format!("{n} is not a known relationship type"),
            )),
        }
    }
    crate::subscription::SubscribeRequest {
        user: acting_user_from_wire(req.acting_user),
        nhs_number: req.nhs_number,
        relationship_types,
        categories: req.categories,
        purpose,
        ends_on: (!req.ends_on.is_empty()).then_some(req.ends_on),
        malformed,
    }
}

/// Converts a checked subscription request to the wire (the agent's side).
pub fn subscribe_to_wire(s: &crate::subscription::CheckedSubscribe) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        acting_user: Some(acting_user_to_wire(&s.user)),
        nhs_number: s.nhs_number.as_digits(),
        relationship_types: s
            .relationship_types
            .iter()
            .map(|t| t.to_wire() as i32)
            .collect(),
        categories: s.categories.clone(),
        purpose: s.purpose.to_wire() as i32,
        ends_on: s.ends_on.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    }

    fn sample() -> Record {
        let json = r#"{"record_id":"cpp-1","version":2,"custodian":"E08000003",
            "subject":{"nhs_number":"9434765919"},"relationship_type":"child_protection_plan",
            "period":{"start":"2025-01-01"},"key_worker":{"name":"A","phone":"0161 000 0000"},
            "lawful_basis":{"article6":"public_task","statute":"Children Act 1989 s47"},
            "sensitivity":"normal",
            "permitted_purposes":["safeguarding"],"residency":"england"}"#;
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn round_trips_through_the_wire() {
        let r = sample();
        assert_eq!(record_from_wire(record_to_wire(&r), today()), Ok(r));
    }

    #[test]
    fn collects_every_wire_error() {
        let mut w = record_to_wire(&sample());
        w.relationship_type = 0;
        w.residency = 77;
        w.period.as_mut().unwrap().end = "2025-13-01".into();
        w.subject.as_mut().unwrap().nhs_number = "9434765918".into();
        w.lawful_basis = None;
        let fields: Vec<_> = record_from_wire(w, today())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "subject.nhs_number",
                "relationship_type",
                "period.end",
                "lawful_basis.article6",
                "residency"
            ]
        );
    }

    #[test]
    fn a_rejected_value_is_quoted_only_as_a_short_prefix() {
        let mut w = record_to_wire(&sample());
        w.period.as_mut().unwrap().end = "9".repeat(300_000);
        let errors = record_from_wire(w, today()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "period.end");
        assert!(errors[0].reason.len() < 120, "{}", errors[0].reason);
        assert!(errors[0].reason.contains("(300000 characters)"));
    }

    #[test]
    fn repeated_fields_are_bounded_at_the_bound_and_one_past() {
        use crate::validate::{MAX_LABELS, MAX_LOCAL_IDS};
        let with = |labels: usize, ids: usize| {
            let mut w = record_to_wire(&sample());
            w.security_labels = (0..labels).map(|i| format!("l{i}")).collect();
            w.subject.as_mut().unwrap().local_ids = (0..ids)
                .map(|i| pb::LocalIdentifier {
                    system: "mosaic".into(),
                    value: format!("v{i}"),
                })
                .collect();
            record_from_wire(w, today())
        };
        assert!(with(MAX_LABELS, MAX_LOCAL_IDS).is_ok());
        let fields: Vec<_> = with(MAX_LABELS + 1, MAX_LOCAL_IDS + 1)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["subject.local_ids", "security_labels"]);

        // Purposes: every code once is the most; more is refused with one
        // error, however many bad codes follow.
        let mut w = record_to_wire(&sample());
        w.permitted_purposes = Purpose::ALL.iter().map(|p| p.to_wire() as i32).collect();
        assert!(record_from_wire(w.clone(), today()).is_ok());
        w.permitted_purposes
            .extend(std::iter::repeat_n(9999, 100_000));
        let errors = record_from_wire(w, today()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "permitted_purposes");
    }

    #[test]
    fn the_error_list_is_capped_with_a_count_of_the_rest() {
        use crate::error::{MAX_FIELD_ERRORS, MORE_ERRORS_FIELD};
        let mut w = record_to_wire(&sample());
        w.security_labels = vec!["bad label".into(); crate::validate::MAX_LABELS];
        w.subject.as_mut().unwrap().local_ids = vec![
            pb::LocalIdentifier {
                system: "bad system".into(),
                value: "bad value".into(),
            };
            crate::validate::MAX_LOCAL_IDS
        ];
        let errors = record_from_wire(w, today()).unwrap_err();
        assert_eq!(errors.len(), MAX_FIELD_ERRORS + 1);
        let last = errors.last().unwrap();
        assert_eq!(last.field, MORE_ERRORS_FIELD);
        // 16 labels + 2 × 8 local-id fields = 32 errors: 20 shown, 12 counted.
        assert_eq!(last.reason, "and 12 more field errors");
    }

    #[test]
    fn a_checked_query_round_trips_through_the_wire() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let sent = pb::QueryRequest {
            acting_user: Some(pb::ActingUser {
                user_id: " u1 ".into(),
                role: "ed_clinician".into(),
                ..Default::default()
            }),
            purpose: Purpose::Emergency.to_wire() as i32,
            subject: Some(pb::Subject {
                nhs_number: "9434765919".into(),
                ..Default::default()
            }),
            break_glass: Some(pb::BreakGlass {
                reason_code: "life_threatening".into(),
                justification: " unconscious, no history available ".into(),
            }),
            confirm_candidate: String::new(),
        };
        let checked = query_from_wire(sent).check(today).unwrap();
        assert_eq!(checked.user.user_id, "u1");
        assert_eq!(
            checked.break_glass.as_ref().unwrap().justification,
            "unconscious, no history available"
        );
        let again = query_from_wire(query_to_wire(&checked))
            .check(today)
            .unwrap();
        assert_eq!(again, checked);
    }

    #[test]
    fn a_query_off_the_wire_reports_what_could_not_be_parsed() {
        let errors = query_from_wire(pb::QueryRequest {
            purpose: 99,
            subject: Some(pb::Subject {
                nhs_number: "1234".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .check(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap())
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "purpose",
                "subject.nhs_number",
                "acting_user.user_id",
                "acting_user.role"
            ]
        );
    }

    #[test]
    fn the_acting_user_is_trimmed_off_the_wire() {
        let user = acting_user_from_wire(Some(pb::ActingUser {
            user_id: "  jsmith ".into(),
            display_name: format!("J. Smith{}", " ".repeat(10_000)),
            role: "social_worker".into(),
            team: String::new(),
        }));
        assert_eq!(user.user_id, "jsmith");
        assert_eq!(user.display_name, "J. Smith");
        assert_eq!(acting_user_from_wire(None), ActingUser::default());
    }

    #[test]
    fn a_missing_period_start_is_named() {
        let mut w = record_to_wire(&sample());
        w.period = None;
        let errors = record_from_wire(w, today()).unwrap_err();
        assert_eq!(errors, vec![FieldError::new("period.start", "is required")]);
    }
}
