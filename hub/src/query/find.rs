//! Stage 2, find: the records the query's subject reaches (see
//! [`crate::subject`]; the store leaves out what is past its retention), and
//! the break glass the query runs under: claimed now, or still open from
//! this user's earlier claim about this person.

use kith_core::query::BreakGlassClaim;

use super::Asking;
use crate::audit::BreakGlassFlag;
use crate::break_glass::rfc3339;
use crate::error::HubError;
use crate::hub::Hub;

/// What the find stage found.
pub(super) struct Found {
    pub records: crate::subject::Found,
    /// How the subject is named in the audit log and break-glass windows.
    pub subject: String,
    /// Set when the query runs under break glass.
    pub break_glass: Option<BreakGlassFlag>,
}

fn flag(claim: &BreakGlassClaim, until: String, claimed: bool) -> BreakGlassFlag {
    BreakGlassFlag {
        reason_code: claim.reason.as_str().to_string(),
        justification: claim.justification.clone(),
        until,
        claimed,
    }
}

impl Hub {
    pub(super) async fn find(&self, asking: &Asking<'_>) -> Result<Found, HubError> {
        let query = asking.query;
        let subject = query.subject.audit_key();
        // The records, and any break glass still open for this user and
        // person, looked up at once.
        let (records, open) = futures::future::join(
            self.find_subject(
                asking.caller,
                &query.subject,
                query.confirm_candidate.as_deref(),
                asking.at.date_naive(),
            ),
            async {
                match query.break_glass {
                    Some(_) => Ok(None),
                    None => {
                        self.open_break_glass(asking.caller, &query.user, &subject, asking.at)
                            .await
                    }
                }
            },
        )
        .await;
        let (records, open) = (records?, open?);
        let break_glass = match &query.break_glass {
            Some(claim) => Some(flag(
                claim,
                rfc3339(asking.at + self.settings.break_glass_window),
                true,
            )),
            None => open.map(|open| flag(&open.claim, open.expires_at, false)),
        };
        Ok(Found {
            records,
            subject,
            break_glass,
        })
    }
}
