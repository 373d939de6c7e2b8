//! A case worker's question: who else is involved with this person?
//!
//! The agent asks the hub on behalf of a named member of staff, in a stated
//! role and for a stated purpose; the authority (from the certificate) answers
//! for that assertion. The person is named by NHS number or, without one, by
//! demographics (given and family name, date of birth, postcode), which the
//! hub scores: a certain match is answered, possible ones come back as
//! candidates, and the case worker confirms one (`--confirm CANDIDATE_ID`).
//! In an emergency the case worker may break glass, with a coded reason and
//! a justification; the hub flags it for review and tells the custodians.
//! Everything is checked here first, so a typo gets a clear message without
//! a round trip or an audit entry. The answer is turned into a plain view,
//! printed as a table for people or as JSON for scripts.
//!
//! | file | what it holds |
//! |---|---|
//! | `args.rs` | the case worker's flags, checked against the query contract |
//! | `response.rs` | the answer as a plain view (from the wire) |
//! | `render.rs` | the view as a table for people |

mod args;
mod render;
mod response;

use kith_core::nhs_number::NhsNumberError;
use kith_proto::v1 as pb;
use pb::query_service_client::QueryServiceClient;

pub use args::{BreakGlassArgs, DemographicArgs, QueryArgs, build_request, build_request_as_of};
pub use response::{
    AuthorityStatusView, CandidateView, ContactView, DisclosedRecordView, QueryResponse,
};

use crate::config::{AgentConfig, ConfigError};
use crate::hub_client::{CallError, HubError, call_with_failover};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("NHS number {given:?}: {source}")]
    NhsNumber {
        given: String,
        source: NhsNumberError,
    },
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
    /// The certificate names another authority, is expired or not yet
    /// valid, or cannot be read: found before any call to the hub.
    #[error(transparent)]
    Certificate(#[from] ConfigError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("the hub at {address} refused the query: {code:?}: {message}")]
    Refused {
        address: String,
        code: tonic::Code,
        message: String,
    },
}

