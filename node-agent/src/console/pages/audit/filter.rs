//! The audit filter form: user, subject (NHS number), purpose, decision,
//! kind and period, as posted to the search and the export. Every field is
//! optional and checked; a bad one is named at its field. The result is
//! the library's [`SearchFilter`], so the console filters exactly as
//! `kith-agent audit search` does.

use chrono::{NaiveTime, TimeZone, Utc};
use kith_core::{NhsNumber, Purpose};
use maud::{Markup, html};
use serde::Deserialize;

use crate::audit::SearchFilter;
use crate::console::pages::form::{
    FieldError, date_input, err, label, parse_date, select, text_input,
};

/// The longest user id taken (the hub bounds acting user ids the same).
pub const MAX_USER_CHARS: usize = 128;

/// Decisions an entry or its records may carry.
pub const DECISIONS: &[&str] = &[
    "detail", "summary", "withheld", "hidden", "ok", "refused", "accepted", "rejected",
];

/// Kinds of entry an auditor searches by.
pub const KINDS: &[&str] = &[
    "query",
    "access",
    "publish",
    "end",
    "withdraw",
    "directive",
    "refusal",
    "break_glass_review",
    "audit_read",
    "policy_load",
    "purge",
    "notification_delivered",
];

/// The filter fields, as posted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FilterForm {
    pub user: String,
    pub nhs_number: String,
    pub purpose: String,
    pub decision: String,
    pub kind: String,
    pub from_day: String,
    pub from_month: String,
    pub from_year: String,
    pub to_day: String,
    pub to_month: String,
    pub to_year: String,
    /// `yes` for break-glass accesses only.
    pub break_glass: String,
}

fn one_of(
    field: &'static str,
    value: &str,
    allowed: &[&str],
    what: &str,
) -> Result<Option<String>, FieldError> {
    match value.trim() {
        "" => Ok(None),
        v if allowed.contains(&v) => Ok(Some(v.to_string())),
        _ => Err(err(field, format!("Select one of the {what} listed"))),
    }
}

