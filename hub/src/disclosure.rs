//! What a requester may see of one record: the policy decision, and the
//! record cut down to match it.
//!
//! The level comes from the loaded Cedar policy set (`kith-policy`), never
//! from code here: this module only translates the hub's records and
//! callers into the policy's inputs, and applies the level it returns.

use kith_core::{Contact, Record, RelationshipType};
use kith_policy::{Level, RecordFacts, Requester};

use crate::directory::Directory;
use crate::hub::Caller;
use crate::store::StoredRecord;

/// The acting user, as the calling authority asserts it (one type for hub
/// and agent, checked by `ActingUser::check`).
pub use kith_core::ActingUser;

/// The policy's view of a requester.
pub fn requester(caller: &Caller, user: &ActingUser) -> Requester {
    Requester {
        authority_code: caller.member.code.clone(),
        authority_kind: caller.member.kind.clone(),
        jurisdiction: caller.member.jurisdiction.clone(),
        user_id: user.user_id.clone(),
        role: user.role.clone(),
        team: user.team.clone(),
    }
}

/// The policy's view of a record, with what its directives resolved to
/// for the request at hand. A custodian missing from the directory
/// gets kind and jurisdiction "unknown", which no agreement names: fail closed.
pub fn facts(
    directory: &Directory,
    record: &Record,
    directives: &kith_core::directive::Resolution,
) -> RecordFacts {
    let member = directory.member(&record.custodian);
    RecordFacts::of(
        record,
        member.map_or("unknown", |m| m.kind.as_str()),
        member.map_or("unknown", |m| m.jurisdiction.as_str()),
        directives,
    )
}

/// A record cut down to a disclosure level.
#[derive(Debug, Clone, PartialEq)]
pub enum View {
    /// The whole record.
    Detail(Box<Record>),
    /// That the custodian is involved, how, and how to reach them.
    Summary(Box<Summary>),
    /// Only that the custodian holds something.
    Withheld,
}

/// The fields of a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub record_id: String,
    pub relationship_type: RelationshipType,
    pub service: String,
    pub key_worker: Contact,
    pub out_of_hours: Contact,
}

impl View {
    /// Cuts `stored` down to `level`; `None` for hidden.
    pub fn of(stored: &StoredRecord, level: Level) -> Option<View> {
        let r = &stored.record;
        match level {
            Level::Hidden => None,
            Level::Withheld => Some(View::Withheld),
            Level::Summary => Some(View::Summary(Box::new(Summary {
                record_id: r.record_id.clone(),
                relationship_type: r.relationship_type,
                service: r.service.clone(),
                key_worker: r.key_worker.clone(),
                out_of_hours: r.out_of_hours.clone(),
            }))),
            Level::Detail => {
                let mut full = r.clone();
                if stored.ended_on.is_some() {
                    full.period.end = stored.ended_on;
                }
                Some(View::Detail(Box::new(full)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecordStatus;

    fn stored() -> StoredRecord {
        let record: Record = serde_json::from_str(
            r#"{"record_id":"cpp-1","version":1,"custodian":"A","subject":{"nhs_number":"9434765919"},
            "relationship_type":"child_protection_plan","sensitivity":"normal","service":"Children's Services",
            "period":{"start":"2025-01-01"},"key_worker":{"name":"K","phone":"0161 000 0000"},
            "lawful_basis":{"article6":"public_task"},"permitted_purposes":["safeguarding"],"residency":"england"}"#,
        )
        .unwrap();
        StoredRecord {
            record,
            held_at_source: false,
            status: RecordStatus::Active,
            ended_on: chrono::NaiveDate::from_ymd_opt(2025, 6, 1),
            directives: vec![],
        }
    }

    #[test]
    fn each_level_shows_only_its_fields() {
        let s = stored();
        assert_eq!(View::of(&s, Level::Hidden), None);
        assert_eq!(View::of(&s, Level::Withheld), Some(View::Withheld));
        match View::of(&s, Level::Summary) {
            Some(View::Summary(summary)) => {
                assert_eq!(summary.key_worker.phone, "0161 000 0000");
                assert_eq!(
                    summary.relationship_type,
                    RelationshipType::ChildProtectionPlan
                );
            }
            other => panic!("expected a summary, got {other:?}"),
        }
        match View::of(&s, Level::Detail) {
            Some(View::Detail(r)) => {
                assert_eq!(r.period.end, chrono::NaiveDate::from_ymd_opt(2025, 6, 1))
            }
            other => panic!("expected detail, got {other:?}"),
        }
    }
}
