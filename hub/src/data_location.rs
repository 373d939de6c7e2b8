//! Where a record's detail may be held.
//!
//! At publish the policy set decides (`hold_detail`, from the record's
//! residency and the hub's jurisdiction) whether the hub may store a
//! record's detail. Where it may not, the hub stores only the index and
//! summary: what it needs to find the record, decide on it and tell a case
//! worker whom to contact. The detail (demographics, security labels, the
//! statute text, the source system) never reaches the hub's store; a
//! permitted query asks the custodian's agent for it live.
//!
//! The index keeps: record id, version, custodian, NHS number and local
//! identifiers (to find the record), relationship type, service, period,
//! key worker and out-of-hours contact (the summary), sensitivity, lawful
//! basis article, permitted purposes and residency (what policy decides
//! on), retention, and the content hash of the whole record.

use kith_core::Record;

/// The record cut to its index and summary.
pub fn index_only(record: &Record) -> Record {
    let mut index = record.clone();
    index.subject.demographics = None;
    index.security_labels.clear();
    index.lawful_basis.statute.clear();
    index.lawful_basis.article9 = None;
    index.provenance.source_system.clear();
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_keeps_no_demographics_and_the_whole_records_hash() {
        let mut r: Record = serde_json::from_str(
            r#"{"record_id":"x","version":1,"custodian":"A","subject":{"nhs_number":"9434765919",
            "demographics":{"given_name":"Zebedee","family_name":"Quillfeather"}},
            "relationship_type":"mental_health","sensitivity":"normal","period":{"start":"2025-01-01"},
            "key_worker":{"phone":"0161 000 0000"},"security_labels":["VIP"],
            "lawful_basis":{"article6":"public_task","statute":"Mental Health Act 1983"},
            "permitted_purposes":["direct_care"],"residency":"source_only",
            "provenance":{"source_system":"RiO-EPR"}}"#,
        )
        .unwrap();
        r.seal();
        let index = index_only(&r);
        let text = serde_json::to_string(&index).unwrap();
        for secret in [
            "Zebedee",
            "Quillfeather",
            "VIP",
            "Mental Health Act",
            "RiO-EPR",
        ] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into the index: {text}"
            );
        }
        assert_eq!(index.provenance.content_hash, r.provenance.content_hash);
        assert_eq!(index.key_worker.phone, "0161 000 0000");
    }
}
