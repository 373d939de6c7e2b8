//! Telling subscribers: the notices a publish, end or withdraw gives
//! (issue #17).
//!
//! For each record changed, the current subscriptions for its subject are
//! found with one indexed lookup per subject (`subscriptions_by_subject`),
//! kept if they ask about its type or category, and each is decided by the
//! policy set as if the subscriber's user had queried for the
//! subscription's purpose at that moment, with the record's directives
//! resolved for that subscriber (so an objection or restriction stops it).
//! Below summary, nothing is sent; otherwise the notice is cut to the level
//! decided (summary at most for a record held at source, whose detail the
//! hub does not have). The notices are stored in the same transaction as
//! the change's audit entry, which names each one (`notified`), and go out
//! over the subscriber's agent link until acknowledged, like every
//! notification.

use chrono::{DateTime, Utc};
use kith_core::SubscriptionChange;
use kith_core::audit::AuditedNotice;
use kith_core::directive::{Recipient, resolve};
use kith_policy::{Level, PolicySet, Requester};

use crate::disclosure;
use crate::error::HubError;
use crate::hub::Hub;
use crate::model::{Notification, NotificationKind, Shown, Subscription};
use crate::store::{Publishable, RecordKey, RecordStatus, StoredRecord};

impl Hub {
    /// For each record of a publish (in order), the notices it gives if it
    /// is stored as a new version.
    pub(crate) async fn publish_notices(
        &self,
        records: &[Publishable],
        at: DateTime<Utc>,
    ) -> Result<Vec<Vec<Notification>>, HubError> {
        let mut out = vec![Vec::new(); records.len()];
        let mut subjects: Vec<String> = records
            .iter()
            .filter_map(|p| p.record.subject.nhs_number.map(|n| n.as_digits()))
            .collect();
        if subjects.is_empty() {
            return Ok(out);
        }
        subjects.sort();
        subjects.dedup();
        let today = at.date_naive();
        let subscriptions = self
            .store
            .subscriptions_for_subjects(&subjects, today)
            .await?;
        if subscriptions.is_empty() {
            return Ok(out);
        }
        let policies = self.policies();
        for (i, p) in records.iter().enumerate() {
            let Some(nhs) = p.record.subject.nhs_number.map(|n| n.as_digits()) else {
                continue;
            };
            let category = policies.category_of(p.record.relationship_type.as_str());
            let wanted: Vec<&Subscription> = subscriptions
                .iter()
                .filter(|s| {
                    s.nhs_number == nhs
                        && s.subscriber != p.record.custodian
                        && s.covers(p.record.relationship_type, category)
                })
                .collect();
            if wanted.is_empty() {
                continue;
            }
            // The record as a query would see it once stored: its
            // directives (which a new version keeps) and whether it is new.
            let key = RecordKey {
                custodian: p.record.custodian.clone(),
                record_id: p.record.record_id.clone(),
            };
            let held = self.store.record(&key).await?;
            let change = match &held {
                None => SubscriptionChange::Started,
                Some(_) => SubscriptionChange::Changed,
            };
            let stored = StoredRecord {
                record: p.record.clone(),
                held_at_source: p.held_at_source,
                status: RecordStatus::Active,
                ended_on: None,
                directives: held.map(|h| h.directives).unwrap_or_default(),
            };
            out[i] = self.notices_for(&policies, &stored, change, &wanted, at);
        }
        Ok(out)
    }

    /// The notices ending or withdrawing `stored` gives.
    pub(crate) async fn change_notices(
        &self,
        stored: &StoredRecord,
        change: SubscriptionChange,
        at: DateTime<Utc>,
    ) -> Result<Vec<Notification>, HubError> {
        let Some(nhs) = stored.record.subject.nhs_number.map(|n| n.as_digits()) else {
            return Ok(Vec::new());
        };
        let subscriptions = self
            .store
            .subscriptions_for_subjects(std::slice::from_ref(&nhs), at.date_naive())
            .await?;
        let policies = self.policies();
        let category = policies.category_of(stored.record.relationship_type.as_str());
        let wanted: Vec<&Subscription> = subscriptions
            .iter()
            .filter(|s| {
                s.subscriber != stored.record.custodian
                    && s.covers(stored.record.relationship_type, category)
            })
            .collect();
        Ok(self.notices_for(&policies, stored, change, &wanted, at))
    }

    /// One notice per subscription the policy set lets see `stored` at
    /// summary or more, cut to that level.
    fn notices_for(
        &self,
        policies: &PolicySet,
        stored: &StoredRecord,
        change: SubscriptionChange,
        subscriptions: &[&Subscription],
        at: DateTime<Utc>,
    ) -> Vec<Notification> {
        let today = at.date_naive();
        let record = &stored.record;
        let custodian_name = self
            .directory
            .member(&record.custodian)
            .map_or_else(|| record.custodian.clone(), |m| m.name.clone());
        subscriptions
            .iter()
            .filter_map(|s| {
                // A subscriber no longer in the federation is told nothing.
                let member = self.directory.member(&s.subscriber)?;
                let requester = Requester {
                    authority_code: s.subscriber.clone(),
                    authority_kind: member.kind.clone(),
                    jurisdiction: member.jurisdiction.clone(),
                    user_id: s.created_by.user_id.clone(),
                    role: s.created_by.role.clone(),
                    team: s.created_by.team.clone(),
                };
                let to = Recipient {
                    authority: &s.subscriber,
                    kind: &member.kind,
                };
                let directives = resolve(&stored.directives, s.purpose, to, today);
                let decision = policies.decide(
                    &requester,
                    &disclosure::facts(&self.directory, record, &directives),
                    s.purpose.as_str(),
                    at.timestamp(),
                    false,
                );
                let mut level = decision.level;
                if stored.held_at_source {
                    level = level.min(Level::Summary);
                }
                if level < Level::Summary {
                    return None;
                }
                let mut period = record.period.clone();
                if stored.ended_on.is_some() {
                    period.end = stored.ended_on;
                }
                let mut n = Notification::new(
                    NotificationKind::Subscription,
                    &s.subscriber,
                    &record.custodian,
                    &record.record_id,
                    Some(record.relationship_type),
                    0,
                );
                n.purpose = Some(s.purpose);
                n.level = Some(level);
                n.reason = decision.permitting.join(", ");
                n.subscription_id = s.subscription_id.clone();
                n.change = Some(change);
                n.shown = Some(Shown {
                    custodian_name: custodian_name.clone(),
                    service: record.service.clone(),
                    key_worker: record.key_worker.clone(),
                    out_of_hours: record.out_of_hours.clone(),
                    period: (level == Level::Detail).then_some(period),
                });
                Some(n)
            })
            .collect()
    }
}

/// How an audit entry names the notices its act gave.
pub(crate) fn audited(notices: &[Notification]) -> Vec<AuditedNotice> {
    notices
        .iter()
        .map(|n| AuditedNotice {
            subscription_id: n.subscription_id.clone(),
            recipient: n.recipient.clone(),
            custodian: n.custodian.clone(),
            record_id: n.record_id.clone(),
            level: n.level.map(|l| l.to_string()).unwrap_or_default(),
            decided_by: if n.reason.is_empty() {
                Vec::new()
            } else {
                n.reason.split(", ").map(str::to_string).collect()
            },
        })
        .collect()
}
