//! A `kith.v1.RelationshipRecord` from arbitrary bytes, through the hub's
//! and agent's conversion and validation (`kith_core::wire::record_from_wire`).
//!
//! Checks: no panic; a refusal always names at least one field; a record
//! that was accepted converts to the wire and back to the same record, and
//! its content hash can be taken.
#![no_main]

use chrono::NaiveDate;
use kith_core::wire::{record_from_wire, record_to_wire};
use kith_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = pb::RelationshipRecord::decode(data) else {
        return;
    };
    let today = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
    match record_from_wire(wire, today) {
        Ok(record) => {
            let again = record_from_wire(record_to_wire(&record), today)
                .expect("an accepted record converts back from its own wire form");
            assert_eq!(again, record, "wire round trip changed the record");
            let mut sealed = record.clone();
            sealed.seal();
            assert_eq!(sealed.content_hash(), sealed.provenance.content_hash);
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal with no field error");
            for e in &errors {
                assert!(!e.field.is_empty(), "a field error with no field: {e:?}");
            }
        }
    }
});
