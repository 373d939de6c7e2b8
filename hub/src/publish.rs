//! Publishing, ending and withdrawing records: the custodian's side.
//!
//! A batch is checked record by record (field validation, custodian, content
//! hash); what passes is stored in one transaction with one audit entry that
//! lists every record of the batch and its outcome, refused ones included.
//! A refused record never stops the rest of its batch.

use chrono::NaiveDate;
use kith_core::{FieldError, Record, WithdrawReason};

use crate::audit::{AuditEntry, AuditKind, AuditedRecord, key_part};
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};
use crate::model::Notification;
use crate::store::{ChangeOutcome, Publishable, RecordKey, StoreOutcome};
use crate::{data_location, disclosure, subscription_notices};
use kith_core::SubscriptionChange;
use kith_policy::HoldDecision;

/// Most records one publish call may carry.
pub use kith_core::validate::MAX_BATCH;

/// One record of a publish call, as it came off the wire: its claimed key,
/// and either the parsed record or why it did not parse.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub custodian: String,
    pub record_id: String,
    pub version: u64,
    pub parsed: Result<Record, Vec<FieldError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    Accepted,
    Unchanged,
    Stale,
    Rejected,
    PermissionDenied,
}

impl PublishOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PublishOutcome::Accepted => "accepted",
            PublishOutcome::Unchanged => "unchanged",
            PublishOutcome::Stale => "stale",
            PublishOutcome::Rejected => "rejected",
            PublishOutcome::PermissionDenied => "permission_denied",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PublishResult {
    pub record_id: String,
    pub version: u64,
    pub outcome: PublishOutcome,
    pub errors: Vec<FieldError>,
    pub audit_index: u64,
}

enum Checked {
    Valid(Box<Record>),
    Refused(PublishOutcome, Vec<FieldError>),
}

fn check(caller: &Caller, candidate: &Candidate) -> Checked {
    if candidate.custodian != caller.authority.as_str() {
        return Checked::Refused(
            PublishOutcome::PermissionDenied,
            vec![FieldError::new(
                "custodian",
                format!(
                    "{} may publish only its own records, not {}'s",
                    caller.authority,
                    kith_core::error::quote(&candidate.custodian)
                ),
            )],
        );
    }
    match &candidate.parsed {
        Err(errors) => Checked::Refused(PublishOutcome::Rejected, errors.clone()),
        Ok(record) => {
            let mut record = record.clone();
            let computed = record.content_hash();
            if record.provenance.content_hash.is_empty() {
                record.provenance.content_hash = computed;
            } else if record.provenance.content_hash != computed {
                return Checked::Refused(
                    PublishOutcome::Rejected,
                    vec![FieldError::new(
                        "provenance.content_hash",
                        "does not match the record's content",
                    )],
                );
            }
            Checked::Valid(Box::new(record))
        }
    }
}

