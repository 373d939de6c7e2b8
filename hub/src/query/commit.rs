//! Stage 5, commit: the query's audit entry, naming every decision as
//! finally made (hidden ones included) with the policy ids, the policy-set
//! fingerprint, every subject link and the break-glass flag; each other
//! custodian's own share of it (`AuditEntry::scoped_for_audit`); the
//! access notices owed to custodians; and a claimed break glass, opened for
//! review. All in one durable commit, before anything is returned: a
//! query is audited once or not at all, and an answer that fails is never
//! half-recorded (an agent that retries at another hub makes one entry
//! there, not a second one here).

use kith_policy::Level;

use super::Asking;
use super::fetch::{Fetched, Shown};
use super::find::Found;
use crate::audit::{AuditEntry, AuditKind, AuditedRecord, BreakGlassFlag};
use crate::break_glass::{BreakGlassAccess, rfc3339};
use crate::error::HubError;
use crate::hub::Hub;
use crate::notify::{Notification, NotificationKind};
use crate::store::AuditEffects;

/// Where the query's own entry stands among the entries committed: first,
/// before the custodians' shares. Notices and the break-glass access point
/// at it.
const QUERY_ENTRY: u64 = 0;

impl Hub {
    pub(super) async fn commit(
        &self,
        asking: &Asking<'_>,
        found: &Found,
        fetched: &Fetched<'_>,
        query_id: &str,
    ) -> Result<u64, HubError> {
        let (caller, query) = (asking.caller, asking.query);
        let mut entry = AuditEntry::new(AuditKind::Query, caller.authority.as_str(), asking.at);
        entry.user = Some(query.user.user_id.clone());
        entry.role = Some(query.user.role.clone());
        entry.purpose = Some(query.purpose.as_str().to_string());
        entry.subject = Some(found.subject.clone());
        entry.query_id = Some(query_id.to_string());
        entry.records = fetched.shown.iter().map(audited).collect();
        entry.matches = found.records.matches.clone();
        entry.reason = format!("policy set {}", asking.policies.fingerprint());
        entry.break_glass = found.break_glass.clone();
        let notifications =
            self.access_notices(asking, query_id, &fetched.shown, found.break_glass.as_ref());
        let break_glass = match (&query.break_glass, &found.break_glass) {
            (Some(claim), Some(flag)) => vec![BreakGlassAccess {
                query_id: query_id.to_string(),
                audit_index: QUERY_ENTRY,
                authority: caller.authority.to_string(),
                user: query.user.clone(),
                subject: found.subject.clone(),
                claim: claim.clone(),
                occurred_at: rfc3339(asking.at),
                expires_at: flag.until.clone(),
                review: None,
            }],
            _ => Vec::new(),
        };
        let entries = entry.scoped_for_audit();
        self.audit
            .append_with(
                entries,
                AuditEffects {
                    notifications,
                    break_glass,
                },
            )
            .await
    }

    /// The notifications a query's accesses call for: to each custodian
    /// whose record of a configured type was reached, and to every
    /// custodian reached under break glass. A custodian's own staff looking
    /// at its own record is not news to it; a record hidden outright was
    /// not accessed.
    fn access_notices(
        &self,
        asking: &Asking<'_>,
        query_id: &str,
        shown: &[Shown<'_>],
        break_glass: Option<&BreakGlassFlag>,
    ) -> Vec<Notification> {
        let (caller, query) = (asking.caller, asking.query);
        let kind = if break_glass.is_some() {
            NotificationKind::BreakGlass
        } else {
            NotificationKind::Access
        };
        shown
            .iter()
            .filter(|s| {
                s.level != Level::Hidden
                    && s.stored.record.custodian != caller.authority.as_str()
                    && (break_glass.is_some()
                        || self
                            .settings
                            .access_notification_types
                            .contains(&s.stored.record.relationship_type))
            })
            .map(|s| {
                let r = &s.stored.record;
                let mut n = Notification::new(
                    kind,
                    &r.custodian,
                    &r.custodian,
                    &r.record_id,
                    Some(r.relationship_type),
                    QUERY_ENTRY,
                );
                n.accessor_authority = caller.authority.to_string();
                n.accessor_authority_name = caller.member.name.clone();
                n.accessor_user_id = query.user.user_id.clone();
                n.accessor_display_name = query.user.display_name.clone();
                n.accessor_role = query.user.role.clone();
                n.accessor_team = query.user.team.clone();
                n.purpose = Some(query.purpose);
                n.level = Some(s.level);
                n.query_id = query_id.to_string();
                if let Some(b) = break_glass {
                    n.reason = format!("break glass ({}): {}", b.reason_code, b.justification);
                }
                n
            })
            .collect()
    }
}

/// A record's decision as the audit entry names it: the level, and both
/// what permitted it and what forbade more.
fn audited(s: &Shown<'_>) -> AuditedRecord {
    let r = &s.stored.record;
    AuditedRecord {
        custodian: r.custodian.clone(),
        record_id: r.record_id.clone(),
        version: r.version,
        decision: s.level.as_str().to_string(),
        decided_by: s.permitting.iter().chain(&s.forbidding).cloned().collect(),
        reason: s.reason.clone(),
    }
}
