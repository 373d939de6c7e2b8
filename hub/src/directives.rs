//! Publishing sharing directives: the custodian's side.
//!
//! Like records, a batch is checked directive by directive and stored in
//! one transaction with one audit entry naming every directive and its
//! outcome. A directive may govern only a record its publisher holds and
//! has published; anything else is refused with its reason. Once stored, a
//! directive is read by the very next query (it is in the same store the
//! query reads). When a new objection reaches records that other
//! authorities' users were already shown, those authorities are sent a
//! revocation notice ([`crate::notify`]).

use kith_core::{Directive, DirectiveKind, DirectiveStatus, FieldError};

use crate::audit::{AuditEntry, AuditKind, AuditedRecord, key_part};
use crate::error::HubError;
use crate::hub::{Caller, Hub, now};
use crate::notify::{Notification, NotificationKind};
use crate::publish::{MAX_BATCH, PublishOutcome};
use crate::store::{DirectiveOutcome, RecordKey};

/// One directive of a publish call, as it came off the wire.
#[derive(Debug, Clone)]
pub struct DirectiveCandidate {
    pub custodian: String,
    pub directive_id: String,
    pub version: u64,
    pub parsed: Result<Directive, Vec<FieldError>>,
}

#[derive(Debug, Clone)]
pub struct DirectiveResult {
    pub directive_id: String,
    pub version: u64,
    pub outcome: PublishOutcome,
    pub errors: Vec<FieldError>,
    pub audit_index: u64,
}

fn refusal(caller: &Caller, c: &DirectiveCandidate) -> Option<(PublishOutcome, Vec<FieldError>)> {
    if c.custodian != caller.authority.as_str() {
        return Some((
            PublishOutcome::PermissionDenied,
            vec![FieldError::new(
                "custodian",
                format!(
                    "{} may publish directives only for its own records, not {}'s",
                    caller.authority,
                    kith_core::error::quote(&c.custodian)
                ),
            )],
        ));
    }
    c.parsed
        .as_ref()
        .err()
        .map(|errors| (PublishOutcome::Rejected, errors.clone()))
}

fn outcome_of(d: &Directive, stored: &DirectiveOutcome) -> (PublishOutcome, Vec<FieldError>) {
    match stored {
        DirectiveOutcome::Accepted => (PublishOutcome::Accepted, vec![]),
        DirectiveOutcome::Unchanged => (PublishOutcome::Unchanged, vec![]),
        DirectiveOutcome::Stale { held } => (
            PublishOutcome::Stale,
            vec![FieldError::new(
                "version",
                format!("the hub holds version {held}, newer than {}", d.version),
            )],
        ),
        DirectiveOutcome::Conflict => (
            PublishOutcome::Rejected,
            vec![FieldError::new(
                "version",
                format!(
                    "version {} is already published with different content; publish a new version",
                    d.version
                ),
            )],
        ),
        DirectiveOutcome::UnknownRecord => (
            PublishOutcome::Rejected,
            vec![FieldError::new(
                "record_id",
                format!(
                    "{} has published no record {:?}; publish the record before its directives",
                    d.custodian, d.record_id
                ),
            )],
        ),
        DirectiveOutcome::OtherRecord { held_for } => (
            PublishOutcome::Rejected,
            vec![FieldError::new(
                "record_id",
                format!(
                    "directive {} governs record {held_for:?}; a directive cannot move to another record",
                    d.directive_id
                ),
            )],
        ),
    }
}

