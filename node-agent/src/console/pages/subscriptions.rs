//! The case worker's subscriptions page (issue #17): this authority's
//! current subscriptions at the hub, a form to subscribe, and an
//! Unsubscribe button per row. The same library as `kith-agent subscribe`,
//! `unsubscribe` and `subscriptions` ([`crate::subscriptions`]), so the
//! checks and the hub's refusals are the command line's.
//!
//! The page is viewed by GET with nothing personal in the URL: the table
//! shows each person's NHS number in the page body only. Subscribing and
//! unsubscribing are POSTs carrying the CSRF token, and after either the
//! browser is sent back to `/subscriptions` with a bare flag
//! (`?subscribed=1`, `?ended=1`). The acting user is the session's, never
//! the form's. The hub's refusals (no relationship, an unknown code, an end
//! past the hub's maximum, a duplicate) are shown at their field and in the
//! error summary.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kith_core::{ActingUser, Purpose, RelationshipType};
use maud::{Markup, html};
use serde::Deserialize;

use super::form::{
    FieldError, date_input, err, error_summary, group_class, inline_error, label, parse_date,
    scroll_table, text_input,
};
use super::{Shell, csrf_field, not_for_role, page, problem, respond};
use crate::console::ConsoleState;
use crate::console::accounts::StaffIdentity;
use crate::console::roles::{Duty, duty};
use crate::console::session::Session;
use crate::console::signed_in::{Posted, SignedIn};
use crate::subscriptions::{self, Listed, SubscriptionError, SubscriptionLine};

/// The page's path.
pub const PATH: &str = "/subscriptions";

/// The checkbox name prefix of a relationship type, then of a category.
const TYPE_PREFIX: &str = "type.";
const CATEGORY_PREFIX: &str = "category.";

/// The routes of this page, merged into the console's router.
pub fn routes() -> axum::Router<ConsoleState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(PATH, get(view).post(subscribe))
        .route("/subscriptions/unsubscribe", post(unsubscribe))
}

/// The subscribe form, as posted: every field as given. Each relationship
/// type and category is a checkbox of its own (`type.<code>`,
/// `category.<code>`), so the form is read as a map.
#[derive(Debug, Clone, Default)]
pub struct SubscribeForm {
    pub nhs_number: String,
    pub relationship_types: Vec<String>,
    pub categories: Vec<String>,
    pub purpose: String,
    pub ends_on: (String, String, String),
}

impl SubscribeForm {
    fn from_fields(fields: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        let with = |prefix: &str| -> Vec<String> {
            fields
                .keys()
                .filter_map(|k| k.strip_prefix(prefix))
                .map(str::to_string)
                .collect()
        };
        Self {
            nhs_number: get("nhs_number"),
            relationship_types: with(TYPE_PREFIX),
            categories: with(CATEGORY_PREFIX),
            purpose: get("purpose"),
            ends_on: (
                get("ends_on_day"),
                get("ends_on_month"),
                get("ends_on_year"),
            ),
        }
    }

    /// The request the form asks for, as `staff` (never the form's user).
    fn to_line(&self, staff: &StaffIdentity) -> Result<SubscriptionLine, FieldError> {
        if self.purpose.trim().is_empty() {
            return Err(err("purpose", "Select why you need to know"));
        }
        let (d, m, y) = &self.ends_on;
        let ends_on = parse_date("ends-on-day", "End date", (d, m, y))?;
        Ok(SubscriptionLine {
            nhs_number: self.nhs_number.trim().to_string(),
            relationship_types: self.relationship_types.clone(),
            categories: self.categories.clone(),
            purpose: self.purpose.trim().to_string(),
            ends_on: ends_on.map(|d| d.format("%Y-%m-%d").to_string()),
            user_id: staff.user_id.clone(),
            role: staff.role.clone(),
            team: staff.team.clone(),
        })
    }
}

/// The page's field for a wire field name, and the words for it.
fn field_of(wire: &str) -> (&'static str, &'static str) {
    if wire.starts_with("relationship_types") {
        ("relationship-types", "Relationship types")
    } else if wire.starts_with("categories") {
        ("relationship-types", "Categories")
    } else if wire == "purpose" {
        ("purpose", "Purpose")
    } else if wire == "ends_on" {
        ("ends-on-day", "End date")
    } else {
        ("nhs-number", "NHS number")
    }
}

fn from_field_errors(errors: &[kith_core::error::FieldError]) -> Vec<FieldError> {
    errors
        .iter()
        .map(|e| {
            let (field, what) = field_of(&e.field);
            let required = e.reason.starts_with("is required");
            match (field, required) {
                ("nhs-number", true) => err(field, "Enter the person's NHS number"),
                ("purpose", true) => err(field, "Select why you need to know"),
                ("relationship-types", _) if e.reason.starts_with("name at least one") => {
                    err(field, "Select at least one relationship type or category")
                }
                _ => err(field, format!("{what}: {}", e.reason)),
            }
        })
        .collect()
}

