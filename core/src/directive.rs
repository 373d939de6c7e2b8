//! Sharing directives: consent, objection, best-interests override and
//! statutory basis, recorded beside a record's lawful basis.
//!
//! A directive is shaped like a FHIR Consent: a kind, a status, a period, a
//! grantor, and the purposes and recipients it covers. The custodian's agent
//! publishes it; the hub stores it and, for each query, works out which
//! directives apply to that requester and purpose ([`resolve`]). The policy
//! set reads the result as record attributes and decides what it means for
//! disclosure; nothing here decides a disclosure.
//!
//! Conflicts resolve by one rule, documented in `docs/directives.md`: deny
//! overrides (an objection in force wins over any permit), then the most
//! recent permit (by `recorded_at`, then version) names the basis.

use chrono::{DateTime, NaiveDate, Utc};

use serde::{Deserialize, Serialize};

use crate::codes::{DirectiveKind, DirectiveStatus, Purpose};
use crate::content_hash::canonical_json;
use crate::error::{FieldError, capped, quote};
use crate::record::Period;
use crate::validate::{MAX_CODE_LEN, MAX_ID_LEN, check_count, check_identifier};

/// Longest directive note.
pub const MAX_NOTE_LEN: usize = 1000;

/// Most recipient authorities one directive may name.
pub const MAX_RECIPIENT_AUTHORITIES: usize = 64;

/// Longest grantor, in characters (the whole value, as stored).
pub const MAX_GRANTOR_CHARS: usize = 200;

/// The organisation kinds a directive may name as recipients.
pub const RECIPIENT_KINDS: &[&str] = &["council", "nhs_trust", "police", "fire", "ambulance"];

/// One sharing directive about one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directive {
    pub directive_id: String,
    pub version: u64,
    /// The custodian; agents fill it in from their own identity when a
    /// source file leaves it out.
    #[serde(default)]
    pub custodian: String,
    /// The record it governs, of the same custodian.
    pub record_id: String,
    pub kind: DirectiveKind,
    #[serde(default = "active")]
    pub status: DirectiveStatus,
    pub period: Period,
    pub grantor: String,
    /// Purposes covered; empty means every purpose.
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    /// Recipient organisation kinds covered; empty means every kind.
    #[serde(default)]
    pub recipient_kinds: Vec<String>,
    /// Recipient authority codes covered; empty means every authority.
    #[serde(default)]
    pub recipient_authorities: Vec<String>,
    pub recorded_at: DateTime<Utc>,
    #[serde(default)]
    pub note: String,
}

fn active() -> DirectiveStatus {
    DirectiveStatus::Active
}

impl DirectiveKind {
    /// An objection denies; every other kind permits.
    pub fn denies(self) -> bool {
        self == DirectiveKind::Objection
    }
}

/// Who a disclosure would go to.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub authority: &'a str,
    pub kind: &'a str,
}

impl Directive {
    /// The directive's key: (custodian, directive id).
    pub fn key(&self) -> (&str, &str) {
        (&self.custodian, &self.directive_id)
    }