impl Hub {
    /// Publishes a batch for `caller`.
    pub async fn publish(
        &self,
        caller: &Caller,
        candidates: Vec<Candidate>,
    ) -> Result<Vec<PublishResult>, HubError> {
        if candidates.len() > MAX_BATCH {
            return Err(HubError::InvalidArgument(vec![FieldError::new(
                "records",
                format!(
                    "{} records in one call; at most {MAX_BATCH}",
                    candidates.len()
                ),
            )]));
        }
        // Nothing to publish, nothing happened: no audit entry.
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let checked: Vec<Checked> = candidates.iter().map(|c| check(caller, c)).collect();
        // Data location: may the hub hold each record's detail?
        let policies = self.policies();
        let holds: Vec<Option<HoldDecision>> = checked
            .iter()
            .map(|c| match c {
                Checked::Valid(r) => Some(policies.may_hold_at_hub(
                    &disclosure::facts(&self.directory, r, &Default::default()),
                    &self.jurisdiction,
                )),
                Checked::Refused(..) => None,
            })
            .collect();
        let valid: Vec<Publishable> = checked
            .iter()
            .zip(&holds)
            .filter_map(|(c, hold)| match (c, hold) {
                (Checked::Valid(r), Some(hold)) if hold.allowed => Some(Publishable {
                    record: r.as_ref().clone(),
                    held_at_source: false,
                }),
                (Checked::Valid(r), Some(_)) => Some(Publishable {
                    record: data_location::index_only(r),
                    held_at_source: true,
                }),
                _ => None,
            })
            .collect();

        // Merge store outcomes back into request order.
        let merge = |stored: &[StoreOutcome]| -> Vec<(PublishOutcome, Vec<FieldError>)> {
            let mut stored = stored.iter();
            checked
                .iter()
                .map(|c| match c {
                    Checked::Refused(outcome, errors) => (*outcome, errors.clone()),
                    Checked::Valid(r) => match stored.next().expect("one store outcome per valid record") {
                        StoreOutcome::Accepted => (PublishOutcome::Accepted, vec![]),
                        StoreOutcome::Unchanged => (PublishOutcome::Unchanged, vec![]),
                        StoreOutcome::Stale { held } => (
                            PublishOutcome::Stale,
                            vec![FieldError::new("version", format!("the hub holds version {held}, newer than {}", r.version))],
                        ),
                        StoreOutcome::Conflict => (
                            PublishOutcome::Rejected,
                            vec![FieldError::new(
                                "version",
                                format!("version {} is already published with different content; publish a new version", r.version),
                            )],
                        ),
                    },
                })
                .collect()
        };
        let at = now();
        // Subscription notices each valid record would give once stored.
        let notices = self.publish_notices(&valid, at).await?;
        let audit = |stored: &[StoreOutcome]| {
            let mut entry = AuditEntry::new(AuditKind::Publish, caller.authority.as_str(), at);
            entry.records = candidates
                .iter()
                .zip(merge(stored))
                .zip(&holds)
                .map(|((c, (outcome, errors)), hold)| {
                    let mut reason = kith_core::error::join(&errors);
                    let decided_by = hold.as_ref().map_or_else(Vec::new, |h| {
                        if !h.allowed && outcome == PublishOutcome::Accepted {
                            reason = "detail held at source (residency); index and summary stored"
                                .into();
                        }
                        h.permitting.iter().chain(&h.forbidding).cloned().collect()
                    });
                    AuditedRecord {
                        custodian: key_part(&c.custodian, kith_core::validate::MAX_CODE_LEN),
                        record_id: key_part(&c.record_id, kith_core::validate::MAX_ID_LEN),
                        version: c.version,
                        decision: outcome.as_str().to_string(),
                        decided_by,
                        reason,
                    }
                })
                .collect();
            entry
        };
        let effects = |stored: &[StoreOutcome]| {
            let mut entry = audit(stored);
            let given: Vec<Notification> = stored
                .iter()
                .zip(&notices)
                .filter(|(o, _)| **o == StoreOutcome::Accepted)
                .flat_map(|(_, n)| n.iter().cloned())
                .collect();
            entry.notified = subscription_notices::audited(&given);
            (entry, given)
        };
        let published = self.store.publish_notifying(&valid, &effects).await;
        self.conditions.store_write(&published);
        let (stored, audit_index) = published?;
        if stored
            .iter()
            .zip(&notices)
            .any(|(o, n)| *o == StoreOutcome::Accepted && !n.is_empty())
        {
            self.notifier.wake();
        }
        let results: Vec<PublishResult> = candidates
            .iter()
            .zip(merge(&stored))
            .map(|(c, (outcome, errors))| PublishResult {
                record_id: key_part(&c.record_id, kith_core::validate::MAX_ID_LEN),
                version: c.version,
                outcome,
                errors,
                audit_index,
            })
            .collect();
        for result in &results {
            crate::metrics::published(result.outcome.as_str(), 1);
        }
        Ok(results)
    }

    fn own(&self, caller: &Caller, key: &RecordKey) -> Result<(), FieldError> {
        if key.custodian == caller.authority.as_str() {
            Ok(())
        } else {
            Err(FieldError::new(
                "record.custodian",
                format!(
                    "{} may change only its own records, not {:?}'s",
                    caller.authority, key.custodian
                ),
            ))
        }
    }

    async fn refuse_change(
        &self,
        caller: &Caller,
        kind: AuditKind,
        key: &RecordKey,
        why: FieldError,
    ) -> HubError {
        let mut entry = AuditEntry::new(kind, caller.authority.as_str(), now());
        entry.outcome = "refused".into();
        entry.reason = why.to_string();
        entry.records = vec![AuditedRecord {
            custodian: key.custodian.clone(),
            record_id: key.record_id.clone(),
            version: 0,
            decision: "permission_denied".into(),
            decided_by: vec![],
            reason: String::new(),
        }];
        if let Err(e) = self.audit.append(entry).await {
            return e;
        }
        HubError::PermissionDenied(why.reason)
    }

