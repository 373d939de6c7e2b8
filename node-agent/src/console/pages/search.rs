//! The case worker's search: by NHS number or demographics, for a purpose
//! chosen from the coded list; the results with what the command line
//! shows; possible matches to confirm; the partial-answer notice; and
//! break glass as a deliberate second step.
//!
//! Every search is a POST carrying the CSRF token; the person's details
//! travel in the form body, never the URL. The acting user is the session's.
//! The search fields are carried to the confirm and break-glass steps as
//! hidden fields of those POST forms, and nowhere else.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use kith_core::{BreakGlassReason, Purpose};
use maud::{Markup, html};
use serde::Deserialize;

use super::form::{
    FieldError, err, error_summary, group_class, inline_error, label, parse_date, scroll_table,
    text_input,
};
use super::{Shell, csrf_field, not_for_role, page, problem, respond};
use crate::console::ConsoleState;
use crate::console::roles::{Duty, duty};
use crate::console::session::Session;
use crate::console::signed_in::{Posted, SignedIn};
use crate::query::{
    self, BreakGlassArgs, DemographicArgs, DisclosedRecordView, QueryArgs, QueryError,
    QueryResponse,
};

/// The search form, as posted (every field optional: each is checked).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SearchForm {
    pub nhs_number: String,
    pub given_name: String,
    pub family_name: String,
    pub dob_day: String,
    pub dob_month: String,
    pub dob_year: String,
    pub postcode: String,
    pub purpose: String,
    pub confirm: String,
    pub reason_code: String,
    pub justification: String,
    /// On the break-glass form: `claim` once the reason is given.
    pub step: String,
}

impl SearchForm {
    fn date_of_birth(&self) -> Result<Option<NaiveDate>, FieldError> {
        parse_date(
            "dob-day",
            "Date of birth",
            (&self.dob_day, &self.dob_month, &self.dob_year),
        )
    }

    /// The query the form asks for, as `staff`: the acting user is never
    /// taken from the form.
    pub fn to_args(
        &self,
        staff: &crate::console::StaffIdentity,
        break_glass: bool,
    ) -> Result<QueryArgs, FieldError> {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let purpose = match self.purpose.trim() {
            "" => return Err(err("purpose", "Select why you are asking")),
            p => p
                .parse::<Purpose>()
                .map_err(|_| err("purpose", "Select one of the purposes listed"))?,
        };
        let dob = self.date_of_birth()?;
        let nhs = some(&self.nhs_number);
        let demographics = DemographicArgs {
            given_name: some(&self.given_name),
            family_name: some(&self.family_name),
            date_of_birth: dob,
            postcode: some(&self.postcode),
        };
        if nhs.is_some()
            && (demographics.given_name.is_some()
                || demographics.family_name.is_some()
                || dob.is_some()
                || demographics.postcode.is_some())
        {
            return Err(err(
                "nhs-number",
                "Enter the NHS number or the person's details, not both",
            ));
        }
        Ok(QueryArgs {
            nhs_number: nhs,
            demographics,
            confirm: some(&self.confirm),
            break_glass: break_glass.then(|| BreakGlassArgs {
                reason_code: self.reason_code.trim().to_string(),
                justification: self.justification.trim().to_string(),
            }),
            purpose: Some(purpose),
            user_id: staff.user_id.clone(),
            role: staff.role.clone(),
            display_name: staff.display_name.clone(),
            team: staff.team.clone(),
        })
    }

    /// The search fields, as hidden inputs for the next step's form.
    fn hidden(&self) -> Markup {
        html! {
            @for (name, value) in [
                ("nhs_number", &self.nhs_number),
                ("given_name", &self.given_name),
                ("family_name", &self.family_name),
                ("dob_day", &self.dob_day),
                ("dob_month", &self.dob_month),
                ("dob_year", &self.dob_year),
                ("postcode", &self.postcode),
                ("purpose", &self.purpose),
            ] {
                @if !value.is_empty() {
                    input type="hidden" name=(name) value=(value);
                }
            }
        }
    }
}

