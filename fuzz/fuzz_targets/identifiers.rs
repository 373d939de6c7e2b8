//! NHS numbers, postcodes, authority codes, names and demographic match
//! scoring, from arbitrary text.
//!
//! The input is split at the first two `\n`: the first part is parsed as
//! an NHS number, postcode and authority code; the parts also make two sets
//! of demographics (name, name, date, postcode fields separated by `|`)
//! that are scored against each other.
//!
//! Checks: no panic; an NHS number that parses prints and reparses to
//! itself and has the check digit `check_digit` gives; postcode shape is
//! unchanged by normalising, and normalising is idempotent; scoring is
//! symmetric (`score(a, b)` and `score(b, a)` have the same total, as
//! `kith_core::matching::score` documents).
#![no_main]

use chrono::NaiveDate;
use kith_core::matching::{MatchRules, name_tokens, normalise_name, normalise_postcode, score};
use kith_core::validate::is_uk_postcode;
use kith_core::{AuthorityCode, Demographics, NhsNumber};
use libfuzzer_sys::fuzz_target;

fn demographics(part: &str) -> Demographics {
    let mut fields = part.splitn(4, '|');
    let mut next = || fields.next().unwrap_or("").to_string();
    let given_name = next();
    let family_name = next();
    let date = next();
    let postcode = next();
    Demographics {
        given_name,
        family_name,
        date_of_birth: NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok(),
        postcode,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let first = parts.next().unwrap_or("");
    let second = parts.next().unwrap_or("");
    let third = parts.next().unwrap_or("");

    if let Ok(n) = first.parse::<NhsNumber>() {
        let digits = n.as_digits();
        assert_eq!(digits.len(), 10);
        assert_eq!(digits.parse::<NhsNumber>(), Ok(n));
        assert_eq!(n.to_string().parse::<NhsNumber>(), Ok(n));
        let d: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
        let nine: [u8; 9] = d[..9].try_into().expect("nine digits");
        assert_eq!(NhsNumber::check_digit(&nine), Some(d[9]));
        assert_eq!(NhsNumber::from_first_nine(nine), Some(n));
    }

    let normal = normalise_postcode(first);
    assert_eq!(
        normalise_postcode(&normal),
        normal,
        "normalise_postcode is not idempotent"
    );
    if is_uk_postcode(first) {
        assert!(
            is_uk_postcode(&normal),
            "{first:?} is a postcode but {normal:?} is not"
        );
    }

    if let Ok(code) = AuthorityCode::new(first) {
        assert_eq!(AuthorityCode::new(code.as_str()).as_ref(), Ok(&code));
        let _ = code.uri();
    }

    let name = normalise_name(first);
    let _ = name_tokens(first);
    let _ = normalise_name(&name);

    let rules = MatchRules::default();
    let a = demographics(second);
    let b = demographics(third);
    let ab = score(&rules, &a, &b);
    let ba = score(&rules, &b, &a);
    assert!(
        (ab.total - ba.total).abs() < 1e-9,
        "score is not symmetric: {} vs {} for {a:?} and {b:?}",
        ab.total,
        ba.total
    );
    assert_eq!(ab.band, ba.band);
    let aa = score(&rules, &a, &a);
    assert!(aa.total.is_finite());
});