/// The hub's refusal as field errors. Field errors travel in its message as
/// `field: reason; field: reason`; a refusal that names no field (the
/// policy set's, e.g. no relationship with the person) is shown at the NHS
/// number with the hub's reason.
pub fn refusal_errors(message: &str) -> Vec<FieldError> {
    const FIELDS: [&str; 5] = [
        "nhs_number",
        "relationship_types",
        "categories",
        "purpose",
        "ends_on",
    ];
    let parts: Vec<Option<(&str, &str)>> = message
        .split("; ")
        .map(|part| {
            part.split_once(": ").filter(|(f, _)| {
                let base = f.split('[').next().unwrap_or_default();
                FIELDS.contains(&base)
            })
        })
        .collect();
    if !parts.is_empty() && parts.iter().all(Option::is_some) {
        parts
            .into_iter()
            .flatten()
            .map(|(f, reason)| {
                let (field, what) = field_of(f);
                err(field, format!("{what}: {reason}"))
            })
            .collect()
    } else {
        vec![err(
            "nhs-number",
            format!("The hub refused this subscription: {message}"),
        )]
    }
}

fn case_workers_only(session: &Session) -> Option<Response> {
    (duty(&session.staff.role) != Duty::CaseWork)
        .then(|| not_for_role("Subscriptions are for case workers."))
}

fn hub_down() -> Response {
    problem(
        StatusCode::BAD_GATEWAY,
        "Kith cannot be reached",
        "The Kith hub did not answer. Try again in a few minutes; if it goes on, tell your IT service desk.",
    )
}

/// The flags a redirect back to the page may carry (nothing personal).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Flags {
    pub subscribed: Option<String>,
    pub ended: Option<String>,
}

/// `GET /subscriptions`.
pub async fn view(
    State(state): State<ConsoleState>,
    SignedIn(session): SignedIn,
    Query(flags): Query<Flags>,
) -> Response {
    if let Some(refused) = case_workers_only(&session) {
        return refused;
    }
    let notice = if flags.subscribed.is_some() {
        Some("Subscribed. You will be told when another organisation's involvement changes.")
    } else if flags.ended.is_some() {
        Some("Unsubscribed. You will not be told of changes under that subscription.")
    } else {
        None
    };
    render(
        &state,
        &session,
        &SubscribeForm::default(),
        &[],
        notice,
        StatusCode::OK,
    )
    .await
}

/// The page, with the current list read from the hub.
async fn render(
    state: &ConsoleState,
    session: &Session,
    form: &SubscribeForm,
    errors: &[FieldError],
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    match subscriptions::list(&state.agent, false).await {
        Ok(list) => respond(
            status,
            subscriptions_page(state, session, form, errors, notice, &list),
        ),
        Err(e) => {
            tracing::warn!(user = %session.staff.user_id, error = %e, "console cannot list subscriptions");
            hub_down()
        }
    }
}

