//! Query checks, both ways across the wire.
//!
//! The first byte picks a side; the rest is a protobuf message.
//!
//! * even: a `kith.v1.QueryRequest` as the hub receives it, through
//!   `kith_core::wire::query_from_wire` and `QueryRequest::check` (acting
//!   user, purpose, subject search, candidate, break-glass claim), the
//!   refusal turned into a gRPC status as the hub does. The same fields
//!   also go through the agent's own `build_request_as_of`, as if typed at
//!   `kith-agent query`.
//! * odd: a `kith.v1.QueryResponse` or `Notification` as an agent receives
//!   it from the hub, converted and rendered as `kith-agent query` and
//!   `kith-agent notifications` print it.
//!
//! Checks: no panic; a refusal names at least one field; a check that
//! passes searches by NHS number exactly when one parsed, and the checked
//! query sent on (`query_to_wire`) checks again to the same query.
#![no_main]

use chrono::NaiveDate;
use kith_agent::query::{BreakGlassArgs, DemographicArgs, QueryArgs, build_request_as_of};
use kith_core::Purpose;
use kith_core::query::SubjectSearch;
use kith_core::wire::{query_from_wire, query_to_wire};
use kith_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// The same request as `kith-agent query` arguments.
fn agent_args(req: &pb::QueryRequest) -> QueryArgs {
    let subject = req.subject.clone().unwrap_or_default();
    let user = req.acting_user.clone().unwrap_or_default();
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    QueryArgs {
        nhs_number: some(&subject.nhs_number),
        demographics: subject
            .demographics
            .map(|d| DemographicArgs {
                given_name: some(&d.given_name),
                family_name: some(&d.family_name),
                date_of_birth: NaiveDate::parse_from_str(&d.date_of_birth, "%Y-%m-%d").ok(),
                postcode: some(&d.postcode),
            })
            .unwrap_or_default(),
        confirm: some(&req.confirm_candidate),
        break_glass: req.break_glass.as_ref().map(|b| BreakGlassArgs {
            reason_code: b.reason_code.clone(),
            justification: b.justification.clone(),
        }),
        purpose: Purpose::from_wire(req.purpose),
        user_id: user.user_id,
        role: user.role,
        display_name: user.display_name,
        team: user.team,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&side, bytes)) = data.split_first() else {
        return;
    };
    if side % 2 == 0 {
        let Ok(wire) = pb::QueryRequest::decode(bytes) else {
            return;
        };
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
        let _ = build_request_as_of(&agent_args(&wire), today);
        let request = query_from_wire(wire);
        let parsed_nhs = request.nhs_number;
        match request.check(today) {
            Ok(checked) => {
                assert!(request.malformed.is_empty());
                match (&checked.subject, parsed_nhs) {
                    (SubjectSearch::NhsNumber(n), Some(m)) => assert_eq!(*n, m),
                    (SubjectSearch::Demographics { .. }, None) => {}
                    (s, n) => panic!("search {s:?} for NHS number {n:?}"),
                }
                let again = query_from_wire(query_to_wire(&checked))
                    .check(today)
                    .expect("a checked query, sent on, checks again");
                assert_eq!(again, checked, "a checked query changed on the wire");
            }
            Err(errors) => {
                assert!(!errors.is_empty(), "a refusal with no field error");
                assert!(errors.iter().all(|e| !e.field.is_empty()));
                let status = tonic::Status::invalid_argument(kith_core::error::join(&errors));
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
            }
        }
    } else if side % 4 == 1 {
        let Ok(wire) = pb::QueryResponse::decode(bytes) else {
            return;
        };
        let response =
            kith_agent::query::QueryResponse::from_wire("https://hub.example:7443", wire);
        let _ = response.render_table();
    } else {
        let Ok(wire) = pb::Notification::decode(bytes) else {
            return;
        };
        if let Ok(n) = kith_agent::notifications::Notification::from_wire(wire) {
            let _ = n.who();
            let _ = n.organisation();
            let _ = kith_agent::notifications::render_table(&[n]);
        }
    }
});
