//! Audit entries as FHIR R4 `AuditEvent` resources, for audit repositories
//! that speak FHIR (IHE ATNA / BALP style).
//!
//! | AuditEvent | from the entry |
//! |---|---|
//! | `id` | `kith-audit-<index>` |
//! | `type` | DICOM (`http://dicom.nema.org/resources/ontology/DCM`): `110112` Query for queries; `110110` Patient Record for publish, end and withdraw; `110101` Audit Log Used for audit reads; `110113` Security Alert for refusals and policy loads; `110100` Application Activity otherwise |
//! | `subtype` | DICOM `110129` Security Configuration, for policy loads |
//! | `action` | `E` query or refusal, `C` publish, `U` end or policy load, `D` withdraw, `R` audit read |
//! | `recorded` | `at` |
//! | `outcome` | `0` success; `4` minor failure when refused, rejected or denied |
//! | `outcomeDesc` | `reason` |
//! | `agent[0]` | `who.identifier` = `urn:kith:authority` / authority; `altId` = user; `role` = `urn:kith:role` / role; `requestor` = true |
//! | `source` | the Kith hub (security source type 4, application server) |
//! | `entity` | the subject (`https://fhir.nhs.uk/Id/nhs-number`, role 1 Patient), then each record (`urn:kith:record:<custodian>` / record id, role 4 Domain Resource) with its version, decision and deciding policies as `detail` |
//! | `purposeOfEvent` | `urn:kith:purpose` / purpose |
//!
//! Withheld entries have no content to map and are left out.

use serde_json::{Value, json};

use super::entry::{AuditEntry, AuditKind};

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

/// The DICOM event type code and display for an entry kind.
pub fn event_type(kind: AuditKind) -> (&'static str, &'static str) {
    match kind {
        AuditKind::Query => ("110112", "Query"),
        AuditKind::Publish | AuditKind::End | AuditKind::Withdraw => ("110110", "Patient Record"),
        AuditKind::AuditRead => ("110101", "Audit Log Used"),
        AuditKind::Refusal | AuditKind::PolicyLoad => ("110113", "Security Alert"),
        _ => ("110100", "Application Activity"),
    }
}

/// The FHIR action code for an entry kind.
pub fn action(kind: AuditKind) -> &'static str {
    match kind {
        AuditKind::Publish => "C",
        AuditKind::End | AuditKind::PolicyLoad => "U",
        AuditKind::Withdraw => "D",
        AuditKind::AuditRead => "R",
        _ => "E",
    }
}

/// The FHIR outcome code for an entry outcome.
pub fn outcome(outcome: &str) -> &'static str {
    match outcome {
        "refused" | "rejected" | "permission_denied" | "denied" => "4",
        _ => "0",
    }
}

/// The `AuditEvent` for entry `index`.
pub fn audit_event(index: u64, e: &AuditEntry) -> Value {
    let (code, display) = event_type(e.kind);
    let mut agent = json!({
        "type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
            "code": "humanuser", "display": "human user"}]},
        "who": {"identifier": {"system": "urn:kith:authority", "value": e.authority}},
        "requestor": true,
    });
    if let Some(user) = &e.user {
        agent["altId"] = json!(user);
    }
    if let Some(role) = &e.role {
        agent["role"] =
            json!([{"coding": [{"system": "urn:kith:role", "code": role}], "text": role}]);
    }
    let mut entities = Vec::new();
    if let Some(subject) = &e.subject {
        entities.push(json!({
            "what": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": subject}},
            "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        }));
    }
    for r in &e.records {
        let mut detail = vec![
            json!({"type": "version", "valueString": r.version.to_string()}),
            json!({"type": "decision", "valueString": r.decision}),
        ];
        if !r.decided_by.is_empty() {
            detail.push(json!({"type": "decided_by", "valueString": r.decided_by.join(" ")}));
        }
        entities.push(json!({
            "what": {"identifier": {
                "system": format!("urn:kith:record:{}", r.custodian),
                "value": r.record_id}},
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            "detail": detail,
        }));
    }
    if let Some(query_id) = &e.query_id {
        entities.push(json!({
            "what": {"identifier": {"system": "urn:kith:query", "value": query_id}},
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": format!("kith-audit-{index}"),
        "type": {"system": DCM, "code": code, "display": display},
        "action": action(e.kind),
        "recorded": e.at,
        "outcome": outcome(&e.outcome),
        "agent": [agent],
        "source": {
            "site": "kith-hub",
            "observer": {"display": "Kith hub"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                      "code": "4", "display": "Application Server"}],
        },
    });
    if e.kind == AuditKind::PolicyLoad {
        event["subtype"] =
            json!([{"system": DCM, "code": "110129", "display": "Security Configuration"}]);
    }
    if !e.reason.is_empty() {
        event["outcomeDesc"] = json!(e.reason);
    }
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    if let Some(purpose) = &e.purpose {
        event["purposeOfEvent"] =
            json!([{"coding": [{"system": "urn:kith:purpose", "code": purpose}]}]);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_maps_to_an_audit_event() {
        let e: AuditEntry = serde_json::from_str(
            r#"{"kind":"query","at":"2026-01-02T03:04:05.000Z","authority":"E08000006",
                "user":"u-1","role":"social_worker","purpose":"safeguarding",
                "subject":"9990000018","outcome":"ok",
                "records":[{"custodian":"E08000003","record_id":"cpp-1","version":2,
                            "decision":"detail","decided_by":["children-safeguarding.detail"]}]}"#,
        )
        .unwrap();
        let ev = audit_event(7, &e);
        assert_eq!(ev["resourceType"], "AuditEvent");
        assert_eq!(ev["id"], "kith-audit-7");
        assert_eq!(ev["type"]["code"], "110112");
        assert_eq!(ev["action"], "E");
        assert_eq!(ev["outcome"], "0");
        assert_eq!(ev["recorded"], "2026-01-02T03:04:05.000Z");
        assert_eq!(ev["agent"][0]["who"]["identifier"]["value"], "E08000006");
        assert_eq!(ev["agent"][0]["altId"], "u-1");
        assert_eq!(
            ev["agent"][0]["role"][0]["coding"][0]["code"],
            "social_worker"
        );
        assert_eq!(ev["entity"][0]["what"]["identifier"]["value"], "9990000018");
        assert_eq!(ev["entity"][1]["what"]["identifier"]["value"], "cpp-1");
        assert_eq!(ev["entity"][1]["detail"][1]["valueString"], "detail");
        assert_eq!(ev["purposeOfEvent"][0]["coding"][0]["code"], "safeguarding");
        assert_eq!(outcome("refused"), "4");
        assert_eq!(
            (action(AuditKind::Publish), event_type(AuditKind::Publish).0),
            ("C", "110110")
        );
    }
}
