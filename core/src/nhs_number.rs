//! NHS numbers: ten digits, the last a modulus 11 check digit.
//!
//! The algorithm is the NHS Data Dictionary's: weight the first nine digits
//! 10 down to 2, sum, take the remainder modulo 11 and subtract it from 11;
//! 11 becomes 0, and 10 means the number is invalid.
//!
//! Some ten-digit strings pass that check but can never be issued to a
//! person, and source systems use them as placeholders for "not known".
//! Kith refuses them too ([`NhsNumberError::NeverIssued`]):
//!
//! - **the same digit ten times** (`0000000000`, `1111111111`, …,
//!   `9999999999`): every one of them passes modulus 11 (the weights sum to
//!   54, and 54·d ≡ −d (mod 11), so the check digit is d itself);
//! - **a number starting `00`**: the numbering schemes sharing this format
//!   are England, Wales and the Isle of Man (`300…`–`799…`), Northern
//!   Ireland's H&C numbers (`320 000 001`–`399 999 999`) and Scotland's CHI
//!   numbers (`010 100 0000`–`311 299 9999`, which begin with a day of the
//!   month, 01–31): none begins `00`.
//!
//! The test range `999 000 0000`–`999 999 9999` is reserved by NHS England
//! for testing and never issued, but it is *accepted*: test and training
//! environments, and Kith's own demo, use it (its one repdigit,
//! `9999999999`, is still refused).

use std::fmt;
use std::str::FromStr;

/// A syntactically valid NHS number (ten digits with a correct check digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber([u8; 10]);

/// Why a string is not an NHS number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    #[error("must be 10 digits (spaces allowed), found {0} digits")]
    WrongLength(usize),
    #[error("must contain only digits and spaces")]
    NotDigits,
    #[error("check digit does not match (modulus 11)")]
    CheckDigit,
    /// Passes modulus 11, but no such number is ever issued (see the
    /// module documentation).
    #[error("is not an NHS number that is ever issued ({0})")]
    NeverIssued(&'static str),
}

impl NhsNumber {
    /// The check digit for nine leading digits, or `None` when the remainder
    /// gives 10 (no valid NHS number starts with those nine digits).
    pub fn check_digit(first_nine: &[u8; 9]) -> Option<u8> {
        let sum: u32 = first_nine
            .iter()
            .zip((2..=10).rev())
            .map(|(d, w)| u32::from(*d) * w)
            .sum();
        match 11 - (sum % 11) {
            11 => Some(0),
            10 => None,
            d => Some(d as u8),
        }
    }

    /// Builds the NHS number whose first nine digits are given, if it
    /// exists and is ever issued.
    pub fn from_first_nine(first_nine: [u8; 9]) -> Option<Self> {
        let check = Self::check_digit(&first_nine)?;
        let mut digits = [0u8; 10];
        digits[..9].copy_from_slice(&first_nine);
        digits[9] = check;
        ever_issued(&digits).ok()?;
        Some(Self(digits))
    }

    /// The `n`-th valid number of the test range `999 000 0000` –
    /// `999 999 9999`, which NHS England reserves and never issues: for
    /// synthetic data, tests and benchmarks. Distinct for distinct `n`
    /// below 900,000.
    pub fn in_test_range(n: u64) -> Self {
        let mut k = n;
        loop {
            let mut nine = [9u8, 9, 9, 0, 0, 0, 0, 0, 0];
            let mut rest = k;
            for slot in nine[3..].iter_mut().rev() {
                *slot = (rest % 10) as u8;
                rest /= 10;
            }
            if let Some(n) = Self::from_first_nine(nine) {
                return n;
            }
            // About one prefix in eleven has no valid check digit: step past it
            // into a block no smaller n reaches.
            k = (k + 1) % 1_000_000 + 900_000 * u64::from(k < 900_000);
        }
    }

    /// The ten digits with no spaces.
    pub fn as_digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

impl FromStr for NhsNumber {
    type Err = NhsNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.chars().any(|c| !(c.is_ascii_digit() || c == ' ')) {
            return Err(NhsNumberError::NotDigits);
        }
        let digits: Vec<u8> = s
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect();
        let digits: [u8; 10] = digits
            .as_slice()
            .try_into()
            .map_err(|_| NhsNumberError::WrongLength(digits.len()))?;
        let first_nine: [u8; 9] = digits[..9].try_into().expect("nine of ten digits");
        match Self::check_digit(&first_nine) {
            Some(c) if c == digits[9] => {}
            _ => return Err(NhsNumberError::CheckDigit),
        }
        ever_issued(&digits)?;
        Ok(Self(digits))
    }
}

