//! A case worker's question: who else is involved with this person?
//!
//! The agent asks the hub on behalf of a named member of staff, in a stated
//! role and for a stated purpose; the authority (from the certificate) answers
//! for that assertion. The person is named by NHS number or, without one, by
//! demographics (given and family name, date of birth, postcode), which the
//! hub scores: a certain match is answered, possible ones come back as
//! candidates, and the case worker confirms one (`--confirm CANDIDATE_ID`).
//! In an emergency the case worker may break glass, with a coded reason and
//! a justification; the hub flags it for review and tells the custodians.
//! Everything is checked here first, so a typo gets a clear message without
//! a round trip or an audit entry. The answer is turned into a plain view,
//! printed as a table for people or as JSON for scripts.

use std::fmt::Write as _;

use chrono::NaiveDate;
use kith_core::nhs_number::NhsNumberError;
use kith_core::{NhsNumber, Purpose, RelationshipType};
use kith_proto::v1 as pb;
use pb::query_service_client::QueryServiceClient;
use serde::Serialize;

use crate::config::{AgentConfig, ConfigError};
use crate::hub_client::{CallError, HubError, call_with_failover};
use crate::table::table;
use crate::terminal::escape;

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

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("NHS number {given:?}: {source}")]
    NhsNumber {
        given: String,
        source: NhsNumberError,
    },
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
    /// The certificate names another authority, is expired or not yet
    /// valid, or cannot be read: found before any call to the hub.
    #[error(transparent)]
    Certificate(#[from] ConfigError),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("the hub at {address} refused the query: {code:?}: {message}")]
    Refused {
        address: String,
        code: tonic::Code,
        message: String,
    },
}

/// A contact, as shown to the case worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactView {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub phone: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
}

/// One record in the answer, at the level the case worker may see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisclosedRecordView {
    /// `detail`, `summary` or `withheld`.
    pub level: String,
    pub custodian: String,
    /// The custodian's name, e.g. "Manchester City Council", when the hub knows it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub custodian_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub record_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship_type: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_worker: Option<ContactView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_hours: Option<ContactView>,
    pub reason: String,
    pub decided_by: Vec<String>,
}

/// The hub's answer, as the case worker sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResponse {
    pub query_id: String,
    pub audit_index: u64,
    pub hub_address: String,
    pub records: Vec<DisclosedRecordView>,
    /// Custodians asked, live, for detail they hold at source; anything but
    /// `ok` means the answer is partial.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authority_statuses: Vec<AuthorityStatusView>,
    /// What the case worker can do when no agreement covers their purpose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// How the person was matched: `nhs_number`, `local_id`, `demographics`
    /// (certain) or `confirmed` (a candidate confirmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<String>,
    /// While emergency access is open for this user and person: when it
    /// ends (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass_until: Option<String>,
    /// Possible matches of a demographic search, for the case worker to
    /// confirm one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateView>,
}

/// A possible match: enough to tell whether it is the person, no more.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateView {
    /// Give it to `--confirm` to confirm this match.
    pub candidate_id: String,
    /// Fellegi–Sunter weight (sum of log2 likelihood ratios).
    pub score: f64,
    pub rule_version: String,
    /// Fields that agreed and disagreed (given_name, family_name,
    /// date_of_birth, postcode).
    pub agreed: Vec<String>,
    pub disagreed: Vec<String>,
    /// The record found, at summary level at most.
    pub record: DisclosedRecordView,
}

/// How a custodian asked for detail held at source answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthorityStatusView {
    pub authority: String,
    /// `ok`, `unreachable` or `refused`.
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

fn contact_view(c: Option<pb::Contact>) -> Option<ContactView> {
    let c = c?;
    let view = ContactView {
        name: c.name,
        role: c.role,
        phone: c.phone,
        email: c.email,
    };
    (!(view.name.is_empty()
        && view.role.is_empty()
        && view.phone.is_empty()
        && view.email.is_empty()))
    .then_some(view)
}