    fn change_entry(
        caller: &Caller,
        kind: AuditKind,
        key: &RecordKey,
        outcome: ChangeOutcome,
        detail: &str,
    ) -> AuditEntry {
        let mut entry = AuditEntry::new(kind, caller.authority.as_str(), now());
        entry.outcome = match outcome {
            ChangeOutcome::Done => "ok".into(),
            ChangeOutcome::NotFound => "not_found".into(),
        };
        entry.reason = detail.to_string();
        entry.records = vec![AuditedRecord {
            custodian: key.custodian.clone(),
            record_id: key.record_id.clone(),
            version: 0,
            decision: entry.outcome.clone(),
            decided_by: vec![],
            reason: String::new(),
        }];
        entry
    }

    /// Ends a relationship on `end`.
    pub async fn end_record(
        &self,
        caller: &Caller,
        key: RecordKey,
        end: NaiveDate,
    ) -> Result<u64, HubError> {
        if let Err(why) = self.own(caller, &key) {
            return Err(self.refuse_change(caller, AuditKind::End, &key, why).await);
        }
        let held = self.store.record(&key).await?;
        if let Some(held) = &held
            && end < held.record.period.start
        {
            return Err(HubError::InvalidArgument(vec![FieldError::new(
                "end",
                format!(
                    "{end} is before the relationship's start, {}",
                    held.record.period.start
                ),
            )]));
        }
        let at = now();
        let notices = match held {
            Some(mut h) if h.status == crate::store::RecordStatus::Active => {
                h.ended_on = Some(end);
                self.change_notices(&h, SubscriptionChange::Ended, at)
                    .await?
            }
            _ => Vec::new(),
        };
        let detail = format!("ended on {end}");
        let effects = |o| {
            let mut entry = Self::change_entry(caller, AuditKind::End, &key, o, &detail);
            let given = if o == ChangeOutcome::Done {
                notices.clone()
            } else {
                Vec::new()
            };
            entry.notified = subscription_notices::audited(&given);
            (entry, given)
        };
        match self.store.end_record_notifying(&key, end, &effects).await? {
            (ChangeOutcome::Done, index) => {
                if !notices.is_empty() {
                    self.notifier.wake();
                }
                Ok(index)
            }
            (ChangeOutcome::NotFound, _) => Err(not_found(&key)),
        }
    }

    /// Withdraws a record from sharing.
    pub async fn withdraw_record(
        &self,
        caller: &Caller,
        key: RecordKey,
        reason: WithdrawReason,
    ) -> Result<u64, HubError> {
        if let Err(why) = self.own(caller, &key) {
            return Err(self
                .refuse_change(caller, AuditKind::Withdraw, &key, why)
                .await);
        }
        let at = now();
        let notices = match self.store.record(&key).await? {
            Some(h) if h.status == crate::store::RecordStatus::Active => {
                self.change_notices(&h, SubscriptionChange::Withdrawn, at)
                    .await?
            }
            _ => Vec::new(),
        };
        let detail = format!("withdrawn: {reason}");
        let effects = |o| {
            let mut entry = Self::change_entry(caller, AuditKind::Withdraw, &key, o, &detail);
            let given = if o == ChangeOutcome::Done {
                notices.clone()
            } else {
                Vec::new()
            };
            entry.notified = subscription_notices::audited(&given);
            (entry, given)
        };
        match self
            .store
            .withdraw_record_notifying(&key, reason, &effects)
            .await?
        {
            (ChangeOutcome::Done, index) => {
                if !notices.is_empty() {
                    self.notifier.wake();
                }
                // Whoever was shown it must stop relying on it.
                self.revoke(
                    &key,
                    &format!("withdrawn by its custodian: {reason}"),
                    index,
                )
                .await;
                Ok(index)
            }
            (ChangeOutcome::NotFound, _) => Err(not_found(&key)),
        }
    }
}

fn not_found(key: &RecordKey) -> HubError {
    HubError::NotFound(format!(
        "no active record {} of {}",
        key.record_id, key.custodian
    ))
}
