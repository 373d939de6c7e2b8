//! The disclosure level: how much of one record a requester may see. The
//! policy set decides it; audit entries and answers carry it.

use std::fmt;
use std::str::FromStr;

/// How much of one record a requester may see, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Not shown at all; the requester does not learn the record exists.
    Hidden,
    /// Existence shown as "withheld", with the custodian to contact.
    Withheld,
    /// Who is involved and how to reach them.
    Summary,
    /// The full relationship record.
    Detail,
}

impl Level {
    /// The lower-case word used in test cases and audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Hidden => "hidden",
            Level::Withheld => "withheld",
            Level::Summary => "summary",
            Level::Detail => "detail",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hidden" => Ok(Level::Hidden),
            "withheld" => Ok(Level::Withheld),
            "summary" => Ok(Level::Summary),
            "detail" => Ok(Level::Detail),
            other => Err(format!(
                "unknown level {other:?} (expected detail, summary, withheld or hidden)"
            )),
        }
    }
}