fn level_name(level: i32) -> String {
    match pb::DisclosureLevel::try_from(level) {
        Ok(pb::DisclosureLevel::Detail) => "detail".into(),
        Ok(pb::DisclosureLevel::Summary) => "summary".into(),
        Ok(pb::DisclosureLevel::Withheld) => "withheld".into(),
        _ => format!("unknown ({level})"),
    }
}

impl DisclosedRecordView {
    pub fn from_wire(d: pb::DisclosedRecord) -> Self {
        let r = d.record.unwrap_or_default();
        let period = r.period.unwrap_or_default();
        Self {
            level: level_name(d.level),
            custodian: r.custodian,
            custodian_name: d.custodian_name,
            record_id: r.record_id,
            version: (r.version > 0).then_some(r.version),
            relationship_type: RelationshipType::from_wire(r.relationship_type)
                .map(|t| t.as_str().to_string()),
            service: r.service,
            period_start: Some(period.start).filter(|s| !s.is_empty()),
            period_end: Some(period.end).filter(|s| !s.is_empty()),
            key_worker: contact_view(r.key_worker),
            out_of_hours: contact_view(r.out_of_hours),
            reason: d.reason,
            decided_by: d.decided_by,
        }
    }
}

impl QueryResponse {
    pub fn from_wire(address: &str, r: pb::QueryResponse) -> Self {
        Self {
            query_id: r.query_id,
            audit_index: r.audit_index,
            hub_address: address.to_string(),
            records: r
                .records
                .into_iter()
                .map(DisclosedRecordView::from_wire)
                .collect(),
            notice: (!r.notice.is_empty()).then_some(r.notice),
            matched_by: (!r.matched_by.is_empty()).then_some(r.matched_by),
            break_glass_until: (!r.break_glass_until.is_empty()).then_some(r.break_glass_until),
            candidates: r
                .candidates
                .into_iter()
                .map(|c| CandidateView {
                    candidate_id: c.candidate_id,
                    score: c.score,
                    rule_version: c.rule_version,
                    agreed: c.agreed,
                    disagreed: c.disagreed,
                    record: DisclosedRecordView::from_wire(c.record.unwrap_or_default()),
                })
                .collect(),
            authority_statuses: r
                .authority_statuses
                .into_iter()
                .map(|s| AuthorityStatusView {
                    authority: s.authority,
                    state: match pb::AuthorityState::try_from(s.state) {
                        Ok(pb::AuthorityState::Ok) => "ok",
                        Ok(pb::AuthorityState::Unreachable) => "unreachable",
                        Ok(pb::AuthorityState::Refused) => "refused",
                        _ => "unknown",
                    }
                    .to_string(),
                    detail: s.detail,
                })
                .collect(),
        }
    }