/// Refuses what passes modulus 11 but is never issued (module docs).
fn ever_issued(digits: &[u8; 10]) -> Result<(), NhsNumberError> {
    if digits.iter().all(|d| *d == digits[0]) {
        return Err(NhsNumberError::NeverIssued("the same digit ten times"));
    }
    if digits[..2] == [0, 0] {
        return Err(NhsNumberError::NeverIssued("no issued number starts 00"));
    }
    Ok(())
}

impl fmt::Display for NhsNumber {
    /// Formats as `943 476 5919`, the way NHS staff read them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.as_digits();
        write!(f, "{} {} {}", &d[..3], &d[3..6], &d[6..])
    }
}

impl serde::Serialize for NhsNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_digits())
    }
}

impl<'de> serde::Deserialize<'de> for NhsNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_valid_numbers() {
        // 943 476 5919 is the NHS's published example; the others are in the
        // 999 test range.
        for n in ["9434765919", "943 476 5919", "9990000018", "9999999980"] {
            assert!(n.parse::<NhsNumber>().is_ok(), "{n} should be valid");
        }
    }

    #[test]
    fn refuses_numbers_that_pass_modulus_11_but_are_never_issued() {
        for d in 0..=9u8 {
            let n: String = std::iter::repeat_n(char::from(b'0' + d), 10).collect();
            let first_nine = [d; 9];
            assert_eq!(
                NhsNumber::check_digit(&first_nine),
                Some(d),
                "{n} must pass modulus 11 for this test to mean anything"
            );
            assert_eq!(
                n.parse::<NhsNumber>(),
                Err(NhsNumberError::NeverIssued("the same digit ten times")),
                "{n}"
            );
        }
        // 001 234 567 with its check digit passes modulus 11, starts 00.
        let nine = [0, 0, 1, 2, 3, 4, 5, 6, 7];
        let check = NhsNumber::check_digit(&nine).expect("fixture has a check digit");
        let n = format!("001234567{check}");
        assert_eq!(
            n.parse::<NhsNumber>(),
            Err(NhsNumberError::NeverIssued("no issued number starts 00"))
        );
        // One past the bound: a CHI-shaped number starting 01 is accepted.
        let chi = [0, 1, 0, 1, 0, 0, 0, 0, 0];
        let check = NhsNumber::check_digit(&chi).expect("fixture has a check digit");
        assert!(format!("010100000{check}").parse::<NhsNumber>().is_ok());
    }

    #[test]
    fn rejects_a_wrong_check_digit() {
        assert_eq!(
            "9434765918".parse::<NhsNumber>(),
            Err(NhsNumberError::CheckDigit)
        );
    }

    #[test]
    fn rejects_numbers_whose_remainder_is_ten() {
        // 999 000 000: weights give remainder 1, check 10: no valid number.
        let nine = [9, 9, 9, 0, 0, 0, 0, 0, 0];
        let sum: u32 = nine
            .iter()
            .zip((2..=10).rev())
            .map(|(d, w)| *d as u32 * w)
            .sum();
        assert_eq!(11 - sum % 11, 10, "fixture must hit the remainder-10 case");
        assert_eq!(NhsNumber::check_digit(&nine), None);
        for last in 0..=9 {
            assert!(format!("999000000{last}").parse::<NhsNumber>().is_err());
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            "12345".parse::<NhsNumber>(),
            Err(NhsNumberError::WrongLength(5))
        );
        assert_eq!(
            "94347659190".parse::<NhsNumber>(),
            Err(NhsNumberError::WrongLength(11))
        );
        assert_eq!(
            "943-476-5919".parse::<NhsNumber>(),
            Err(NhsNumberError::NotDigits)
        );
        assert_eq!("".parse::<NhsNumber>(), Err(NhsNumberError::WrongLength(0)));
    }

    #[test]
    fn round_trips_and_displays_with_spaces() {
        let n: NhsNumber = "9434765919".parse().unwrap();
        assert_eq!(n.to_string(), "943 476 5919");
        assert_eq!(n.as_digits(), "9434765919");
        assert_eq!(
            NhsNumber::from_first_nine([9, 4, 3, 4, 7, 6, 5, 9, 1]),
            Some(n)
        );
    }
}
