//! The content hash in a record's provenance.
//!
//! SHA-256 over the record's canonical JSON (keys sorted, no whitespace) with
//! `provenance.content_hash` itself left empty. Agent and hub compute it the
//! same way, so the hub can tell a record was not altered on the way, and a
//! re-sent record is recognisably the same one.

use ring::digest;

use crate::record::Record;

impl Record {
    /// Computes the content hash (lower-case hex).
    pub fn content_hash(&self) -> String {
        let mut copy = self.clone();
        copy.provenance.content_hash.clear();
        hex::encode(digest::digest(&digest::SHA256, &canonical_json(&copy)).as_ref())
    }

    /// Fills in `provenance.content_hash`.
    pub fn seal(&mut self) {
        self.provenance.content_hash = self.content_hash();
    }
}

/// Canonical JSON bytes of any serialisable value: object keys sorted by
/// their UTF-8 bytes at every depth, no insignificant whitespace.
///
/// The sorting is done here rather than left to `serde_json::Map`, whose
/// order depends on a crate feature (`preserve_order`) that any crate in a
/// build may switch on.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("domain types always serialise");
    let mut out = Vec::with_capacity(256);
    write_canonical(&value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth_whatever_the_input_order() {
        let v = serde_json::json!({"b": 1, "a": {"z": [{"y": 1, "x": 2}], "c": "é"}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"c":"é","z":[{"x":2,"y":1}]},"b":1}"#
        );
    }
}