    /// The answer as a table for people.
    pub fn render_table(&self) -> String {
        let headers = [
            "AUTHORITY",
            "RELATIONSHIP",
            "SERVICE",
            "PERIOD",
            "KEY WORKER",
            "OUT OF HOURS",
            "LEVEL",
            "REASON",
        ];
        let dash = || "-".to_string();
        let rows: Vec<[String; 8]> = self
            .records
            .iter()
            .map(|r| {
                let period = match (&r.period_start, &r.period_end) {
                    (Some(s), Some(e)) => format!("{s} to {e}"),
                    (Some(s), None) => format!("since {s}"),
                    _ => dash(),
                };
                let key_worker = r.key_worker.as_ref().map_or_else(dash, |k| {
                    let mut parts = vec![k.name.as_str()];
                    if !k.phone.is_empty() {
                        parts.push(k.phone.as_str());
                    } else if !k.email.is_empty() {
                        parts.push(k.email.as_str());
                    }
                    parts.retain(|p| !p.is_empty());
                    parts.join(", ")
                });
                [
                    r.authority(),
                    r.relationship_type
                        .clone()
                        .map_or_else(dash, |t| t.replace('_', " ")),
                    if r.service.is_empty() {
                        dash()
                    } else {
                        r.service.clone()
                    },
                    period,
                    key_worker,
                    r.out_of_hours
                        .as_ref()
                        .map(|o| o.phone.clone())
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(dash),
                    r.level.clone(),
                    if r.reason.is_empty() {
                        dash()
                    } else {
                        r.reason.clone()
                    },
                ]
            })
            .collect();
        let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
        let mut out = String::new();
        if let Some(until) = &self.break_glass_until {
            let _ = writeln!(
                out,
                "BREAK GLASS: emergency access is open for you and this person until {}; it is audited and will be reviewed\n",
                escape(until)
            );
        }
        out.push_str(&table(&headers, &rows));
        if rows.is_empty() && self.candidates.is_empty() {
            let _ = writeln!(out, "(no records you may see)");
        } else if rows.is_empty() {
            let _ = writeln!(out, "(no certain match: see the possible matches below)");
        }
        // How the records shown were matched (not the candidates).
        if let Some(matched_by) = self.matched_by.as_ref().filter(|_| !rows.is_empty()) {
            let _ = writeln!(out, "matched by: {}", escape(&matched_by.replace('_', " ")));
        }
        if !self.candidates.is_empty() {
            let _ = writeln!(
                out,
                "\npossible matches (if one is the person, ask the same again with --confirm CANDIDATE_ID):"
            );
            out.push_str(&self.render_candidates());
        }
        if let Some(notice) = &self.notice {
            let _ = writeln!(out, "note: {}", escape(notice));
        }
        for s in self.authority_statuses.iter().filter(|s| s.state != "ok") {
            let _ = writeln!(
                out,
                "partial answer: {} was asked for detail it holds and is {} ({}); its summary is shown",
                escape(&s.authority),
                escape(&s.state),
                escape(&s.detail)
            );
        }
        let _ = writeln!(
            out,
            "\nquery {} via {}; audit entry {}",
            escape(&self.query_id),
            escape(&self.hub_address),
            self.audit_index
        );
        out
    }
}

impl QueryResponse {
    fn render_candidates(&self) -> String {
        let headers = [
            "CANDIDATE",
            "SCORE",
            "RULES",
            "AGREED",
            "DISAGREED",
            "AUTHORITY",
            "RELATIONSHIP",
            "LEVEL",
        ];
        let list = |fields: &[String]| {
            if fields.is_empty() {
                "-".to_string()
            } else {
                fields.join(", ")
            }
        };
        let rows: Vec<Vec<String>> = self
            .candidates
            .iter()
            .map(|c| {
                vec![
                    c.candidate_id.clone(),
                    format!("{:.1}", c.score),
                    c.rule_version.clone(),
                    list(&c.agreed),
                    list(&c.disagreed),
                    c.record.authority(),
                    c.record
                        .relationship_type
                        .as_deref()
                        .map_or_else(|| "-".into(), |t| t.replace('_', " ")),
                    c.record.level.clone(),
                ]
            })
            .collect();
        table(&headers, &rows)
    }
}