    /// SHA-256 (hex) of the directive's canonical JSON: two copies of one
    /// version with different content are a conflict.
    pub fn content_hash(&self) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &canonical_json(self)).as_ref())
    }

    /// Whether the directive is in force on `today` and covers this
    /// purpose and recipient.
    pub fn applies(&self, purpose: Purpose, to: Recipient<'_>, today: NaiveDate) -> bool {
        self.status == DirectiveStatus::Active
            && self.period.start <= today
            && self.period.end.is_none_or(|end| today <= end)
            && (self.purposes.is_empty() || self.purposes.contains(&purpose))
            && (self.recipient_kinds.is_empty()
                || self.recipient_kinds.iter().any(|k| k == to.kind))
            && (self.recipient_authorities.is_empty()
                || self.recipient_authorities.iter().any(|a| a == to.authority))
    }

    /// Checks what the types cannot. Every failure is reported, up to
    /// [`MAX_FIELD_ERRORS`](crate::error::MAX_FIELD_ERRORS) and a count.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        self.collect_errors(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(capped(errors))
        }
    }

    pub(crate) fn collect_errors(&self, errors: &mut Vec<FieldError>) {
        check_identifier("directive_id", &self.directive_id, MAX_ID_LEN, errors);
        check_identifier("custodian", &self.custodian, MAX_CODE_LEN, errors);
        check_identifier("record_id", &self.record_id, MAX_ID_LEN, errors);
        if self.version == 0 {
            errors.push(FieldError::new("version", "must be 1 or more"));
        }
        if let Some(end) = self.period.end
            && end < self.period.start
        {
            errors.push(FieldError::new(
                "period.end",
                format!("{end} is before period.start {}", self.period.start),
            ));
        }
        // The bound is on the value as stored (and hashed), spaces included.
        if self.grantor.trim().is_empty() {
            errors.push(FieldError::new(
                "grantor",
                "is required: who gave or made the directive",
            ));
        } else if self.grantor.chars().count() > MAX_GRANTOR_CHARS
            || self.grantor.chars().any(char::is_control)
        {
            errors.push(FieldError::new(
                "grantor",
                format!("must be at most {MAX_GRANTOR_CHARS} printable characters"),
            ));
        }
        check_count("purposes", self.purposes.len(), Purpose::ALL.len(), errors);
        check_count(
            "recipient_kinds",
            self.recipient_kinds.len(),
            RECIPIENT_KINDS.len(),
            errors,
        );
        check_count(
            "recipient_authorities",
            self.recipient_authorities.len(),
            MAX_RECIPIENT_AUTHORITIES,
            errors,
        );
        for (i, kind) in self.recipient_kinds.iter().enumerate() {
            if !RECIPIENT_KINDS.contains(&kind.as_str()) {
                errors.push(FieldError::new(
                    format!("recipient_kinds[{i}]"),
                    format!(
                        "{} is not an organisation kind; expected one of: {}",
                        quote(kind),
                        RECIPIENT_KINDS.join(", ")
                    ),
                ));
            }
        }
        for (i, code) in self.recipient_authorities.iter().enumerate() {
            check_identifier(
                &format!("recipient_authorities[{i}]"),
                code,
                MAX_CODE_LEN,
                errors,
            );
        }
        if self.note.chars().count() > MAX_NOTE_LEN {
            errors.push(FieldError::new(
                "note",
                format!("is longer than {MAX_NOTE_LEN} characters"),
            ));
        }
        if self.note.chars().any(|c| c.is_control() && c != '\n') {
            errors.push(FieldError::new("note", "contains control characters"));
        }
    }
}

/// What the directives in force say about one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// The deciding kind: an objection if any applies (deny overrides),
    /// else the most recent permit's kind; `None` when none applies.
    pub kind: Option<DirectiveKind>,
    /// The deciding directive's id.
    pub directive_id: Option<String>,
}

impl Resolution {
    /// The spelling the policy set reads (`resource.directive`): the kind,
    /// or "none".
    pub fn as_str(&self) -> &'static str {
        self.kind.map_or("none", DirectiveKind::as_str)
    }

    pub fn objection(&self) -> bool {
        self.kind == Some(DirectiveKind::Objection)
    }
}

