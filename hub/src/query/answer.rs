//! Stage 6, answer: what the case worker is shown. Hidden records are
//! never sent; possible matches come back as candidates to confirm; a
//! purpose no agreement covers, or a demographic block that was cut, is
//! said in the notice.

use super::fetch::Fetched;
use super::find::Found;
use super::{Asking, Disclosed, OfferedCandidate, QueryAnswer};
use crate::hub::Hub;
use crate::query::decide::Linkage;
use crate::subject::MatchedBy;

impl Hub {
    pub(super) fn answer(
        &self,
        asking: &Asking<'_>,
        found: &Found,
        fetched: Fetched<'_>,
        query_id: String,
        audit_index: u64,
    ) -> QueryAnswer {
        let mut records = Vec::new();
        let mut candidates = Vec::new();
        for s in fetched.shown {
            let Some(view) = s.view else {
                continue;
            };
            let r = &s.stored.record;
            let disclosed = Disclosed {
                custodian: r.custodian.clone(),
                custodian_name: self.directory.name_of(&r.custodian),
                level: s.level,
                view,
                reason: s.reason,
                decided_by: s.permitting,
            };
            match s.linkage {
                Linkage::Linked => records.push(disclosed),
                Linkage::Possible(candidate) => candidates.push(OfferedCandidate {
                    candidate: candidate.clone(),
                    record: disclosed,
                }),
            }
        }
        // Nothing linked: no match (or candidates only) says nothing matched.
        let matched_by = match found.records.matched_by {
            m if records.is_empty() && m != MatchedBy::NhsNumber => MatchedBy::Nothing,
            m => m,
        };
        QueryAnswer {
            query_id,
            records,
            audit_index,
            statuses: fetched.statuses,
            notice: self.notice(asking, found.records.block_cut),
            break_glass_until: found.break_glass.as_ref().map(|b| b.until.clone()),
            candidates,
            matched_by,
        }
    }

    /// What the case worker should know beyond the records: no agreement
    /// covers the purpose for them, or the demographic block was cut.
    fn notice(&self, asking: &Asking<'_>, block_cut: bool) -> Option<String> {
        let purpose = asking.query.purpose;
        let uncovered = asking
            .policies
            .agreements_covering(asking.requester, purpose.as_str())
            .is_empty()
            .then(|| {
                format!(
                    "no sharing agreement covers purpose {purpose} for a {} like yours, so nothing can be \
                     shared with you for it; choose the purpose that fits, or contact the custodian directly",
                    asking.caller.member.kind.replace('_', " ")
                )
            });
        let cut = block_cut.then(|| {
            format!(
                "more than {} records share this date of birth or postcode, so not all were compared; \
                 give the postcode, or the NHS number if you can find it",
                crate::subject::MAX_BLOCK
            )
        });
        let parts: Vec<String> = uncovered.into_iter().chain(cut).collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}
