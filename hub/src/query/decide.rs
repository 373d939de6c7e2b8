//! Stage 3, decide: one policy decision per record, from the policy set
//! alone. Linked records and possible matches go through the same
//! function; a possible match is capped at summary until the case worker
//! confirms it. One `Decider` per query: the requester's side is built
//! once. Each record's directives are resolved for this requester and
//! purpose; the policy set decides what they mean.

use chrono::NaiveDate;
use kith_core::Purpose;
use kith_core::directive::{Recipient, resolve};
use kith_policy::{Decider, Decision, Level};

use super::Asking;
use super::find::Found;
use crate::directory::Directory;
use crate::disclosure;
use crate::hub::Hub;
use crate::store::StoredRecord;
use crate::subject::Candidate;

/// How a record was reached.
#[derive(Debug, Clone, Copy)]
pub(super) enum Linkage<'f> {
    /// Linked to the subject: decided at whatever level policy allows.
    Linked,
    /// A possible match: summary at most until confirmed.
    Possible(&'f Candidate),
}

/// One record and its decision.
pub(super) struct Decided<'f> {
    pub stored: &'f StoredRecord,
    pub linkage: Linkage<'f>,
    pub decision: Decision,
}

impl Hub {
    pub(super) fn decide<'f>(&self, asking: &Asking<'_>, found: &'f Found) -> Vec<Decided<'f>> {
        let decider = asking.policies.decider(
            asking.requester,
            asking.query.purpose.as_str(),
            asking.at.timestamp(),
            found.break_glass.is_some(),
        );
        let recipient = Recipient {
            authority: asking.caller.authority.as_str(),
            kind: &asking.caller.member.kind,
        };
        let on = Deciding {
            decider: &decider,
            directory: &self.directory,
            purpose: asking.query.purpose,
            recipient,
            today: asking.at.date_naive(),
        };
        let linked = found.records.linked.iter().map(|s| (s, Linkage::Linked));
        let possible = (found.records.possible.iter()).map(|(s, c)| (s, Linkage::Possible(c)));
        linked
            .chain(possible)
            .map(|(stored, linkage)| on.decide(stored, linkage))
            .collect()
    }
}

/// What one query's decisions share.
struct Deciding<'q> {
    decider: &'q Decider<'q>,
    directory: &'q Directory,
    purpose: Purpose,
    recipient: Recipient<'q>,
    today: NaiveDate,
}

impl Deciding<'_> {
    /// One record's decision; `linkage` is the possible-match cap.
    fn decide<'f>(&self, stored: &'f StoredRecord, linkage: Linkage<'f>) -> Decided<'f> {
        let directives = resolve(&stored.directives, self.purpose, self.recipient, self.today);
        let mut decision = self.decider.decide(&disclosure::facts(
            self.directory,
            &stored.record,
            &directives,
        ));
        if let Linkage::Possible(candidate) = linkage {
            decision.level = decision.level.min(Level::Summary);
            decision.reason = format!(
                "possible match (score {:.2}, rules {}): summary at most until confirmed; {}",
                candidate.score.total, candidate.score.rules_version, decision.reason
            );
        }
        Decided {
            stored,
            linkage,
            decision,
        }
    }
}