/// Resolves a record's directives for one purpose and recipient on `today`:
/// deny overrides, then most recent.
pub fn resolve<'a>(
    directives: impl IntoIterator<Item = &'a Directive>,
    purpose: Purpose,
    to: Recipient<'_>,
    today: NaiveDate,
) -> Resolution {
    let mut deny: Option<&Directive> = None;
    let mut permit: Option<&Directive> = None;
    let later =
        |a: &Directive, b: &Directive| (a.recorded_at, a.version) > (b.recorded_at, b.version);
    for d in directives {
        if !d.applies(purpose, to, today) {
            continue;
        }
        let slot = if d.kind.denies() {
            &mut deny
        } else {
            &mut permit
        };
        if slot.is_none_or(|held| later(d, held)) {
            *slot = Some(d);
        }
    }
    match deny.or(permit) {
        Some(d) => Resolution {
            kind: Some(d.kind),
            directive_id: Some(d.directive_id.clone()),
        },
        None => Resolution::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{directive_from_wire, directive_to_wire};
    use kith_proto::v1 as pb;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn directive(id: &str, kind: DirectiveKind, recorded: &str) -> Directive {
        Directive {
            directive_id: id.into(),
            version: 1,
            custodian: "E08000003".into(),
            record_id: "cpp-1".into(),
            kind,
            status: DirectiveStatus::Active,
            period: Period {
                start: date("2026-01-01"),
                end: None,
            },
            grantor: "the person".into(),
            purposes: vec![],
            recipient_kinds: vec![],
            recipient_authorities: vec![],
            recorded_at: recorded.parse().unwrap(),
            note: String::new(),
        }
    }

    /// Found by the `wire_directive` fuzz target: the wire form cut
    /// `recorded_at` to whole seconds, so the hub held another time than the
    /// agent's file said, and two directives recorded within one second
    /// could swap order.
    #[test]
    fn recorded_at_keeps_its_fraction_across_the_wire() {
        for (at, on_the_wire) in [
            ("2026-01-01T09:30:00.5Z", "2026-01-01T09:30:00.500Z"),
            (
                "2026-01-01T09:30:00.123456789Z",
                "2026-01-01T09:30:00.123456789Z",
            ),
            ("2026-01-01T09:30:00Z", "2026-01-01T09:30:00Z"),
        ] {
            let d = directive("d1", DirectiveKind::Consent, at);
            let wire = directive_to_wire(&d);
            assert_eq!(wire.recorded_at, on_the_wire);
            assert_eq!(directive_from_wire(wire).unwrap(), d);
        }
        let earlier = directive("d1", DirectiveKind::Consent, "2026-01-01T09:30:00.2Z");
        let later = directive("d2", DirectiveKind::Consent, "2026-01-01T09:30:00.7Z");
        let back = |d: &Directive| directive_from_wire(directive_to_wire(d)).unwrap();
        assert!(back(&earlier).recorded_at < back(&later).recorded_at);
    }

    fn refused_fields(d: &Directive) -> Vec<String> {
        d.validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn recipients_and_purposes_are_bounded_at_the_bound_and_one_past() {
        let mut d = directive("d-1", DirectiveKind::Objection, "2026-01-02T00:00:00Z");
        d.recipient_authorities = (0..MAX_RECIPIENT_AUTHORITIES)
            .map(|i| format!("A{i}"))
            .collect();
        d.recipient_kinds = RECIPIENT_KINDS.iter().map(|k| k.to_string()).collect();
        d.purposes = Purpose::ALL.to_vec();
        assert!(refused_fields(&d).is_empty());
        d.recipient_authorities.push("A-extra".into());
        d.recipient_kinds.push("police".into());
        d.purposes.push(Purpose::ALL[0]);
        assert_eq!(
            refused_fields(&d),
            ["purposes", "recipient_kinds", "recipient_authorities"]
        );
    }

    #[test]
    fn the_grantor_bound_counts_the_value_as_stored() {
        let mut d = directive("d-1", DirectiveKind::Objection, "2026-01-02T00:00:00Z");
        d.grantor = format!("the person{}", " ".repeat(1_000_000));
        assert_eq!(refused_fields(&d), ["grantor"]);
        d.grantor = "g".repeat(MAX_GRANTOR_CHARS);
        assert!(refused_fields(&d).is_empty());
        d.grantor.push('g');
        assert_eq!(refused_fields(&d), ["grantor"]);
    }

    #[test]
    fn a_bad_kind_is_quoted_short() {
        let mut d = directive("d-1", DirectiveKind::Objection, "2026-01-02T00:00:00Z");
        d.recipient_kinds = vec!["k".repeat(100_000)];
        let errors = d.validate().unwrap_err();
        assert!(errors[0].reason.len() < 200, "{}", errors[0].reason);
    }

    const POLICE: Recipient<'static> = Recipient {
        authority: "P01",
        kind: "police",
    };
    const TRUST: Recipient<'static> = Recipient {
        authority: "R0A",
        kind: "nhs_trust",
    };

    #[test]
    fn deny_overrides_a_later_permit() {
        let objection = directive("o", DirectiveKind::Objection, "2026-02-01T00:00:00Z");
        let consent = directive("c", DirectiveKind::Consent, "2026-03-01T00:00:00Z");
        let r = resolve(
            [&consent, &objection],
            Purpose::DirectCare,
            TRUST,
            date("2026-04-01"),
        );
        assert_eq!(r.kind, Some(DirectiveKind::Objection));
        assert_eq!(r.directive_id.as_deref(), Some("o"));
        assert_eq!(r.as_str(), "objection");
    }

    #[test]
    fn the_most_recent_permit_names_the_basis() {
        let consent = directive("c", DirectiveKind::Consent, "2026-02-01T00:00:00Z");
        let statute = directive("s", DirectiveKind::StatutoryBasis, "2026-03-01T00:00:00Z");
        let r = resolve(
            [&statute, &consent],
            Purpose::DirectCare,
            TRUST,
            date("2026-04-01"),
        );
        assert_eq!(r.kind, Some(DirectiveKind::StatutoryBasis));
        let r = resolve([&consent], Purpose::DirectCare, TRUST, date("2026-04-01"));
        assert_eq!(r.as_str(), "consent");
    }

    #[test]
    fn scope_status_and_period_limit_what_applies() {
        let mut objection = directive("o", DirectiveKind::Objection, "2026-02-01T00:00:00Z");
        objection.recipient_kinds = vec!["police".into()];
        objection.purposes = vec![Purpose::PublicProtection];
        let today = date("2026-04-01");
        assert!(resolve([&objection], Purpose::PublicProtection, POLICE, today).objection());
        assert!(!resolve([&objection], Purpose::DirectCare, POLICE, today).objection());
        assert!(!resolve([&objection], Purpose::PublicProtection, TRUST, today).objection());

        objection.recipient_kinds.clear();
        objection.recipient_authorities = vec!["R0A".into()];
        assert!(resolve([&objection], Purpose::PublicProtection, TRUST, today).objection());
        assert!(!resolve([&objection], Purpose::PublicProtection, POLICE, today).objection());

        objection.recipient_authorities.clear();
        objection.purposes.clear();
        assert!(resolve([&objection], Purpose::DirectCare, TRUST, today).objection());
        objection.status = DirectiveStatus::Inactive;
        assert_eq!(
            resolve([&objection], Purpose::DirectCare, TRUST, today),
            Resolution::default()
        );
        objection.status = DirectiveStatus::EnteredInError;
        assert!(!resolve([&objection], Purpose::DirectCare, TRUST, today).objection());
        objection.status = DirectiveStatus::Active;
        objection.period.end = Some(date("2026-03-31"));
        assert!(!resolve([&objection], Purpose::DirectCare, TRUST, today).objection());
        assert!(resolve([&objection], Purpose::DirectCare, TRUST, date("2026-03-31")).objection());
        assert!(!resolve([&objection], Purpose::DirectCare, TRUST, date("2025-12-31")).objection());
    }

    #[test]
    fn bad_wire_directives_name_every_field() {
        let errors = directive_from_wire(pb::SharingDirective {
            directive_id: "bad id!".into(),
            version: 0,
            custodian: "E08000003".into(),
            record_id: String::new(),
            kind: 0,
            status: 1,
            period: Some(pb::Period {
                start: "2026-13-01".into(),
                end: String::new(),
            }),
            grantor: String::new(),
            purposes: vec![99],
            recipient_kinds: vec!["bank".into()],
            recipient_authorities: vec![],
            recorded_at: "yesterday".into(),
            note: String::new(),
        })
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in ["kind", "period.start", "purposes[0]", "recorded_at"] {
            assert!(fields.contains(&f), "{f} missing from {errors:?}");
        }

        let mut d = directive("ok", DirectiveKind::Consent, "2026-02-01T00:00:00Z");
        d.directive_id = "bad id!".into();
        d.version = 0;
        d.grantor = " ".into();
        d.recipient_kinds = vec!["bank".into()];
        d.period.end = Some(date("2025-01-01"));
        let errors = d.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "directive_id",
                "version",
                "period.end",
                "grantor",
                "recipient_kinds[0]"
            ]
        );
    }

    #[test]
    fn round_trips_through_the_wire_and_json() {
        let mut d = directive(
            "c-7",
            DirectiveKind::BestInterestsOverride,
            "2026-02-01T10:30:00Z",
        );
        d.purposes = vec![Purpose::Safeguarding];
        d.recipient_kinds = vec!["nhs_trust".into()];
        d.period.end = Some(date("2026-12-31"));
        d.note = "Mental Capacity Act 2005 s4".into();
        assert_eq!(directive_from_wire(directive_to_wire(&d)), Ok(d.clone()));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Directive>(&json).unwrap(), d);
        let mut changed = d.clone();
        changed.note.push('!');
        assert_ne!(changed.content_hash(), d.content_hash());
    }
}
