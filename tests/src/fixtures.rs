//! Records, directives, queries and users as tests build them, and the
//! drop-folder files they write.

use super::*;

/// A valid record of `custodian` about NHS number `nhs`, as JSON.
pub fn record_json(
    custodian: &str,
    record_id: &str,
    version: u64,
    nhs: &str,
    relationship_type: &str,
    purposes: &[&str],
) -> String {
    serde_json::json!({
        "record_id": record_id,
        "version": version,
        "custodian": custodian,
        "subject": {"nhs_number": nhs, "demographics": {"given_name": "Amelia", "family_name": "O'Brien",
            "date_of_birth": "2015-04-12", "postcode": "M14 5RT"}},
        "relationship_type": relationship_type,
        "sensitivity": "normal",
        "service": "Children's Services",
        "period": {"start": "2025-02-01"},
        "key_worker": {"name": "Jo Smith", "role": "Social worker", "phone": "0161 234 5000"},
        "out_of_hours": {"name": "Emergency Duty Team", "phone": "0161 234 5999"},
        "lawful_basis": {"article6": "public_task", "article9": "substantial_public_interest", "statute": "Children Act 1989 s47"},
        "permitted_purposes": purposes,
        "residency": "england",
        "provenance": {"source_system": "mosaic"}
    })
    .to_string()
}

/// The same record as a wire message.
pub fn record_wire(
    custodian: &str,
    record_id: &str,
    version: u64,
    nhs: &str,
    relationship_type: &str,
    purposes: &[&str],
) -> pb::RelationshipRecord {
    let record: kith_core::Record = serde_json::from_str(&record_json(
        custodian,
        record_id,
        version,
        nhs,
        relationship_type,
        purposes,
    ))
    .unwrap();
    kith_core::wire::record_to_wire(&record)
}

/// A query request from a user with `role` for `purpose`.
pub fn query_request(nhs: &str, purpose: pb::Purpose, role: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        acting_user: Some(pb::ActingUser {
            user_id: "u-1001".into(),
            display_name: "Sam Patel".into(),
            role: role.into(),
            team: "Children's Services".into(),
        }),
        purpose: purpose as i32,
        subject: Some(pb::Subject {
            nhs_number: nhs.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Path of a file in the agent's drop folder.
pub fn drop_path(config: &AgentConfig, name: &str) -> PathBuf {
    config.drop_dir.join(name)
}

/// The `n`th valid NHS number in the test range 999 000 0000 – 999 999 9999
/// (distinct for distinct `n`).
pub fn test_nhs_number(n: u32) -> String {
    kith_demo::synthetic::test_nhs_number(u64::from(n)).as_digits()
}

/// An active directive of `custodian` about its record `record_id`, in
/// force from 2025-01-01, covering every purpose and recipient.
pub fn directive_wire(
    custodian: &str,
    directive_id: &str,
    version: u64,
    record_id: &str,
    kind: pb::DirectiveKind,
    status: pb::DirectiveStatus,
) -> pb::SharingDirective {
    pb::SharingDirective {
        directive_id: directive_id.into(),
        version,
        custodian: custodian.into(),
        record_id: record_id.into(),
        kind: kind as i32,
        status: status as i32,
        period: Some(pb::Period {
            start: "2025-01-01".into(),
            end: String::new(),
        }),
        grantor: "the person".into(),
        purposes: vec![],
        recipient_kinds: vec![],
        recipient_authorities: vec![],
        recorded_at: "2026-01-01T09:00:00Z".into(),
        note: String::new(),
    }
}

/// An acting user with `role`.
pub fn acting_user(role: &str) -> pb::ActingUser {
    pb::ActingUser {
        user_id: format!("{role}-1"),
        display_name: "Alex Auditor".into(),
        role: role.into(),
        team: "Information Governance".into(),
    }
}

/// Writes a file into an agent's drop folder as a source system should: to
/// a temporary name, then renamed into place.
pub fn drop_file(config: &AgentConfig, name: &str, contents: &str) {
    let temp = config.drop_dir.join(format!(".{name}.partial"));
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, config.drop_dir.join(name)).unwrap();
}

/// The encoding of a `PublishRecordsRequest` holding `n` empty records:
/// 2 bytes each on the wire, over a kilobyte each once decoded.
pub fn empty_records_request(n: usize) -> Vec<u8> {
    [0x0a, 0x00].repeat(n)
}
