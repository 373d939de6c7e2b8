//! Subscribing, unsubscribing and listing: the subscriber's side of issue
//! #17.
//!
//! An authority involved with a person subscribes to hear when another
//! authority starts, changes, ends or withdraws a relationship with them.
//! Whether it may is the policy set's decision (action `subscribe`), asked
//! with the one fact the hub computes from its store: whether the caller
//! holds a current relationship record of its own for the person. What it
//! is then told is decided record by record in [`crate::subscription_notices`].
//! Every subscribe and unsubscribe that reaches the store is audited,
//! refused ones included; malformed requests are refused before any lookup,
//! each bad field named.

use chrono::NaiveDate;
use kith_core::subscription::{CheckedSubscribe, SubscribeRequest};
use kith_core::{ActingUser, FieldError, NhsNumber};

use crate::audit::{AuditEntry, AuditKind};
use crate::disclosure;
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};
use crate::model::Subscription;
use crate::store::{SubscribeOutcome, UnsubscribeOutcome};

/// Longest subscription id an unsubscribe may carry.
pub const MAX_SUBSCRIPTION_ID_CHARS: usize = 64;

/// A subscription stored, and its audit entry.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub subscription: Subscription,
    pub audit_index: u64,
}

impl Hub {
    /// Subscribes `caller` for a person, if the policy set permits.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        request: SubscribeRequest,
    ) -> Result<Subscribed, HubError> {
        let at = now();
        let today = at.date_naive();
        let policies = self.policies();
        let known = |c: &str| policies.is_category(c);
        let checked = request
            .check(today, self.settings.subscription_limits, Some(&known))
            .map_err(HubError::InvalidArgument)?;
        let holds = self
            .holds_relationship(caller, &checked.nhs_number, today)
            .await?;
        let requester = disclosure::requester(caller, &checked.user);
        let decision =
            policies.may_subscribe(&requester, checked.purpose.as_str(), at.timestamp(), holds);
        let entry = |outcome: &str, reason: String, id: Option<String>| {
            let mut e = subscribe_entry(caller, &checked, at);
            e.outcome = outcome.to_string();
            e.reason = reason;
            e.subscription_id = id;
            e
        };
        if !decision.allowed {
            let decided_by = decision.forbidding.join(", ");
            let reason = if decided_by.is_empty() {
                decision.reason.clone()
            } else {
                format!("{} (decided by {decided_by})", decision.reason)
            };
            self.audit.append(entry("refused", reason, None)).await?;
            return Err(HubError::PermissionDenied(decision.reason));
        }
        let subscription = Subscription {
            subscription_id: format!("sub-{:032x}", rand::random::<u128>()),
            subscriber: caller.authority.as_str().to_string(),
            nhs_number: checked.nhs_number.as_digits(),
            relationship_types: checked.relationship_types.clone(),
            categories: checked.categories.clone(),
            purpose: checked.purpose,
            created_by: checked.user.clone(),
            created_at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ends_on: checked.ends_on,
            audit_index: 0,
            ended_at: None,
            end_reason: None,
        };
        let permitted = format!(
            "{}; permitted by {}",
            decision.reason,
            decision.permitting.join(", ")
        );
        let audit = |o: &SubscribeOutcome| match o {
            SubscribeOutcome::Created => entry(
                "ok",
                permitted.clone(),
                Some(subscription.subscription_id.clone()),
            ),
            SubscribeOutcome::Duplicate { held } => entry(
                "duplicate",
                format!("the same subscription is already held: {held}"),
                Some(held.clone()),
            ),
            SubscribeOutcome::TooMany { held } => entry(
                "refused",
                format!(
                    "{held} current subscriptions for this person already; at most {}",
                    kith_core::subscription::MAX_SUBSCRIPTIONS_PER_SUBJECT
                ),
                None,
            ),
        };
        let stored = self.store.subscribe(&subscription, today, &audit).await;
        self.conditions.store_write(&stored);
        match stored? {
            (SubscribeOutcome::Created, audit_index) => Ok(Subscribed {
                subscription: Subscription {
                    audit_index,
                    ..subscription
                },
                audit_index,
            }),
            (SubscribeOutcome::Duplicate { held }, _) => {
                Err(HubError::AlreadyExists(vec![FieldError::new(
                    "nhs_number",
                    format!(
                        "you already hold subscription {held} for this person, purpose, types and categories"
                    ),
                )]))
            }
            (SubscribeOutcome::TooMany { held }, _) => {
                Err(HubError::InvalidArgument(vec![FieldError::new(
                    "nhs_number",
                    format!(
                        "you hold {held} current subscriptions for this person; at most {}: end one first",
                        kith_core::subscription::MAX_SUBSCRIPTIONS_PER_SUBJECT
                    ),
                )]))
            }
        }
    }

    /// Whether `caller` holds a current relationship record of its own for
    /// the person: active, within retention, not ended by the custodian, its
    /// period not over. The fact the `subscribe` policy is asked with.
    async fn holds_relationship(
        &self,
        caller: &Caller,
        nhs_number: &NhsNumber,
        today: NaiveDate,
    ) -> Result<bool, HubError> {
        let records = self.store.records_for_nhs_number(nhs_number, today).await?;
        Ok(records.iter().any(|s| {
            s.record.custodian == caller.authority.as_str()
                && s.ended_on.is_none_or(|e| e >= today)
                && s.record.period.end.is_none_or(|e| e >= today)
                && s.record.period.start <= today
        }))
    }

    /// Ends one of `caller`'s subscriptions. Another authority's id is
    /// refused, and audited.
    pub async fn unsubscribe(
        &self,
        caller: &Caller,
        user: ActingUser,
        subscription_id: &str,
    ) -> Result<u64, HubError> {
        let mut errors = Vec::new();
        let user = user.trimmed();
        user.check("acting_user", &mut errors);
        let id = subscription_id.trim();
        if id.is_empty() {
            errors.push(FieldError::new("subscription_id", "is required"));
        } else {
            kith_core::validate::check_identifier(
                "subscription_id",
                id,
                MAX_SUBSCRIPTION_ID_CHARS,
                &mut errors,
            );
        }
        if !errors.is_empty() {
            return Err(HubError::InvalidArgument(kith_core::error::capped(errors)));
        }
        let at = now();
        let audit = |o: UnsubscribeOutcome| {
            let mut e = AuditEntry::new(AuditKind::Unsubscribe, caller.authority.as_str(), at);
            e.user = Some(user.user_id.clone());
            e.role = Some(user.role.clone());
            e.subscription_id = Some(id.to_string());
            match o {
                UnsubscribeOutcome::Done => e.reason = "unsubscribed".into(),
                UnsubscribeOutcome::NotFound => {
                    e.outcome = "not_found".into();
                    e.reason = "no current subscription with this id".into();
                }
                UnsubscribeOutcome::NotYours => {
                    e.outcome = "refused".into();
                    e.reason = "the subscription is another authority's".into();
                }
            }
            e
        };
        let ended = self
            .store
            .end_subscription(caller.authority.as_str(), id, "unsubscribed", &audit)
            .await;
        self.conditions.store_write(&ended);
        match ended? {
            (UnsubscribeOutcome::Done, index) => Ok(index),
            (UnsubscribeOutcome::NotFound, _) => Err(HubError::NotFound(format!(
                "no current subscription {id} of {}",
                caller.authority
            ))),
            (UnsubscribeOutcome::NotYours, _) => Err(HubError::PermissionDenied(format!(
                "subscription {id} is not {}'s: an authority ends only its own subscriptions",
                caller.authority
            ))),
        }
    }

    /// `caller`'s subscriptions, newest first: current ones, or all.
    pub async fn list_subscriptions(
        &self,
        caller: &Caller,
        include_ended: bool,
    ) -> Result<Vec<Subscription>, HubError> {
        Ok(self
            .store
            .subscriptions_of(caller.authority.as_str(), include_ended, now().date_naive())
            .await?)
    }
}

fn subscribe_entry(
    caller: &Caller,
    checked: &CheckedSubscribe,
    at: chrono::DateTime<chrono::Utc>,
) -> AuditEntry {
    let mut e = AuditEntry::new(AuditKind::Subscribe, caller.authority.as_str(), at);
    e.user = Some(checked.user.user_id.clone());
    e.role = Some(checked.user.role.clone());
    e.purpose = Some(checked.purpose.as_str().to_string());
    e.subject = Some(checked.nhs_number.as_digits());
    e
}