impl DisclosedRecordView {
    /// "Name (CODE)", or the code alone when the name is not known.
    pub fn authority(&self) -> String {
        if self.custodian_name.is_empty() {
            self.custodian.clone()
        } else {
            format!("{} ({})", self.custodian_name, self.custodian)
        }
    }
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

/// Asks the hub, failing over between addresses on transient errors. The
/// arguments and the certificate are checked first.
pub async fn query(config: &AgentConfig, args: QueryArgs) -> Result<QueryResponse, QueryError> {
    let request = build_request(&args)?;
    config.check_certificate_at(chrono::Utc::now())?;
    let answer = call_with_failover(config, "query", |channel| {
        let request = request.clone();
        async move { QueryServiceClient::new(channel).query(request).await }
    })
    .await;
    match answer {
        Ok((address, response)) => Ok(QueryResponse::from_wire(&address, response.into_inner())),
        Err(CallError::Hub(e)) => Err(QueryError::Hub(e)),
        Err(CallError::Status { address, status }) => Err(QueryError::Refused {
            address,
            code: status.code(),
            message: status.message().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> QueryArgs {
        QueryArgs {
            nhs_number: Some("943 476 5919".into()),
            purpose: Some(Purpose::Safeguarding),
            user_id: "u1".into(),
            role: "social_worker".into(),
            ..QueryArgs::default()
        }
    }

    fn by_demographics() -> QueryArgs {
        QueryArgs {
            nhs_number: None,
            demographics: DemographicArgs {
                given_name: Some(" Amara ".into()),
                family_name: Some("Davies".into()),
                date_of_birth: Some("1958-11-02".parse().unwrap()),
                postcode: Some("M16 6TR".into()),
            },
            ..args()
        }
    }

    fn today() -> NaiveDate {
        "2026-03-01".parse().unwrap()
    }

    fn flag_of(err: QueryError) -> String {
        match err {
            QueryError::Invalid { flag, .. } => flag.to_string(),
            QueryError::Missing(what) => what.to_string(),
            other => other.to_string(),
        }
    }

    #[test]
    fn a_demographic_search_sends_the_four_fields_and_no_nhs_number() {
        let req = build_request_as_of(&by_demographics(), today()).unwrap();
        let subject = req.subject.unwrap();
        assert_eq!(subject.nhs_number, "");
        let d = subject.demographics.unwrap();
        assert_eq!(
            (
                d.given_name.as_str(),
                d.family_name.as_str(),
                d.date_of_birth.as_str(),
                d.postcode.as_str()
            ),
            ("Amara", "Davies", "1958-11-02", "M16 6TR")
        );
        assert!(req.break_glass.is_none());
        assert_eq!(req.confirm_candidate, "");
    }

    #[test]
    fn the_acting_user_is_checked_as_the_hub_checks_it() {
        let mut a = args();
        a.display_name = "Sam \u{1b}[31mPatel".into();
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--name"
        );
        let mut a = args();
        a.team = "t".repeat(kith_core::acting_user::MAX_NAME_CHARS + 1);
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--team"
        );
        let mut a = args();
        a.role = "social worker".into();
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--role"
        );
        let mut a = args();
        a.display_name = format!(" Sam Patel{}", " ".repeat(500));
        let req = build_request_as_of(&a, today()).unwrap();
        assert_eq!(req.acting_user.unwrap().display_name, "Sam Patel");
    }

    #[test]
    fn an_nhs_number_that_is_never_issued_is_refused_before_the_hub() {
        let mut a = args();
        a.nhs_number = Some("0000000000".into());
        let err = build_request_as_of(&a, today()).unwrap_err();
        assert!(err.to_string().contains("ever issued"), "{err}");
    }

    #[test]
    fn bad_demographics_are_named_by_flag() {
        let mut a = by_demographics();
        a.nhs_number = Some("9434765919".into());
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--nhs-number"
        );
        let mut a = by_demographics();
        a.demographics.family_name = Some(" ".into());
        assert!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()).starts_with("--family-name")
        );
        let mut a = by_demographics();
        a.demographics.date_of_birth = None;
        assert!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()).starts_with("--date-of-birth")
        );
        let mut a = by_demographics();
        a.demographics.date_of_birth = Some("2026-03-02".parse().unwrap());
        let err = build_request_as_of(&a, today()).unwrap_err().to_string();
        assert_eq!(err, "--date-of-birth: 2026-03-02 is in the future");
        let mut a = by_demographics();
        a.demographics.postcode = Some("NOT A CODE".into());
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--postcode"
        );
        // No way of naming the person at all.
        let mut a = args();
        a.nhs_number = None;
        assert!(matches!(
            build_request_as_of(&a, today()),
            Err(QueryError::Missing(_))
        ));
    }

    #[test]
    fn break_glass_needs_a_known_reason_and_a_real_justification() {
        let mut a = args();
        a.break_glass = Some(BreakGlassArgs {
            reason_code: "life_threatening".into(),
            justification: "  unconscious at scene, no history  ".into(),
        });
        let req = build_request_as_of(&a, today()).unwrap();
        let bg = req.break_glass.unwrap();
        assert_eq!(bg.reason_code, "life_threatening");
        assert_eq!(bg.justification, "unconscious at scene, no history");

        a.break_glass = Some(BreakGlassArgs {
            reason_code: "curiosity".into(),
            justification: "unconscious at scene".into(),
        });
        let err = build_request_as_of(&a, today()).unwrap_err().to_string();
        assert!(
            err.starts_with("--break-glass: unknown reason code"),
            "{err}"
        );
        assert!(err.contains("immediate_safeguarding_risk"), "{err}");
        a.break_glass = Some(BreakGlassArgs {
            reason_code: "other".into(),
            justification: "urgent".into(),
        });
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--justification"
        );
        a.break_glass = Some(BreakGlassArgs {
            reason_code: "other".into(),
            justification: "x".repeat(1001),
        });
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--justification"
        );
    }

    #[test]
    fn a_confirmation_repeats_the_search_and_is_not_blank() {
        let mut a = by_demographics();
        a.confirm = Some("cand-1".into());
        let req = build_request_as_of(&a, today()).unwrap();
        assert_eq!(req.confirm_candidate, "cand-1");
        assert!(req.subject.unwrap().demographics.is_some());
        let mut alone = args();
        alone.nhs_number = None;
        alone.confirm = Some("cand-1".into());
        let err = build_request_as_of(&alone, today())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--confirm: give the same --given-name"),
            "{err}"
        );
        a.confirm = Some(" ".into());
        assert_eq!(
            flag_of(build_request_as_of(&a, today()).unwrap_err()),
            "--confirm"
        );
    }

    #[test]
    fn candidates_matching_and_break_glass_are_shown() {
        let wire = pb::QueryResponse {
            query_id: "q-2".into(),
            audit_index: 7,
            break_glass_until: "2026-03-01T14:00:00Z".into(),
            // The hub names how it searched even when it found only
            // candidates: no records, so no "matched by" line.
            matched_by: "demographics".into(),
            candidates: vec![pb::MatchCandidate {
                candidate_id: "cand-1".into(),
                score: 9.87,
                rule_version: "2026-01".into(),
                agreed: vec!["family_name".into(), "date_of_birth".into()],
                disagreed: vec!["postcode".into()],
                record: Some(pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Summary as i32,
                    record: Some(pb::RelationshipRecord {
                        custodian: "E08000006".into(),
                        relationship_type: pb::RelationshipType::LookedAfterChild as i32,
                        ..Default::default()
                    }),
                    custodian_name: "Salford City Council".into(),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let view = QueryResponse::from_wire("https://hub:1", wire);
        let table = view.render_table();
        assert!(table.starts_with("BREAK GLASS: emergency access is open for you and this person until 2026-03-01T14:00:00Z"), "{table}");
        assert!(
            table.contains("(no certain match: see the possible matches below)"),
            "{table}"
        );
        assert!(table.contains("--confirm CANDIDATE_ID"), "{table}");
        let row = table
            .lines()
            .find(|l| l.starts_with("cand-1"))
            .expect(&table);
        for part in [
            "9.9",
            "2026-01",
            "family_name, date_of_birth",
            "postcode",
            "Salford City Council (E08000006)",
            "looked after child",
            "summary",
        ] {
            assert!(row.contains(part), "{part} missing from {row}");
        }
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["candidates"][0]["candidate_id"], "cand-1");
        assert_eq!(json["candidates"][0]["record"]["custodian"], "E08000006");
        assert_eq!(json["break_glass_until"], "2026-03-01T14:00:00Z");
        assert!(!table.contains("matched by"), "{table}");
        assert_eq!(json["matched_by"], "demographics");

        let matched = QueryResponse::from_wire(
            "https://hub:1",
            pb::QueryResponse {
                matched_by: "nhs_number".into(),
                records: vec![pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Withheld as i32,
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        assert!(matched.render_table().contains("matched by: nhs number"));
        assert_eq!(
            serde_json::to_value(&matched).unwrap()["matched_by"],
            "nhs_number"
        );
    }

    #[test]
    fn hostile_text_from_the_hub_or_a_custodian_is_shown_escaped() {
        let wire = pb::QueryResponse {
            query_id: "q-3".into(),
            notice: "\x1b[2Jnote".into(),
            records: vec![pb::DisclosedRecord {
                level: pb::DisclosureLevel::Detail as i32,
                record: Some(pb::RelationshipRecord {
                    custodian: "R0A".into(),
                    service: "Ward\u{202e}7".into(),
                    key_worker: Some(pb::Contact {
                        name: "\x1b[31mJo\nFAKE".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            authority_statuses: vec![pb::AuthorityStatus {
                authority: "E08000006".into(),
                state: pb::AuthorityState::Unreachable as i32,
                detail: "timed out\r\x07".into(),
            }],
            ..Default::default()
        };
        let table = QueryResponse::from_wire("https://hub:1", wire).render_table();
        assert!(
            !table
                .chars()
                .any(|c| crate::terminal::is_dangerous(c) && c != '\n'),
            "{table:?}"
        );
        for shown in [
            "note: \\u{1b}[2Jnote",
            "Ward\\u{202e}7",
            "\\u{1b}[31mJo\\u{a}FAKE",
            "(timed out\\u{d}\\u{7})",
        ] {
            assert!(table.contains(shown), "{shown} missing from {table}");
        }
        assert!(!table.lines().any(|l| l.starts_with("FAKE")), "{table}");
    }

    #[test]
    fn a_bad_nhs_number_is_refused_before_any_call() {
        let mut a = args();
        a.nhs_number = Some("9434765918".into());
        let err = build_request(&a).unwrap_err();
        assert!(err.to_string().contains("check digit"), "{err}");
        let mut a = args();
        a.role = " ".into();
        assert!(matches!(build_request(&a), Err(QueryError::Missing(_))));
        let req = build_request(&args()).unwrap();
        assert_eq!(req.subject.unwrap().nhs_number, "9434765919");
        assert_eq!(req.purpose, pb::Purpose::Safeguarding as i32);
    }

    #[test]
    fn the_table_shows_contacts_and_levels() {
        let wire = pb::QueryResponse {
            query_id: "q-1".into(),
            audit_index: 42,
            records: vec![
                pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Summary as i32,
                    record: Some(pb::RelationshipRecord {
                        custodian: "E08000003".into(),
                        relationship_type: pb::RelationshipType::ChildProtectionPlan as i32,
                        key_worker: Some(pb::Contact {
                            name: "J. Smith".into(),
                            phone: "0161 000 0000".into(),
                            ..Default::default()
                        }),
                        period: Some(pb::Period {
                            start: "2025-01-01".into(),
                            end: String::new(),
                        }),
                        ..Default::default()
                    }),
                    reason: "restricted".into(),
                    decided_by: vec!["p1".into()],
                    custodian_name: "Manchester City Council".into(),
                },
                pb::DisclosedRecord {
                    level: pb::DisclosureLevel::Withheld as i32,
                    record: Some(pb::RelationshipRecord {
                        custodian: "RX1".into(),
                        ..Default::default()
                    }),
                    reason: "purpose not permitted".into(),
                    decided_by: vec![],
                    custodian_name: String::new(),
                },
            ],
            notice: String::new(),
            authority_statuses: vec![pb::AuthorityStatus {
                authority: "RX1".into(),
                state: pb::AuthorityState::Unreachable as i32,
                detail: "no answer within 2000 ms".into(),
            }],
            ..Default::default()
        };
        let view = QueryResponse::from_wire("https://hub:1", wire);
        let table = view.render_table();
        assert!(table.contains("child protection plan"), "{table}");
        assert!(table.contains("J. Smith, 0161 000 0000"), "{table}");
        assert!(table.contains("since 2025-01-01"), "{table}");
        assert!(table.contains("withheld"), "{table}");
        assert!(
            table.contains("Manchester City Council (E08000003)"),
            "{table}"
        );
        assert!(table.contains("audit entry 42"), "{table}");
        assert!(table.contains("partial answer: RX1"), "{table}");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["records"][1]["level"], "withheld");
        assert!(json["records"][1].get("relationship_type").is_none());
        assert_eq!(json["records"][0]["key_worker"]["phone"], "0161 000 0000");
    }
}
