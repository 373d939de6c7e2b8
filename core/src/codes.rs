//! The coded vocabularies: relationship types, purposes, sensitivity,
//! residency and the UK GDPR lawful bases.
//!
//! Each code has one spelling everywhere outside the wire (source files, the
//! store, the audit log, policies, the CLI): lower snake case, e.g.
//! `child_protection_plan`. On the wire each is a protobuf enum whose
//! `_UNSPECIFIED = 0` value is never a valid code.

use std::fmt;
use std::str::FromStr;

use kith_proto::v1 as pb;

/// An unknown code: names the value and lists the codes that are allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {}; expected one of: {expected}", crate::error::quote(.value))]
pub struct UnknownCode {
    pub kind: &'static str,
    pub value: String,
    pub expected: String,
}

/// A coded vocabulary spelled only as text (in the store, the audit log,
/// policies and the CLI; on the wire as a string field).
macro_rules! text_codes {
    (
        $(#[$meta:meta])*
        $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every code, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The code's one spelling, e.g. `child_protection_plan`.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// Every spelling, joined with ", ", for "expected one of".
            pub fn expected() -> String {
                [$($code),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;
            fn from_str(s: &str) -> Result<Self, UnknownCode> {
                match s.trim() {
                    $($code => Ok($name::$variant),)+
                    other => Err(UnknownCode {
                        kind: $kind,
                        value: other.to_string(),
                        expected: Self::expected(),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A coded vocabulary that is also a protobuf enum: the text spelling of
/// [`text_codes!`] and the wire mapping (`_UNSPECIFIED` is never a code).
macro_rules! codes {
    (
        $(#[$meta:meta])*
        $name:ident ($kind:literal) => $wire:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),+ $(,)?
        }
    ) => {
        text_codes! {
            $(#[$meta])*
            $name ($kind) {
                $( $(#[$vmeta])* $variant = $code ),+
            }
        }

        impl $name {
            /// The matching wire enum value.
            pub fn to_wire(self) -> pb::$wire {
                match self { $($name::$variant => pb::$wire::$variant),+ }
            }

            /// From the wire; `None` for `_UNSPECIFIED` and for numbers this
            /// build does not know.
            pub fn from_wire(value: i32) -> Option<Self> {
                match pb::$wire::try_from(value).ok()? {
                    $(pb::$wire::$variant => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// What the organisation's involvement with the person is.
    RelationshipType ("relationship type") => RelationshipType {
        ChildProtectionPlan = "child_protection_plan",
        LookedAfterChild = "looked_after_child",
        ChildInNeed = "child_in_need",
        EarlyHelp = "early_help",
        YouthJustice = "youth_justice",
        AdultSocialCare = "adult_social_care",
        S42SafeguardingEnquiry = "s42_safeguarding_enquiry",
        MentalHealth = "mental_health",
        HousingSupport = "housing_support",
        VulnerabilityMarker = "vulnerability_marker",
        HomeFireSafety = "home_fire_safety",
    }
}

impl RelationshipType {
    /// A phrase for people, e.g. "child protection plan".
    pub fn describe(self) -> String {
        match self {
            RelationshipType::S42SafeguardingEnquiry => "s42 safeguarding enquiry".to_string(),
            other => other.as_str().replace('_', " "),
        }
    }
}

codes! {
    /// Why a professional is asking.
    Purpose ("purpose") => Purpose {
        DirectCare = "direct_care",
        Safeguarding = "safeguarding",
        Emergency = "emergency",
        CarePlanning = "care_planning",
        PublicProtection = "public_protection",
    }
}

codes! {
    /// How carefully a record must be shared.
    Sensitivity ("sensitivity") => Sensitivity {
        Normal = "normal",
        /// Shared at summary level at most.
        Restricted = "restricted",
        /// Never shared through Kith.
        Sealed = "sealed",
    }
}

codes! {
    /// Where a record may be held.
    Residency ("residency") => Residency {
        Uk = "uk",
        England = "england",
        Wales = "wales",
        Scotland = "scotland",
        NorthernIreland = "northern_ireland",
        /// Detail stays at the custodian; the hub holds index and summary.
        SourceOnly = "source_only",
    }
}

codes! {
    /// UK GDPR Article 6 lawful basis.
    Article6Basis ("article 6 basis") => Article6Basis {
        Consent = "consent",
        Contract = "contract",
        LegalObligation = "legal_obligation",
        VitalInterests = "vital_interests",
        PublicTask = "public_task",
        LegitimateInterests = "legitimate_interests",
    }
}

codes! {
    /// UK GDPR Article 9 condition for special category data.
    Article9Condition ("article 9 condition") => Article9Condition {
        ExplicitConsent = "explicit_consent",
        EmploymentSocialSecurity = "employment_social_security",
        VitalInterests = "vital_interests",
        SubstantialPublicInterest = "substantial_public_interest",
        HealthOrSocialCare = "health_or_social_care",
        PublicHealth = "public_health",
    }
}

codes! {
    /// Why a custodian withdrew a record.
    WithdrawReason ("withdraw reason") => WithdrawReason {
        EnteredInError = "entered_in_error",
        NoLongerShared = "no_longer_shared",
    }
}

codes! {
    /// What a sharing directive says (see [`crate::directive`]).
    DirectiveKind ("directive kind") => DirectiveKind {
        /// The person agreed to sharing (permit).
        Consent = "consent",
        /// The person objected to sharing (deny).
        Objection = "objection",
        /// A decision made for a person who lacks capacity (permit).
        BestInterestsOverride = "best_interests_override",
        /// Sharing is required or permitted by statute (permit).
        StatutoryBasis = "statutory_basis",
    }
}

codes! {
    /// Whether a sharing directive is in force.
    DirectiveStatus ("directive status") => DirectiveStatus {
        Active = "active",
        /// Withdrawn or no longer in force.
        Inactive = "inactive",
        /// Recorded by mistake: never applies.
        EnteredInError = "entered_in_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_text_and_wire() {
        for t in RelationshipType::ALL {
            assert_eq!(t.as_str().parse::<RelationshipType>(), Ok(*t));
            assert_eq!(RelationshipType::from_wire(t.to_wire() as i32), Some(*t));
        }
        for p in Purpose::ALL {
            assert_eq!(Purpose::from_wire(p.to_wire() as i32), Some(*p));
        }
    }

    #[test]
    fn unspecified_and_unknown_wire_values_are_not_codes() {
        assert_eq!(Purpose::from_wire(0), None);
        assert_eq!(Purpose::from_wire(999), None);
        assert_eq!(Residency::from_wire(-1), None);
    }

    #[test]
    fn unknown_text_lists_what_is_allowed() {
        let err = "gossip".parse::<Purpose>().unwrap_err();
        assert_eq!(err.value, "gossip");
        assert!(err.to_string().contains("direct_care"), "{err}");
    }
}

codes! {
    /// What a notification to an authority is about.
    NotificationKind ("notification kind") => NotificationKind {
        /// A record of a type configured for access notifications was accessed.
        Access = "access",
        /// A record was accessed under break glass.
        BreakGlass = "break_glass",
        /// A record the recipient's users were shown has been revoked.
        Revocation = "revocation",
        /// A relationship with a person the recipient subscribed for started,
        /// changed, ended or was withdrawn.
        Subscription = "subscription",
    }
}

codes! {
    /// What happened to the record a subscription notice is about.
    SubscriptionChange ("subscription change") => SubscriptionChange {
        Started = "started",
        Changed = "changed",
        Ended = "ended",
        Withdrawn = "withdrawn",
    }
}

codes! {
    /// What an auditor concluded of a break-glass access.
    ReviewOutcome ("review outcome") => BreakGlassReviewOutcome {
        /// The access was justified.
        Appropriate = "appropriate",
        /// It was not: follow up under the authority's own procedures.
        Inappropriate = "inappropriate",
    }
}

text_codes! {
    /// Why a case worker breaks glass (a string on the wire, `reason_code`).
    BreakGlassReason ("break-glass reason") {
        LifeThreatening = "life_threatening",
        ImmediateSafeguardingRisk = "immediate_safeguarding_risk",
        PublicSafety = "public_safety",
        Other = "other",
    }
}