impl Hub {
    /// Publishes a batch of directives for `caller`.
    pub async fn publish_directives(
        &self,
        caller: &Caller,
        candidates: Vec<DirectiveCandidate>,
    ) -> Result<Vec<DirectiveResult>, HubError> {
        if candidates.len() > MAX_BATCH {
            return Err(HubError::InvalidArgument(vec![FieldError::new(
                "directives",
                format!(
                    "{} directives in one call; at most {MAX_BATCH}",
                    candidates.len()
                ),
            )]));
        }
        // Nothing to publish, nothing happened: no audit entry.
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let refusals: Vec<_> = candidates.iter().map(|c| refusal(caller, c)).collect();
        let valid: Vec<Directive> = candidates
            .iter()
            .zip(&refusals)
            .filter_map(|(c, refused)| match (&c.parsed, refused) {
                (Ok(d), None) => Some(d.clone()),
                _ => None,
            })
            .collect();
        let merge = |stored: &[DirectiveOutcome]| -> Vec<(PublishOutcome, Vec<FieldError>)> {
            let mut stored = stored.iter().zip(&valid);
            refusals
                .iter()
                .map(|refused| match refused {
                    Some(r) => r.clone(),
                    None => {
                        let (outcome, d) = stored.next().expect("one outcome per valid directive");
                        outcome_of(d, outcome)
                    }
                })
                .collect()
        };
        let at = now();
        let audit = |stored: &[DirectiveOutcome]| {
            let mut entry = AuditEntry::new(AuditKind::Directive, caller.authority.as_str(), at);
            entry.records = candidates
                .iter()
                .zip(merge(stored))
                .map(|(c, (outcome, errors))| {
                    let about = match &c.parsed {
                        Ok(d) => format!(
                            "directive {} v{} {} {}",
                            d.directive_id, d.version, d.kind, d.status
                        ),
                        Err(_) => format!("directive {} v{}", c.directive_id, c.version),
                    };
                    let reason = if errors.is_empty() {
                        about
                    } else {
                        format!("{about}: {}", kith_core::error::join(&errors))
                    };
                    AuditedRecord {
                        custodian: key_part(&c.custodian, kith_core::validate::MAX_CODE_LEN),
                        record_id: c
                            .parsed
                            .as_ref()
                            .map_or_else(|_| String::new(), |d| d.record_id.clone()),
                        version: c.version,
                        decision: outcome.as_str().to_string(),
                        decided_by: vec![],
                        reason,
                    }
                })
                .collect();
            entry
        };
        let (stored, audit_index) = self.store.publish_directives(&valid, &audit).await?;

        // New objections revoke what other authorities were shown.
        let objected: Vec<&Directive> = valid
            .iter()
            .zip(&stored)
            .filter(|(d, o)| {
                **o == DirectiveOutcome::Accepted
                    && d.kind == DirectiveKind::Objection
                    && d.status == DirectiveStatus::Active
            })
            .map(|(d, _)| d)
            .collect();
        for d in objected {
            let key = RecordKey {
                custodian: d.custodian.clone(),
                record_id: d.record_id.clone(),
            };
            let why = format!(
                "the person objected to sharing (directive {})",
                d.directive_id
            );
            self.revoke(&key, &why, audit_index).await;
        }

        Ok(candidates
            .iter()
            .zip(merge(&stored))
            .map(|(c, (outcome, errors))| DirectiveResult {
                directive_id: c.directive_id.clone(),
                version: c.version,
                outcome,
                errors,
                audit_index,
            })
            .collect())
    }

    /// Sends a revocation notice about `key` to every other authority whose
    /// users were shown it. The revoking act is already audited; a failure
    /// here is logged (each delivery is audited when acknowledged).
    pub(crate) async fn revoke(&self, key: &RecordKey, why: &str, audit_index: u64) {
        let recipients = match self.store.recipients_of(key).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, custodian = %key.custodian, record = %key.record_id, "cannot find who to tell of a revocation");
                return;
            }
        };
        let relationship_type = match self.store.record(key).await {
            Ok(Some(stored)) => Some(stored.record.relationship_type),
            _ => None,
        };
        let notices = recipients
            .iter()
            .filter(|r| **r != key.custodian)
            .map(|recipient| {
                let mut n = Notification::new(
                    NotificationKind::Revocation,
                    recipient,
                    &key.custodian,
                    &key.record_id,
                    relationship_type,
                    audit_index,
                );
                n.reason = why.to_string();
                n
            })
            .collect();
        if let Err(e) = self.notify(notices).await {
            tracing::error!(error = %e, custodian = %key.custodian, record = %key.record_id, "revocation notices not stored");
        }
    }
}
