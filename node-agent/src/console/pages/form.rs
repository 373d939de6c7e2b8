//! Form components shared by the pages, in GOV.UK Frontend markup: the
//! error summary, a field's inline error, text and date inputs, and the
//! words for a code. One place, so every page's errors read and link the
//! same way (each error in the summary links to its field by id).

use chrono::NaiveDate;
use maud::{Markup, html};

/// A field-level error: the field's id and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

pub fn err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

pub fn label(code: &str) -> String {
    let mut s = code.replace('_', " ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

pub fn error_summary(errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div class="govuk-error-summary" data-module="govuk-error-summary" {
                div role="alert" {
                    h2 class="govuk-error-summary__title" { "There is a problem" }
                    div class="govuk-error-summary__body" {
                        ul class="govuk-list govuk-error-summary__list" {
                            @for e in errors {
                                li { a href={ "#" (e.field) } { (e.message) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn error_for<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a FieldError> {
    errors.iter().find(|e| e.field == field)
}

pub fn group_class(errors: &[FieldError], fields: &[&str]) -> &'static str {
    if fields.iter().any(|f| error_for(errors, f).is_some()) {
        "govuk-form-group govuk-form-group--error"
    } else {
        "govuk-form-group"
    }
}

pub fn inline_error(errors: &[FieldError], field: &str) -> Markup {
    html! {
        @if let Some(e) = error_for(errors, field) {
            p class="govuk-error-message" id={ (field) "-error" } {
                span class="govuk-visually-hidden" { "Error: " } (e.message)
            }
        }
    }
}

pub fn text_input(
    errors: &[FieldError],
    id: &str,
    name: &str,
    label_text: &str,
    value: &str,
    width: &str,
    autocomplete: &str,
) -> Markup {
    let has_error = error_for(errors, id).is_some();
    html! {
        div class=(group_class(errors, &[id])) {
            label class="govuk-label" for=(id) { (label_text) }
            (inline_error(errors, id))
            input class={ "govuk-input " (width) @if has_error { " govuk-input--error" } }
                id=(id) name=(name) type="text" value=(value) autocomplete=(autocomplete)
                spellcheck="false"
                aria-describedby=[has_error.then(|| format!("{id}-error"))];
        }
    }
}

/// A date given as day, month and year fields: `None` when all three are
/// empty, else a real date or an error at `field` (`what` names the date
/// in the message, e.g. "Date of birth").
pub fn parse_date(
    field: &'static str,
    what: &str,
    (day, month, year): (&str, &str, &str),
) -> Result<Option<NaiveDate>, FieldError> {
    let (d, m, y) = (day.trim(), month.trim(), year.trim());
    if d.is_empty() && m.is_empty() && y.is_empty() {
        return Ok(None);
    }
    let parse = |s: &str| s.parse::<u32>().ok();
    match (parse(d), parse(m), y.parse::<i32>().ok()) {
        (Some(d), Some(m), Some(y)) if (1000..=9999).contains(&y) => {
            NaiveDate::from_ymd_opt(y, m, d)
                .map(Some)
                .ok_or_else(|| err(field, format!("{what} must be a real date")))
        }
        _ => Err(err(
            field,
            format!("{what} must include a day, month and year, for example 27 3 2007"),
        )),
    }
}

/// A GOV.UK date input (day, month, year) named `<prefix>_day` etc., with
/// ids `<id>-day` etc.; errors are reported at `<id>-day`.
pub fn date_input(
    errors: &[FieldError],
    id: &str,
    prefix: &str,
    legend: &str,
    hint: &str,
    (day, month, year): (&str, &str, &str),
) -> Markup {
    let first = format!("{id}-day");
    let hint_id = format!("{id}-hint");
    let error_class = if error_for(errors, &first).is_some() {
        " govuk-input--error"
    } else {
        ""
    };
    html! {
        div class=(group_class(errors, &[first.as_str()])) {
            fieldset class="govuk-fieldset" role="group" aria-describedby=(hint_id) {
                legend class="govuk-fieldset__legend govuk-fieldset__legend--s" { (legend) }
                div class="govuk-hint" id=(hint_id) { (hint) }
                (inline_error(errors, &first))
                div class="govuk-date-input" {
                    @for (part, text, value, width) in [
                        ("day", "Day", day, "govuk-input--width-2"),
                        ("month", "Month", month, "govuk-input--width-2"),
                        ("year", "Year", year, "govuk-input--width-4"),
                    ] {
                        div class="govuk-date-input__item" {
                            div class="govuk-form-group" {
                                label class="govuk-label govuk-date-input__label" for={ (id) "-" (part) } { (text) }
                                input class={ "govuk-input govuk-date-input__input " (width) (error_class) }
                                    id={ (id) "-" (part) } name={ (prefix) "_" (part) } type="text" inputmode="numeric" value=(value);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A GOV.UK select of `options` (value, text), the first being "any".
pub fn select(
    errors: &[FieldError],
    id: &str,
    name: &str,
    label_text: &str,
    value: &str,
    options: &[(&str, String)],
) -> Markup {
    html! {
        div class=(group_class(errors, &[id])) {
            label class="govuk-label" for=(id) { (label_text) }
            (inline_error(errors, id))
            select class="govuk-select" id=(id) name=(name) {
                @for (v, text) in options {
                    option value=(v) selected[*v == value] { (text) }
                }
            }
        }
    }
}

/// A data table in a region of its own that scrolls sideways at phone width
/// (instead of the page); focusable and named, so keyboard and screen
/// reader users can reach and scroll it.
pub fn scroll_table(label: &str, table: Markup) -> Markup {
    html! {
        div class="kith-table-scroll" role="region" aria-label=(label) tabindex="0" {
            (table)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_whole_and_real_or_named_at_their_field() {
        assert_eq!(parse_date("d-day", "Date", ("", " ", "")), Ok(None));
        assert_eq!(
            parse_date("d-day", "Date", ("27", "3", "2007")),
            Ok(NaiveDate::from_ymd_opt(2007, 3, 27))
        );
        let e = parse_date("d-day", "From", ("31", "2", "2026")).unwrap_err();
        assert_eq!(
            (e.field, e.message.as_str()),
            ("d-day", "From must be a real date")
        );
        let e = parse_date("d-day", "From", ("1", "", "2026")).unwrap_err();
        assert!(e.message.contains("day, month and year"), "{e:?}");
        assert!(parse_date("d-day", "From", ("1", "1", "20260")).is_err());
    }
}