impl FilterForm {
    /// The filter, or every field's error.
    pub fn to_filter(&self) -> Result<SearchFilter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut keep = |r: Result<Option<String>, FieldError>| match r {
            Ok(v) => v,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let user = keep(match self.user.trim() {
            "" => Ok(None),
            u if u.chars().count() > MAX_USER_CHARS => Err(err(
                "user",
                format!("User ID must be {MAX_USER_CHARS} characters or fewer"),
            )),
            u if u.chars().any(char::is_control) => {
                Err(err("user", "User ID must not contain control characters"))
            }
            u => Ok(Some(u.to_string())),
        });
        let subject = keep(match self.nhs_number.trim() {
            "" => Ok(None),
            n => n
                .parse::<NhsNumber>()
                .map(|n| Some(n.as_digits()))
                .map_err(|e| err("nhs-number", format!("NHS number: {e}"))),
        });
        let purposes: Vec<&str> = Purpose::ALL.iter().map(|p| p.as_str()).collect();
        let purpose = keep(one_of("purpose", &self.purpose, &purposes, "purposes"));
        let decision = keep(one_of("decision", &self.decision, DECISIONS, "decisions"));
        let kind = keep(one_of("kind", &self.kind, KINDS, "kinds of entry"));
        let mut date = |field, what, parts| match parse_date(field, what, parts) {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let from = date(
            "from-day",
            "The start date",
            (&self.from_day, &self.from_month, &self.from_year),
        );
        let to = date(
            "to-day",
            "The end date",
            (&self.to_day, &self.to_month, &self.to_year),
        );
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            errors.push(err(
                "to-day",
                "The end date must be the same as or after the start date",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SearchFilter {
            subject,
            user,
            purpose,
            decision,
            kind,
            from: from.map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))),
            to: to.map(|d| {
                Utc.from_utc_datetime(&d.and_hms_milli_opt(23, 59, 59, 999).expect("a valid time"))
            }),
            break_glass: self.break_glass == "yes",
            ..SearchFilter::default()
        })
    }

    /// The fields, as hidden inputs for the next page's or the export's form.
    pub fn hidden(&self) -> Markup {
        html! {
            @for (name, value) in [
                ("user", &self.user), ("nhs_number", &self.nhs_number), ("purpose", &self.purpose),
                ("decision", &self.decision), ("kind", &self.kind),
                ("from_day", &self.from_day), ("from_month", &self.from_month), ("from_year", &self.from_year),
                ("to_day", &self.to_day), ("to_month", &self.to_month), ("to_year", &self.to_year),
                ("break_glass", &self.break_glass),
            ] {
                @if !value.is_empty() { input type="hidden" name=(name) value=(value); }
            }
        }
    }

    /// The filter fields, for a form.
    pub fn fields(&self, errors: &[FieldError]) -> Markup {
        let any = || ("", "Any".to_string());
        let purposes: Vec<(&str, String)> = std::iter::once(any())
            .chain(Purpose::ALL.iter().map(|p| (p.as_str(), label(p.as_str()))))
            .collect();
        let decisions: Vec<(&str, String)> = std::iter::once(any())
            .chain(DECISIONS.iter().map(|d| (*d, label(d))))
            .collect();
        let kinds: Vec<(&str, String)> = std::iter::once(any())
            .chain(KINDS.iter().map(|k| (*k, label(k))))
            .collect();
        html! {
            (text_input(errors, "user", "user", "User ID (who acted)", &self.user, "govuk-!-width-two-thirds", "off"))
            (text_input(errors, "nhs-number", "nhs_number", "NHS number (who it was about)", &self.nhs_number, "govuk-input--width-10", "off"))
            (select(errors, "purpose", "purpose", "Purpose", &self.purpose, &purposes))
            (select(errors, "decision", "decision", "Decision", &self.decision, &decisions))
            (select(errors, "kind", "kind", "Kind of entry", &self.kind, &kinds))
            (date_input(errors, "from", "from", "From", "For example, 1 3 2026", (&self.from_day, &self.from_month, &self.from_year)))
            (date_input(errors, "to", "to", "To", "For example, 31 3 2026", (&self.to_day, &self.to_month, &self.to_year)))
            div class="govuk-form-group" {
                div class="govuk-checkboxes govuk-checkboxes--small" {
                    div class="govuk-checkboxes__item" {
                        input class="govuk-checkboxes__input" id="break-glass" name="break_glass" type="checkbox" value="yes" checked[self.break_glass == "yes"];
                        label class="govuk-label govuk-checkboxes__label" for="break-glass" { "Break-glass accesses only" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named_and_good_ones_make_the_filter() {
        let form = FilterForm {
            user: " sam ".into(),
            nhs_number: "943 476 5919".into(),
            purpose: "safeguarding".into(),
            decision: "withheld".into(),
            from_day: "1".into(),
            from_month: "3".into(),
            from_year: "2026".into(),
            to_day: "1".into(),
            to_month: "3".into(),
            to_year: "2026".into(),
            break_glass: "yes".into(),
            ..Default::default()
        };
        let f = form.to_filter().unwrap();
        assert_eq!(f.user.as_deref(), Some("sam"));
        assert_eq!(f.subject.as_deref(), Some("9434765919"));
        assert!(f.break_glass);
        assert_eq!(f.from.unwrap().to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert!(
            f.to.unwrap() > f.from.unwrap(),
            "the end date covers its whole day"
        );

        let bad = FilterForm {
            nhs_number: "9434765918".into(),
            purpose: "curiosity".into(),
            kind: "<script>".into(),
            to_day: "1".into(),
            to_month: "2".into(),
            to_year: "2026".into(),
            user: "x".repeat(129),
            ..form
        };
        let errors = bad.to_filter().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["user", "nhs-number", "purpose", "kind", "to-day"],
            "{errors:?}"
        );
        assert!(FilterForm::default().to_filter().unwrap() == SearchFilter::default());
    }
}
