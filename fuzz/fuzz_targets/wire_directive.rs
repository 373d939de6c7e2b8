//! A `kith.v1.SharingDirective` from arbitrary bytes, through
//! `kith_core::wire::directive_from_wire`.
//!
//! Checks: no panic; a refusal names at least one field; an accepted
//! directive converts to the wire and back unchanged, and hashes.
#![no_main]

use kith_core::wire::{directive_from_wire, directive_to_wire};
use kith_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = pb::SharingDirective::decode(data) else {
        return;
    };
    match directive_from_wire(wire) {
        Ok(directive) => {
            let again = directive_from_wire(directive_to_wire(&directive))
                .expect("an accepted directive converts back from its own wire form");
            assert_eq!(again, directive, "wire round trip changed the directive");
            assert_eq!(directive.content_hash().len(), 64);
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal with no field error");
            for e in &errors {
                assert!(!e.field.is_empty(), "a field error with no field: {e:?}");
            }
        }
    }
});