/// The form field a query error is about, in words for the case worker.
pub fn field_error(e: &QueryError) -> Option<FieldError> {
    let field = |flag: &str| -> &'static str {
        match flag {
            "--nhs-number" => "nhs-number",
            "--given-name" => "given-name",
            "--family-name" => "family-name",
            "--date-of-birth" => "dob-day",
            "--postcode" => "postcode",
            "--purpose" => "purpose",
            "--break-glass" => "reason-code",
            "--justification" => "justification",
            "--confirm" => "nhs-number",
            _ => "nhs-number",
        }
    };
    match e {
        QueryError::NhsNumber { source, .. } => {
            Some(err("nhs-number", format!("NHS number: {source}")))
        }
        QueryError::Invalid { flag, reason } => {
            let reason = reason.replace("--", "");
            Some(err(field(flag), label(&reason)))
        }
        QueryError::Missing(what) => Some(if what.contains("--given-name, --family-name and") {
            err(
                "nhs-number",
                "Enter an NHS number, or the person's given name, family name and date of birth",
            )
        } else if what.contains("--given-name") {
            err("given-name", "Enter the person's given name")
        } else if what.contains("--family-name") {
            err("family-name", "Enter the person's family name")
        } else if what.contains("--date-of-birth") {
            err("dob-day", "Enter the person's date of birth")
        } else if what.contains("purpose") {
            err("purpose", "Select why you are asking")
        } else {
            err("nhs-number", label(what))
        }),
        _ => None,
    }
}