/// `POST /subscriptions`: subscribe.
pub async fn subscribe(
    State(state): State<ConsoleState>,
    posted: Posted<BTreeMap<String, String>>,
) -> Response {
    let Posted { session, form } = posted;
    if let Some(refused) = case_workers_only(&session) {
        return refused;
    }
    let form = SubscribeForm::from_fields(&form);
    let line = match form.to_line(&session.staff) {
        Ok(line) => line,
        Err(fe) => {
            return render(
                &state,
                &session,
                &form,
                &[fe],
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let mut request = line.request();
    request.user.display_name = session.staff.display_name.clone();
    let errors = match subscriptions::subscribe(&state.agent, &request).await {
        Ok(_) => return Redirect::to("/subscriptions?subscribed=1").into_response(),
        Err(SubscriptionError::Invalid(errors)) => from_field_errors(&errors),
        Err(SubscriptionError::Refused { message, .. }) => refusal_errors(&message),
        Err(e) => {
            // The error can quote the hub, never the form: no NHS number.
            tracing::warn!(user = %session.staff.user_id, error = %e, "console subscribe failed");
            return hub_down();
        }
    };
    render(
        &state,
        &session,
        &form,
        &errors,
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// The unsubscribe form: one row's button.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UnsubscribeForm {
    pub subscription_id: String,
}

/// `POST /subscriptions/unsubscribe`.
pub async fn unsubscribe(
    State(state): State<ConsoleState>,
    posted: Posted<UnsubscribeForm>,
) -> Response {
    let Posted { session, form } = posted;
    if let Some(refused) = case_workers_only(&session) {
        return refused;
    }
    let user = ActingUser {
        user_id: session.staff.user_id.clone(),
        display_name: session.staff.display_name.clone(),
        role: session.staff.role.clone(),
        team: session.staff.team.clone(),
    };
    match subscriptions::unsubscribe(&state.agent, &user, form.subscription_id.trim()).await {
        Ok(_) => Redirect::to("/subscriptions?ended=1").into_response(),
        Err(SubscriptionError::Invalid(_)) => problem(
            StatusCode::BAD_REQUEST,
            "The subscription could not be ended",
            "The form did not name a subscription. Go back, reload the page and try again.",
        ),
        Err(SubscriptionError::Refused { message, .. }) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The hub refused to end this subscription",
            &message,
        ),
        Err(e) => {
            tracing::warn!(user = %session.staff.user_id, error = %e, "console unsubscribe failed");
            hub_down()
        }
    }
}

fn what(s: &Listed) -> String {
    s.relationship_types
        .iter()
        .map(|t| label(t))
        .chain(
            s.categories
                .iter()
                .map(|c| format!("{} (category)", label(c))),
        )
        .collect::<Vec<_>>()
        .join(", ")
}

fn subscriptions_page(
    state: &ConsoleState,
    session: &Session,
    form: &SubscribeForm,
    errors: &[FieldError],
    notice: Option<&str>,
    list: &[Listed],
) -> Markup {
    let title = if errors.is_empty() {
        "Subscriptions"
    } else {
        "Error: Subscriptions"
    };
    let (d, m, y) = &form.ends_on;
    html! {
        (page(title, Some(&Shell::at(session, PATH)), html! {
            (error_summary(errors))
            h1 class="govuk-heading-l" { "Subscriptions" }
            @if let Some(notice) = notice {
                div class="govuk-inset-text" id="notice" { (notice) }
            }
            p class="govuk-body" {
                "Your authority is told when another organisation starts, changes or ends its involvement with a person you subscribe to. You can subscribe only to people your authority is itself involved with."
            }
            h2 class="govuk-heading-m" { "Current subscriptions" }
            @if list.is_empty() {
                p class="govuk-body" id="no-subscriptions" { "Your authority has no current subscriptions." }
            } @else {
                (scroll_table("Current subscriptions", html! { table class="govuk-table" id="subscriptions" {
                    caption class="govuk-table__caption govuk-table__caption--s govuk-visually-hidden" { "Current subscriptions" }
                    thead class="govuk-table__head" {
                        tr class="govuk-table__row" {
                            th scope="col" class="govuk-table__header" { "NHS number" }
                            th scope="col" class="govuk-table__header" { "Told of" }
                            th scope="col" class="govuk-table__header" { "Purpose" }
                            th scope="col" class="govuk-table__header" { "Made by" }
                            th scope="col" class="govuk-table__header" { "Ends on" }
                            th scope="col" class="govuk-table__header" { "Subscription" }
                            th scope="col" class="govuk-table__header" { span class="govuk-visually-hidden" { "Action" } }
                        }
                    }
                    tbody class="govuk-table__body" {
                        @for s in list {
                            tr class="govuk-table__row" {
                                td class="govuk-table__cell" { (s.nhs_number) }
                                td class="govuk-table__cell" { (what(s)) }
                                td class="govuk-table__cell" { (label(&s.purpose)) }
                                td class="govuk-table__cell" { (s.created_by) }
                                td class="govuk-table__cell" { (s.ends_on) }
                                td class="govuk-table__cell" { code { (s.subscription_id) } }
                                td class="govuk-table__cell" {
                                    form method="post" action="/subscriptions/unsubscribe" {
                                        (csrf_field(&session.csrf_token))
                                        input type="hidden" name="subscription_id" value=(s.subscription_id);
                                        button type="submit" class="govuk-button govuk-button--warning govuk-!-margin-bottom-0" {
                                            "Unsubscribe"
                                            span class="govuk-visually-hidden" { " (" (s.subscription_id) ")" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }))
            }
            div class="govuk-grid-row" {
                div class="govuk-grid-column-two-thirds" {
                    h2 class="govuk-heading-m" { "Subscribe to a person" }
                    form method="post" action=(PATH) novalidate {
                        (csrf_field(&session.csrf_token))
                        (text_input(errors, "nhs-number", "nhs_number", "NHS number", &form.nhs_number, "govuk-input--width-10", "off"))
                        div class=(group_class(errors, &["relationship-types"])) {
                            fieldset class="govuk-fieldset" aria-describedby="relationship-types-hint" {
                                legend class="govuk-fieldset__legend govuk-fieldset__legend--s" { "What should you be told of?" }
                                div class="govuk-hint" id="relationship-types-hint" { "Select the relationship types or categories. Select at least one." }
                                (inline_error(errors, "relationship-types"))
                                div class="govuk-checkboxes govuk-checkboxes--small" data-module="govuk-checkboxes" {
                                    @for (i, t) in RelationshipType::ALL.iter().enumerate() {
                                        @let id = if i == 0 { "relationship-types".to_string() } else { format!("type-{}", t.as_str()) };
                                        div class="govuk-checkboxes__item" {
                                            input class="govuk-checkboxes__input" id=(id) type="checkbox"
                                                name={ (TYPE_PREFIX) (t.as_str()) } value="on"
                                                checked[form.relationship_types.iter().any(|x| x == t.as_str())];
                                            label class="govuk-label govuk-checkboxes__label" for=(id) { (label(t.as_str())) }
                                        }
                                    }
                                    @let categories: Vec<&str> = state.roles.categories().collect();
                                    @if !categories.is_empty() {
                                        div class="govuk-checkboxes__divider" { "or categories" }
                                    }
                                    @for c in categories {
                                        @let id = format!("category-{c}");
                                        div class="govuk-checkboxes__item" {
                                            input class="govuk-checkboxes__input" id=(id) type="checkbox"
                                                name={ (CATEGORY_PREFIX) (c) } value="on"
                                                checked[form.categories.iter().any(|x| x == c)];
                                            label class="govuk-label govuk-checkboxes__label" for=(id) { (label(c)) " (category)" }
                                        }
                                    }
                                }
                            }
                        }
                        div class=(group_class(errors, &["purpose"])) {
                            fieldset class="govuk-fieldset" {
                                legend class="govuk-fieldset__legend govuk-fieldset__legend--s" { "Why do you need to know?" }
                                (inline_error(errors, "purpose"))
                                div class="govuk-radios govuk-radios--small" data-module="govuk-radios" {
                                    @for (i, p) in Purpose::ALL.iter().enumerate() {
                                        @let id = if i == 0 { "purpose".to_string() } else { format!("purpose-{}", p.as_str()) };
                                        div class="govuk-radios__item" {
                                            input class="govuk-radios__input" id=(id) name="purpose" type="radio"
                                                value=(p.as_str()) checked[form.purpose == p.as_str()];
                                            label class="govuk-label govuk-radios__label" for=(id) { (label(p.as_str())) }
                                        }
                                    }
                                }
                            }
                        }
                        (date_input(errors, "ends-on", "ends_on", "End date (optional)",
                            "Leave empty for the hub's default. For example, 27 3 2027", (d, m, y)))
                        button type="submit" class="govuk-button" { "Subscribe" }
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hubs_field_errors_land_at_their_fields_and_other_refusals_at_the_nhs_number() {
        let e = refusal_errors(
            "nhs_number: you already hold subscription sub-1 for this person; ends_on: 2099-01-01 is past the longest",
        );
        assert_eq!(
            e.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["nhs-number", "ends-on-day"]
        );
        assert!(e[0].message.contains("sub-1"), "{e:?}");
        let e = refusal_errors("categories[0]: unknown category \"astrology\"");
        assert_eq!(e[0].field, "relationship-types");
        assert!(e[0].message.starts_with("Categories: "), "{e:?}");
        let e = refusal_errors("you hold no current record for this person");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "nhs-number");
        assert!(e[0].message.contains("no current record"), "{e:?}");
    }

    #[test]
    fn the_form_takes_each_checkbox_and_never_the_acting_user() {
        let fields: BTreeMap<String, String> = [
            ("nhs_number", " 9434765919 "),
            ("type.child_protection_plan", "on"),
            ("category.children", "on"),
            ("purpose", "safeguarding"),
            ("user_id", "someone-else"),
            ("ends_on_day", "1"),
            ("ends_on_month", "2"),
            ("ends_on_year", "2030"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let form = SubscribeForm::from_fields(&fields);
        assert_eq!(form.relationship_types, ["child_protection_plan"]);
        assert_eq!(form.categories, ["children"]);
        let bad = SubscribeForm {
            ends_on: ("31".into(), "2".into(), "2030".into()),
            ..form.clone()
        };
        let staff = StaffIdentity {
            user_id: "sam".into(),
            display_name: "Sam Person".into(),
            team: "Team".into(),
            role: "social_worker".into(),
        };
        assert_eq!(bad.to_line(&staff).unwrap_err().field, "ends-on-day");
        let no_purpose = SubscribeForm {
            purpose: " ".into(),
            ..form.clone()
        };
        assert_eq!(no_purpose.to_line(&staff).unwrap_err().field, "purpose");
        let line = form.to_line(&staff).unwrap();
        assert_eq!(line.user_id, "sam");
        assert_eq!(line.nhs_number, "9434765919");
        assert_eq!(line.ends_on.as_deref(), Some("2030-02-01"));
    }
}
