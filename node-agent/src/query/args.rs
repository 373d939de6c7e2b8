//! The case worker's flags: who is asking, about whom, for what, and any
//! break glass; built into the query contract's `QueryRequest` and
//! checked by it (`kith_core::query`), each failing field named by its flag.

use chrono::NaiveDate;
use kith_core::{NhsNumber, Purpose};
use kith_proto::v1 as pb;

use super::QueryError;

/// What the case worker asks, and who they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryArgs {
    /// The person's NHS number; or else `demographics`, or `confirm`.
    pub nhs_number: Option<String>,
    pub demographics: DemographicArgs,
    /// A candidate id from an earlier demographic query, to confirm; the
    /// query must name the person as that one did (the hub re-scores).
    pub confirm: Option<String>,
    /// Emergency access, claimed with a reason.
    pub break_glass: Option<BreakGlassArgs>,
    pub purpose: Option<Purpose>,
    pub user_id: String,
    pub role: String,
    pub display_name: String,
    pub team: String,
}

/// A person named by demographics, for a search without an NHS number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemographicArgs {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub postcode: Option<String>,
}

impl DemographicArgs {
    fn is_empty(&self) -> bool {
        self.given_name.is_none()
            && self.family_name.is_none()
            && self.date_of_birth.is_none()
            && self.postcode.is_none()
    }
}

/// A claim of emergency access.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakGlassArgs {
    /// One of [`BREAK_GLASS_REASONS`].
    pub reason_code: String,
    /// Why this access is needed now, 10 to 1,000 characters.
    pub justification: String,
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        flag,
        reason: reason.into(),
    }
}

/// Trims a flag's value; `None` when absent or blank.
fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The person asked about, from an NHS number or demographics: which
/// flags were given. Their values are checked by the query contract.
fn subject(
    args: &QueryArgs,
    request: &mut kith_core::query::QueryRequest,
) -> Result<(), QueryError> {
    let d = &args.demographics;
    let nhs = given(&args.nhs_number);
    if nhs.is_some() && !d.is_empty() {
        return Err(invalid(
            "--nhs-number",
            "give the NHS number or the demographic flags (--given-name, --family-name, --date-of-birth, --postcode), not both",
        ));
    }
    if let Some(given_nhs) = nhs {
        let nhs: NhsNumber = given_nhs.parse().map_err(|source| QueryError::NhsNumber {
            given: given_nhs.clone(),
            source,
        })?;
        request.nhs_number = Some(nhs);
        return Ok(());
    }
    if d.is_empty() && args.confirm.is_some() {
        return Err(invalid(
            "--confirm",
            "give the same --given-name, --family-name, --date-of-birth (and --postcode) as the search that listed the candidate",
        ));
    }
    if d.is_empty() {
        return Err(QueryError::Missing(
            "the person: --nhs-number, or --given-name, --family-name and --date-of-birth (and --postcode if known)",
        ));
    }
    let (Some(given_name), Some(family_name)) = (given(&d.given_name), given(&d.family_name))
    else {
        return Err(QueryError::Missing(if given(&d.given_name).is_none() {
            "--given-name (for a search without an NHS number)"
        } else {
            "--family-name (for a search without an NHS number)"
        }));
    };
    if d.date_of_birth.is_none() {
        return Err(QueryError::Missing(
            "--date-of-birth (for a search without an NHS number)",
        ));
    }
    request.demographics = Some(kith_core::Demographics {
        given_name,
        family_name,
        date_of_birth: d.date_of_birth,
        postcode: given(&d.postcode).unwrap_or_default(),
    });
    Ok(())
}

/// The flag a field of the query contract came from.
fn flag_for(field: &str) -> &'static str {
    match field {
        "acting_user.user_id" => "--as",
        "acting_user.role" => "--role",
        "acting_user.display_name" => "--name",
        "acting_user.team" => "--team",
        "purpose" => "--purpose",
        "subject" | "subject.nhs_number" => "--nhs-number",
        "subject.demographics.given_name" => "--given-name",
        "subject.demographics.family_name" => "--family-name",
        "subject.demographics.date_of_birth" => "--date-of-birth",
        "subject.demographics.postcode" => "--postcode",
        "break_glass.reason_code" => "--break-glass",
        "break_glass.justification" => "--justification",
        "confirm_candidate" => "--confirm",
        _ => "the query",
    }
}

/// Checks the arguments and builds the wire request.
pub fn build_request(args: &QueryArgs) -> Result<pb::QueryRequest, QueryError> {
    build_request_as_of(args, chrono::Utc::now().date_naive())
}

/// [`build_request`], checking dates against `today`: the flags given,
/// then the same query contract the hub applies
/// ([`kith_core::query::QueryRequest::check`]), each failing field named
/// by its flag.
pub fn build_request_as_of(
    args: &QueryArgs,
    today: NaiveDate,
) -> Result<pb::QueryRequest, QueryError> {
    let mut request = kith_core::query::QueryRequest::default();
    subject(args, &mut request)?;
    let Some(purpose) = args.purpose else {
        return Err(QueryError::Missing("the purpose (--purpose)"));
    };
    request.purpose = Some(purpose);
    if args.user_id.trim().is_empty() {
        return Err(QueryError::Missing("the acting user (--as)"));
    }
    if args.role.trim().is_empty() {
        return Err(QueryError::Missing("the acting user's role (--role)"));
    }
    request.user = kith_core::ActingUser {
        user_id: args.user_id.clone(),
        display_name: args.display_name.clone(),
        role: args.role.clone(),
        team: args.team.clone(),
    }
    .trimmed();
    request.confirm_candidate = match &args.confirm {
        Some(c) if c.trim().is_empty() => {
            return Err(invalid(
                "--confirm",
                "needs the CANDIDATE_ID a previous search showed",
            ));
        }
        Some(c) => Some(c.trim().to_string()),
        None => None,
    };
    request.break_glass = args
        .break_glass
        .as_ref()
        .map(|b| kith_core::query::BreakGlassRequest {
            reason_code: b.reason_code.trim().to_string(),
            justification: b.justification.trim().to_string(),
        });
    let checked = request
        .check(today)
        .map_err(|errors| match errors.first() {
            Some(first) => invalid(flag_for(&first.field), first.reason.clone()),
            None => invalid("the query", "is not valid"),
        })?;
    Ok(kith_core::wire::query_to_wire(&checked))
}