/// Asks the hub, failing over between addresses on transient errors. The
/// arguments and the certificate are checked first.
pub async fn query(config: &AgentConfig, args: QueryArgs) -> Result<QueryResponse, QueryError> {
    let request = build_request(&args)?;
    config.check_certificate_at(chrono::Utc::now())?;
    // The whole query, hub and custodians included, is one trace (when
    // traces are exported); the span names only the operation.
    let span = tracing::info_span!("kith.query", otel.kind = "client");
    let answer = tracing::Instrument::instrument(
        call_with_failover(config, "query", |channel| {
            let mut request = tonic::Request::new(request.clone());
            kith_ops::telemetry::inject(request.metadata_mut());
            async move { QueryServiceClient::new(channel).query(request).await }
        }),
        span,
    )
    .await;
    match answer {
        Ok((address, response)) => Ok(QueryResponse::from_wire(&address, response.into_inner())),
        Err(CallError::Hub(e)) => Err(QueryError::Hub(e)),
        Err(CallError::Status { address, status }) => Err(QueryError::Refused {
            address,
            code: status.code(),
            message: status.message().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use kith_core::Purpose;

    fn args() -> QueryArgs {
        QueryArgs {
            nhs_number: Some("943 476 5919".into()),
            purpose: Some(Purpose::Safeguarding),
            user_id: "u1".into(),
            role: "social_worker".into(),
            ..QueryArgs::default()
        }
    }

    fn by_demographics() -> QueryArgs {
        QueryArgs {
            nhs_number: None,
            demographics: DemographicArgs {
                given_name: Some(" Amara ".into()),
                family_name: Some("Davies".into()),
                date_of_birth: Some("1958-11-02".parse().unwrap()),
                postcode: Some("M16 6TR".into()),
            },
            ..args()
        }
    }

    fn today() -> NaiveDate {
        "2026-03-01".parse().unwrap()
    }

    fn flag_of(err: QueryError) -> String {
        match err {
            QueryError::Invalid { flag, .. } => flag.to_string(),
            QueryError::Missing(what) => what.to_string(),
            other => other.to_string(),
        }
    }

    #[test]
    fn a_demographic_search_sends_the_four_fields_and_no_nhs_number() {
        let req = build_request_as_of(&by_demographics(), today()).unwrap();
        let subject = req.subject.unwrap();
        assert_eq!(subject.nhs_number, "");
        let d = subject.demographics.unwrap();
        assert_eq!(
            (
                d.given_name.as_str(),
                d.family_name.as_str(),
                d.date_of_birth.as_str(),
                d.postcode.as_str()
            ),
            ("Amara", "Davies", "1958-11-02", "M16 6TR")
        );
        assert!(req.break_glass.is_none());
        assert_eq!(req.confirm_candidate, "");
    }

    #[test]
    fn the_acting_user_is_checked_as_the_hub_checks_it() {
        let mut a = args();
        a.display_name = "Sam \u{1b}[31mPatel".into();
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--name"
        );
        let mut a = args();
        a.team = "t".repeat(kith_core::acting_user::MAX_NAME_CHARS + 1);
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--team"
        );
        let mut a = args();
        a.role = "social worker".into();
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--role"
        );
        let mut a = args();
        a.display_name = format!(" Sam Patel{}", " ".repeat(500));
        let req = build_request_as_of(&a, today()).unwrap();
        assert_eq!(req.acting_user.unwrap().display_name, "Sam Patel");
    }

    #[test]
    fn an_nhs_number_that_is_never_issued_is_refused_before_the_hub() {
        let mut a = args();
        a.nhs_number = Some("0000000000".into());
        let err = build_request_as_of(&a, today()).unwrap_err();
        assert!(err.to_string().contains("ever issued"), "{err}");
    }

    #[test]
    fn bad_demographics_are_named_by_flag() {
        let mut a = by_demographics();
        a.nhs_number = Some("9434765919".into());
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--nhs-number"
        );
        let mut a = by_demographics();
        a.demographics.family_name = Some(" ".into());
        assert!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()).starts_with("--family-name")
        );
        let mut a = by_demographics();
        a.demographics.date_of_birth = None;
        assert!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()).starts_with("--date-of-birth")
        );
        let mut a = by_demographics();
        a.demographics.date_of_birth = Some("2026-03-02".parse().unwrap());
        let err = build_request_as_of(&a, today()).unwrap_err().to_string();
        assert_eq!(err, "--date-of-birth: 2026-03-02 is in the future");
        let mut a = by_demographics();
        a.demographics.postcode = Some("NOT A CODE".into());
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--postcode"
        );
        // No way of naming the person at all.
        let mut a = args();
        a.nhs_number = None;
        assert!(matches!(
            build_request_as_of(&a, today()),
            Err(QueryError::Missing(_))
        ));
    }

    #[test]
    fn break_glass_needs_a_known_reason_and_a_real_justification() {
        let mut a = args();
        a.break_glass = Some(BreakGlassArgs {
            reason_code: "life_threatening".into(),
            justification: "  unconscious at scene, no history  ".into(),
        });
        let req = build_request_as_of(&a, today()).unwrap();
        let bg = req.break_glass.unwrap();
        assert_eq!(bg.reason_code, "life_threatening");
        assert_eq!(bg.justification, "unconscious at scene, no history");

        a.break_glass = Some(BreakGlassArgs {
            reason_code: "curiosity".into(),
            justification: "unconscious at scene".into(),
        });
        let err = build_request_as_of(&a, today()).unwrap_err().to_string();
        assert!(
            err.starts_with("--break-glass: unknown reason code"),
            "{err}"
        );
        assert!(err.contains("immediate_safeguarding_risk"), "{err}");
        a.break_glass = Some(BreakGlassArgs {
            reason_code: "other".into(),
            justification: "urgent".into(),
        });
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--justification"
        );
        a.break_glass = Some(BreakGlassArgs {
            reason_code: "other".into(),
            justification: "x".repeat(1001),
        });
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--justification"
        );
    }

    #[test]
    fn a_confirmation_repeats_the_search_and_is_not_blank() {
        let mut a = by_demographics();
        a.confirm = Some("cand-1".into());
        let req = build_request_as_of(&a, today()).unwrap();
        assert_eq!(req.confirm_candidate, "cand-1");
        assert!(req.subject.unwrap().demographics.is_some());
        let mut alone = args();
        alone.nhs_number = None;
        alone.confirm = Some("cand-1".into());
        let err = build_request_as_of(&alone, today())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--confirm: give the same --given-name"),
            "{err}"
        );
        a.confirm = Some(" ".into());
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--confirm"
        );
    }

    #[test]
    fn candidates_matching_and_break_glass_are_shown() {
        let wire = pb::QueryResponse {
            query_id: "q-2".into(),
            audit_index: 7,
            break_glass_until: "2026-03-01T14:00:00Z".into(),
            // The hub names how it searched even when it found only
            // candidates: no records, so no "matched by" line.
            matched_by: "demographics".into(),
            candidates: vec![pb::MatchCandidate {
                candidate_id: "cand-1".into(),
                score: 9.87,
                rule_version: "2026-01".into(),
                agreed: vec!["family_name".into(), "date_of_birth".into()],
                disagreed: vec!["postcode".into()],
                record: Some(pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Summary as i32,
                    record: Some(pb::RelationshipRecord {
                        custodian: "E08000006".into(),
                        relationship_type: pb::RelationshipType::LookedAfterChild as i32,
                        ..Default::default()
                    }),
                    custodian_name: "Salford City Council".into(),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let view = QueryResponse::from_wire("https://hub:1", wire);
        let table = view.render_table();
        assert!(table.starts_with("BREAK GLASS: emergency access is open for you and this person until 2026-03-01T14:00:00Z"), "{table}");
        assert!(
            table.contains("(no certain match: see the possible matches below)"),
            "{table}"
        );
        assert!(table.contains("--confirm CANDIDATE_ID"), "{table}");
        let row = table
            .lines()
            .find(|l| l.starts_with("cand-1"))
            .expect(&table);
        for part in [
            "9.9",
            "2026-01",
            "family_name, date_of_birth",
            "postcode",
            "Salford City Council (E08000006)",
            "looked after child",
            "summary",
        ] {
            assert!(row.contains(part), "{part} missing from {row}");
        }
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["candidates"][0]["candidate_id"], "cand-1");
        assert_eq!(json["candidates"][0]["record"]["custodian"], "E08000006");
        assert_eq!(json["break_glass_until"], "2026-03-01T14:00:00Z");
        assert!(!table.contains("matched by"), "{table}");
        assert_eq!(json["matched_by"], "demographics");

        let matched = QueryResponse::from_wire(
            "https://hub:1",
            pb::QueryResponse {
                matched_by: "nhs_number".into(),
                records: vec![pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Withheld as i32,
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        assert!(matched.render_table().contains("matched by: nhs number"));
        assert_eq!(
            serde_json::to_value(&matched).unwrap()["matched_by"],
            "nhs_number"
        );
    }

    #[test]
    fn hostile_text_from_the_hub_or_a_custodian_is_shown_escaped() {
        let wire = pb::QueryResponse {
            query_id: "q-3".into(),
            notice: "\x1b[2Jnote".into(),
            records: vec![pb::DisclosedRecord {
                level: pb::DisclosureLevel::Detail as i32,
                record: Some(pb::RelationshipRecord {
                    custodian: "R0A".into(),
                    service: "Ward\u{202e}7".into(),
                    key_worker: Some(pb::Contact {
                        name: "\x1b[31mJo\nFAKE".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            authority_statuses: vec![pb::AuthorityStatus {
                authority: "E08000006".into(),
                state: pb::AuthorityState::Unreachable as i32,
                detail: "timed out\r\x07".into(),
            }],
            ..Default::default()
        };
        let table = QueryResponse::from_wire("https://hub:1", wire).render_table();
        assert!(
            !table
                .chars()
                .any(|c| crate::terminal::is_dangerous(c) && c != '\n'),
            "{table:?}"
        );
        for shown in [
            "note: \\u{1b}[2Jnote",
            "Ward\\u{202e}7",
            "\\u{1b}[31mJo\\u{a}FAKE",
            "(timed out\\u{d}\\u{7})",
        ] {
            assert!(table.contains(shown), "{shown} missing from {table}");
        }
        assert!(!table.lines().any(|l| l.starts_with("FAKE")), "{table}");
    }

    #[test]
    fn a_bad_nhs_number_is_refused_before_any_call() {
        let mut a = args();
        a.nhs_number = Some("9434765918".into());
        let err = build_request(&a).unwrap_err();
        assert!(err.to_string().contains("check digit"), "{err}");
        let mut a = args();
        a.role = " ".into();
        assert!(matches!(build_request(&a), Err(QueryError::Missing(_))));
        let req = build_request(&args()).unwrap();
        assert_eq!(req.subject.unwrap().nhs_number, "9434765919");
        assert_eq!(req.purpose, pb::Purpose::Safeguarding as i32);
    }

    #[test]
    fn the_table_shows_contacts_and_levels() {
        let wire = pb::QueryResponse {
            query_id: "q-1".into(),
            audit_index: 42,
            records: vec![
                pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Summary as i32,
                    record: Some(pb::RelationshipRecord {
                        custodian: "E08000003".into(),
                        relationship_type: pb::RelationshipType::ChildProtectionPlan as i32,
                        key_worker: Some(pb::Contact {
                            name: "J. Smith".into(),
                            phone: "0161 000 0000".into(),
                            ..Default::default()
                        }),
                        period: Some(pb::Period {
                            start: "2025-01-01".into(),
                            end: String::new(),
                        }),
                        ..Default::default()
                    }),
                    reason: "restricted".into(),
                    decided_by: vec!["p1".into()],
                    custodian_name: "Manchester City Council".into(),
                },
                pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Withheld as i32,
                    record: Some(pb::RelationshipRecord {
                        custodian: "RX1".into(),
                        ..Default::default()
                    }),
                    reason: "purpose not permitted".into(),
                    decided_by: vec![],
                    custodian_name: String::new(),
                },
            ],
            notice: String::new(),
            authority_statuses: vec![pb::AuthorityStatus {
                authority: "RX1".into(),
                state: pb::AuthorityState::Unreachable as i32,
                detail: "no answer within 2000 ms".into(),
            }],
            ..Default::default()
        };
        let view = QueryResponse::from_wire("https://hub:1", wire);
        let table = view.render_table();
        assert!(table.contains("child protection plan"), "{table}");
        assert!(table.contains("J. Smith, 0161 000 0000"), "{table}");
        assert!(table.contains("since 2025-01-01"), "{table}");
        assert!(table.contains("withheld"), "{table}");
        assert!(
            table.contains("Manchester City Council (E08000003)"),
            "{table}"
        );
        assert!(table.contains("audit entry 42"), "{table}");
        assert!(table.contains("partial answer: RX1"), "{table}");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["records"][1]["level"], "withheld");
        assert!(json["records"][1].get("relationship_type").is_none());
        assert_eq!(json["records"][0]["key_worker"]["phone"], "0161 000 0000");
    }
}