fn search_page(session: &Session, form: &SearchForm, errors: &[FieldError]) -> Markup {
    let title = if errors.is_empty() {
        "Search for a person"
    } else {
        "Error: Search for a person"
    };
    page(
        title,
        Some(&Shell::at(session, "/search")),
        html! {
            div class="govuk-grid-row" {
                div class="govuk-grid-column-two-thirds" {
                    (error_summary(errors))
                    h1 class="govuk-heading-l" { "Search for a person" }
                    p class="govuk-body" {
                        "Find out who else is involved with a person. Give their NHS number, or their name and date of birth."
                    }
                    form method="post" action="/search" novalidate {
                        (csrf_field(&session.csrf_token))
                        (text_input(errors, "nhs-number", "nhs_number", "NHS number", &form.nhs_number, "govuk-input--width-10", "off"))
                        details class="govuk-details" open[!form.given_name.is_empty() || !form.family_name.is_empty()] {
                            summary class="govuk-details__summary" {
                                span class="govuk-details__summary-text" { "Search by name and date of birth instead" }
                            }
                            div class="govuk-details__text" {
                                (text_input(errors, "given-name", "given_name", "Given name", &form.given_name, "govuk-!-width-two-thirds", "off"))
                                (text_input(errors, "family-name", "family_name", "Family name", &form.family_name, "govuk-!-width-two-thirds", "off"))
                                div class=(group_class(errors, &["dob-day"])) {
                                    fieldset class="govuk-fieldset" role="group" aria-describedby="dob-hint" {
                                        legend class="govuk-fieldset__legend govuk-fieldset__legend--s" { "Date of birth" }
                                        div class="govuk-hint" id="dob-hint" { "For example, 27 3 2007" }
                                        (inline_error(errors, "dob-day"))
                                        div class="govuk-date-input" {
                                            @for (id, name, text, value, width) in [
                                                ("dob-day", "dob_day", "Day", &form.dob_day, "govuk-input--width-2"),
                                                ("dob-month", "dob_month", "Month", &form.dob_month, "govuk-input--width-2"),
                                                ("dob-year", "dob_year", "Year", &form.dob_year, "govuk-input--width-4"),
                                            ] {
                                                div class="govuk-date-input__item" {
                                                    div class="govuk-form-group" {
                                                        label class="govuk-label govuk-date-input__label" for=(id) { (text) }
                                                        input class={ "govuk-input govuk-date-input__input " (width) }
                                                            id=(id) name=(name) type="text" inputmode="numeric" value=(value);
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                                (text_input(errors, "postcode", "postcode", "Postcode (if known)", &form.postcode, "govuk-input--width-10", "off"))
                            }
                        }
                        div class=(group_class(errors, &["purpose"])) {
                            fieldset class="govuk-fieldset" {
                                legend class="govuk-fieldset__legend govuk-fieldset__legend--m" { "Why are you asking?" }
                                (inline_error(errors, "purpose"))
                                div class="govuk-radios" {
                                    @for (i, p) in Purpose::ALL.iter().enumerate() {
                                        div class="govuk-radios__item" {
                                            input class="govuk-radios__input"
                                                id=(if i == 0 { "purpose".to_string() } else { format!("purpose-{}", p.as_str()) })
                                                name="purpose" type="radio" value=(p.as_str())
                                                checked[form.purpose == p.as_str()];
                                            label class="govuk-label govuk-radios__label"
                                                for=(if i == 0 { "purpose".to_string() } else { format!("purpose-{}", p.as_str()) }) {
                                                (label(p.as_str()))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        button type="submit" class="govuk-button" { "Search" }
                    }
                }
            }
        },
    )
}

fn contact(c: &Option<crate::query::ContactView>) -> String {
    match c {
        None => "Not given".to_string(),
        Some(c) => [&c.name, &c.role, &c.phone, &c.email]
            .into_iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn period(r: &DisclosedRecordView) -> String {
    match (&r.period_start, &r.period_end) {
        (Some(s), Some(e)) => format!("{s} to {e}"),
        (Some(s), None) => format!("Since {s}"),
        (None, Some(e)) => format!("Until {e}"),
        (None, None) => "Not given".to_string(),
    }
}

fn record_card(r: &DisclosedRecordView) -> Markup {
    let withheld = r.level == "withheld";
    html! {
        div class="govuk-summary-card" {
            div class="govuk-summary-card__title-wrapper" {
                h3 class="govuk-summary-card__title" { (r.authority()) }
            }
            div class="govuk-summary-card__content" {
                dl class="govuk-summary-list" {
                    @let rows: Vec<(&str, String)> = if withheld {
                        vec![
                            ("Level", "Withheld".to_string()),
                            ("Reason", r.reason.clone()),
                        ]
                    } else {
                        vec![
                            ("Relationship", r.relationship_type.as_deref().map(label).unwrap_or_else(|| "Not shown".into())),
                            ("Service", if r.service.is_empty() { "Not given".into() } else { r.service.clone() }),
                            ("Period", period(r)),
                            ("Key worker", contact(&r.key_worker)),
                            ("Out of hours", contact(&r.out_of_hours)),
                            ("Level", label(&r.level)),
                            ("Reason", if r.reason.is_empty() { "Not given".into() } else { r.reason.clone() }),
                        ]
                    };
                    @for (key, value) in rows {
                        div class="govuk-summary-list__row" {
                            dt class="govuk-summary-list__key" { (key) }
                            dd class="govuk-summary-list__value" { (value) }
                        }
                    }
                }
            }
        }
    }
}

fn results_page(session: &Session, form: &SearchForm, answer: &QueryResponse) -> Markup {
    let partial: Vec<_> = answer
        .authority_statuses
        .iter()
        .filter(|s| s.state != "ok")
        .collect();
    page(
        "Search results",
        Some(&Shell::from(session)),
        html! {
            @if let Some(until) = &answer.break_glass_until {
                div class="govuk-notification-banner" role="region" aria-labelledby="break-glass-title" {
                    div class="govuk-notification-banner__header" {
                        h2 class="govuk-notification-banner__title" id="break-glass-title" { "Emergency access" }
                    }
                    div class="govuk-notification-banner__content" {
                        p class="govuk-notification-banner__heading" id="break-glass-until" {
                            "Emergency access is open for you and this person until " (until) "."
                        }
                        p class="govuk-body" { "It is recorded, your authority will review it, and the record holders are told." }
                    }
                }
            }
            h1 class="govuk-heading-l" { "Search results" }
            @if !partial.is_empty() {
                div class="govuk-warning-text" id="partial-answer" {
                    span class="govuk-warning-text__icon" aria-hidden="true" { "!" }
                    strong class="govuk-warning-text__text" {
                        span class="govuk-visually-hidden" { "Warning" }
                        "This answer may be incomplete: "
                        @for (i, s) in partial.iter().enumerate() {
                            @if i > 0 { "; " }
                            (s.authority) " " (s.state)
                            @if !s.detail.is_empty() { " (" (s.detail) ")" }
                        }
                        ". Their records held at source are missing. Contact them directly if you need to."
                    }
                }
            }
            @if let Some(notice) = &answer.notice {
                div class="govuk-inset-text" id="notice" { (notice) }
            }
            @if answer.records.is_empty() && answer.candidates.is_empty() {
                p class="govuk-body" id="no-records" { "No organisation has told Kith it is involved with this person, or none you may see for this purpose." }
            }
            @if !answer.records.is_empty() {
                h2 class="govuk-heading-m" { "Who is involved" }
                @for r in &answer.records { (record_card(r)) }
            }
            @if !answer.candidates.is_empty() {
                h2 class="govuk-heading-m" { "Possible matches" }
                p class="govuk-body" { "No certain match was found. If one of these is the person, confirm it to see their records." }
                (scroll_table("Possible matches", html! { table class="govuk-table" {
                    caption class="govuk-table__caption govuk-table__caption--s" { "Possible matches" }
                    thead class="govuk-table__head" {
                        tr class="govuk-table__row" {
                            th scope="col" class="govuk-table__header" { "Held by" }
                            th scope="col" class="govuk-table__header" { "Relationship" }
                            th scope="col" class="govuk-table__header" { "Agreed" }
                            th scope="col" class="govuk-table__header" { "Differed" }
                            th scope="col" class="govuk-table__header" { "Confirm" }
                        }
                    }
                    tbody class="govuk-table__body" {
                        @for c in &answer.candidates {
                            tr class="govuk-table__row" {
                                td class="govuk-table__cell" { (c.record.authority()) }
                                td class="govuk-table__cell" { (c.record.relationship_type.as_deref().map(label).unwrap_or_default()) }
                                td class="govuk-table__cell" { (c.agreed.join(", ").replace('_', " ")) }
                                td class="govuk-table__cell" { (c.disagreed.join(", ").replace('_', " ")) }
                                td class="govuk-table__cell" {
                                    form method="post" action="/search" {
                                        (csrf_field(&session.csrf_token))
                                        (form.hidden())
                                        input type="hidden" name="confirm" value=(c.candidate_id);
                                        button type="submit" class="govuk-button govuk-button--secondary govuk-!-margin-bottom-0" {
                                            "This is the person"
                                            span class="govuk-visually-hidden" { " (" (c.record.authority()) ")" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }))
            }
            p class="govuk-body-s" { "Recorded as audit entry " (answer.audit_index) ", query " (answer.query_id) "." }
            @if answer.break_glass_until.is_none() {
                h2 class="govuk-heading-m" { "In an emergency" }
                p class="govuk-body" { "If someone is at risk now and you need to see what is withheld, you can break glass. It is recorded and reviewed." }
                form method="post" action="/break-glass" {
                    (csrf_field(&session.csrf_token))
                    (form.hidden())
                    @if !form.confirm.is_empty() { input type="hidden" name="confirm" value=(form.confirm); }
                    button type="submit" class="govuk-button govuk-button--warning" { "Break glass" }
                }
            }
            p class="govuk-body" { a class="govuk-link" href="/search" { "Start a new search" } }
        },
    )
}

fn break_glass_page(session: &Session, form: &SearchForm, errors: &[FieldError]) -> Markup {
    page(
        if errors.is_empty() {
            "Break glass"
        } else {
            "Error: Break glass"
        },
        Some(&Shell::from(session)),
        html! {
            div class="govuk-grid-row" {
                div class="govuk-grid-column-two-thirds" {
                    (error_summary(errors))
                    h1 class="govuk-heading-l" { "Break glass" }
                    div class="govuk-warning-text" {
                        span class="govuk-warning-text__icon" aria-hidden="true" { "!" }
                        strong class="govuk-warning-text__text" {
                            span class="govuk-visually-hidden" { "Warning" }
                            "Emergency access is recorded with your name, flagged for your authority's review, and the organisations holding the records are told."
                        }
                    }
                    form method="post" action="/break-glass" novalidate {
                        (csrf_field(&session.csrf_token))
                        (form.hidden())
                        @if !form.confirm.is_empty() { input type="hidden" name="confirm" value=(form.confirm); }
                        input type="hidden" name="step" value="claim";
                        div class=(group_class(errors, &["reason-code"])) {
                            fieldset class="govuk-fieldset" {
                                legend class="govuk-fieldset__legend govuk-fieldset__legend--m" { "Why is emergency access needed?" }
                                (inline_error(errors, "reason-code"))
                                div class="govuk-radios" {
                                    @for (i, r) in BreakGlassReason::ALL.iter().enumerate() {
                                        @let id = if i == 0 { "reason-code".to_string() } else { format!("reason-{}", r.as_str()) };
                                        div class="govuk-radios__item" {
                                            input class="govuk-radios__input" id=(id) name="reason_code" type="radio"
                                                value=(r.as_str()) checked[form.reason_code == r.as_str()];
                                            label class="govuk-label govuk-radios__label" for=(id) { (label(r.as_str())) }
                                        }
                                    }
                                }
                            }
                        }
                        div class=(group_class(errors, &["justification"])) {
                            label class="govuk-label govuk-label--s" for="justification" { "What is happening" }
                            div class="govuk-hint" id="justification-hint" { "10 to 1,000 characters. Your reviewer will read this." }
                            (inline_error(errors, "justification"))
                            textarea class="govuk-textarea" id="justification" name="justification" rows="4"
                                aria-describedby="justification-hint" { (form.justification) }
                        }
                        button type="submit" class="govuk-button govuk-button--warning" { "Break glass and search" }
                    }
                    p class="govuk-body" { a class="govuk-link" href="/search" { "Cancel" } }
                }
            }
        },
    )
}

fn case_workers_only(session: &Session) -> Option<Response> {
    (duty(&session.staff.role) != Duty::CaseWork)
        .then(|| not_for_role("Search is for case workers."))
}

/// `GET /search`.
pub async fn form(SignedIn(session): SignedIn) -> Response {
    if let Some(refused) = case_workers_only(&session) {
        return refused;
    }
    respond(
        StatusCode::OK,
        search_page(&session, &SearchForm::default(), &[]),
    )
}

async fn run(
    state: &ConsoleState,
    session: &Session,
    form: &SearchForm,
    break_glass: bool,
) -> Result<QueryResponse, Result<FieldError, Response>> {
    let args = form.to_args(&session.staff, break_glass).map_err(Ok)?;
    match query::query(&state.agent, args).await {
        Ok(answer) => Ok(answer),
        Err(e) => match field_error(&e) {
            Some(fe) => Err(Ok(fe)),
            None => {
                // The error can quote the hub, never the person: the request
                // fields are not in it.
                tracing::warn!(user = %session.staff.user_id, error = %e, "console search failed");
                Err(Err(match e {
                    QueryError::Refused { message, .. } => problem(
                        StatusCode::BAD_GATEWAY,
                        "The hub refused this search",
                        &message,
                    ),
                    _ => problem(
                        StatusCode::BAD_GATEWAY,
                        "Kith cannot be reached",
                        "The search could not be made because the Kith hub did not answer. Try again in a few minutes; if it goes on, tell your IT service desk.",
                    ),
                }))
            }
        },
    }
}

/// `POST /search`.
pub async fn submit(State(state): State<ConsoleState>, posted: Posted<SearchForm>) -> Response {
    let Posted { session, form } = posted;
    if let Some(refused) = case_workers_only(&session) {
        return refused;
    }
    match run(&state, &session, &form, false).await {
        Ok(answer) => respond(StatusCode::OK, results_page(&session, &form, &answer)),
        Err(Ok(fe)) => respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            search_page(&session, &form, &[fe]),
        ),
        Err(Err(page)) => page,
    }
}

/// `POST /break-glass`: first the reason form, then (`step=claim`) the
/// search with emergency access.
pub async fn break_glass(
    State(state): State<ConsoleState>,
    posted: Posted<SearchForm>,
) -> Response {
    let Posted { session, form } = posted;
    if let Some(refused) = case_workers_only(&session) {
        return refused;
    }
    if form.step != "claim" {
        return respond(StatusCode::OK, break_glass_page(&session, &form, &[]));
    }
    if form.reason_code.trim().is_empty() {
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            break_glass_page(
                &session,
                &form,
                &[err("reason-code", "Select why emergency access is needed")],
            ),
        );
    }
    match run(&state, &session, &form, true).await {
        Ok(answer) => {
            tracing::info!(user = %session.staff.user_id, query = %answer.query_id, "console break glass");
            respond(StatusCode::OK, results_page(&session, &form, &answer))
        }
        Err(Ok(fe)) if matches!(fe.field, "reason-code" | "justification") => respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            break_glass_page(&session, &form, &[fe]),
        ),
        Err(Ok(fe)) => respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            search_page(&session, &form, &[fe]),
        ),
        Err(Err(page)) => page,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::StaffIdentity;

    fn staff() -> StaffIdentity {
        StaffIdentity {
            user_id: "sam".into(),
            display_name: "Sam Patel".into(),
            team: "MASH".into(),
            role: "social_worker".into(),
        }
    }

    #[test]
    fn the_acting_user_comes_from_the_session_and_fields_are_checked() {
        let form = SearchForm {
            nhs_number: "943 476 5919".into(),
            purpose: "safeguarding".into(),
            ..Default::default()
        };
        let args = form.to_args(&staff(), false).unwrap();
        assert_eq!(
            (args.user_id.as_str(), args.role.as_str()),
            ("sam", "social_worker")
        );
        assert_eq!(args.purpose, Some(Purpose::Safeguarding));
        assert!(args.break_glass.is_none());

        let no_purpose = SearchForm {
            purpose: String::new(),
            ..form.clone()
        };
        assert_eq!(
            no_purpose.to_args(&staff(), false).unwrap_err().field,
            "purpose"
        );
        let bad_purpose = SearchForm {
            purpose: "gossip".into(),
            ..form.clone()
        };
        assert_eq!(
            bad_purpose.to_args(&staff(), false).unwrap_err().field,
            "purpose"
        );
        let both = SearchForm {
            family_name: "Davies".into(),
            ..form.clone()
        };
        assert_eq!(
            both.to_args(&staff(), false).unwrap_err().field,
            "nhs-number"
        );
        let bad_date = SearchForm {
            nhs_number: String::new(),
            dob_day: "31".into(),
            dob_month: "2".into(),
            dob_year: "2010".into(),
            ..form.clone()
        };
        assert_eq!(
            bad_date.to_args(&staff(), false).unwrap_err().message,
            "Date of birth must be a real date"
        );
        let date = SearchForm {
            dob_day: "2".into(),
            dob_month: "11".into(),
            dob_year: "1958".into(),
            ..bad_date
        };
        assert_eq!(
            date.to_args(&staff(), false)
                .unwrap()
                .demographics
                .date_of_birth,
            Some(NaiveDate::from_ymd_opt(1958, 11, 2).unwrap())
        );
    }

    #[test]
    fn query_errors_name_the_form_field() {
        let form = SearchForm {
            nhs_number: "9434765918".into(),
            purpose: "safeguarding".into(),
            ..Default::default()
        };
        let e = query::build_request(&form.to_args(&staff(), false).unwrap()).unwrap_err();
        let fe = field_error(&e).unwrap();
        assert_eq!(fe.field, "nhs-number");
        assert!(fe.message.contains("check digit"), "{}", fe.message);
        let nothing = SearchForm {
            nhs_number: String::new(),
            ..form
        };
        let e = query::build_request(&nothing.to_args(&staff(), false).unwrap()).unwrap_err();
        assert_eq!(field_error(&e).unwrap().field, "nhs-number");
    }

    #[test]
    fn hostile_record_text_is_escaped_in_the_results() {
        let answer = QueryResponse::from_wire(
            "https://hub:1",
            kith_proto::v1::QueryResponse {
                query_id: "q-1".into(),
                records: vec![kith_proto::v1::DisclosedRecord {
                    level: kith_proto::v1::DisclosureLevel::Detail as i32,
                    record: Some(kith_proto::v1::RelationshipRecord {
                        custodian: "E08000003".into(),
                        service: "<script>alert(1)</script>".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let session = rt.block_on(async {
            let outbox = crate::outbox::Outbox::open(&dir.path().join("o.db"))
                .await
                .unwrap();
            let s = crate::console::Sessions::new(
                &outbox,
                std::time::Duration::from_secs(60),
                std::time::Duration::from_secs(3600),
                true,
            );
            let id = s.create(&staff()).await.unwrap();
            s.find(&id).await.unwrap().unwrap()
        });
        let html = results_page(&session, &SearchForm::default(), &answer).into_string();
        assert!(!html.contains("<script>alert(1)</script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }
}
