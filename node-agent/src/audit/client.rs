//! The `kith.v1.AuditService` calls, made over one mutual TLS channel as one
//! named auditor.
//!
//! A whole audit (checkpoint, entries, proofs) runs over the same hub
//! address, so every answer comes from the same view of the log; the first
//! configured address that accepts a connection is used. Entries are read in
//! pages of [`PAGE`], the most the hub returns per call, and never beyond the
//! tree size the caller asks for.

use kith_proto::v1 as pb;
use kith_tlog::Hash;
use pb::audit_service_client::AuditServiceClient;
use tonic::transport::Channel;

use super::entry::LogEntry;
use super::{AuditError, Auditor};
use crate::config::AgentConfig;
use crate::hub_client::HubConnector;

/// Entries per `GetEntries` call (the hub's maximum).
pub const PAGE: u32 = 1000;

/// The largest answer this client decodes. The hub stops a page at about
/// 2 MiB of entry bytes (always at least one entry, so a page is 2 MiB plus
/// one entry at most); tonic's default of 4 MiB would fail on a page of
/// large entries. Pages come back as long as the hub makes them: the loop
/// below pages by what it got, not by the count it asked for.
pub const MAX_DECODE_BYTES: usize = 32 * 1024 * 1024;

/// The latest checkpoint as the hub sent it, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCheckpoint {
    pub signed_note: String,
    pub tree_size: u64,
    /// The key the hub says it signs with (C2SP vkey).
    pub vkey: String,
}

/// A connection to the hub's audit service on behalf of one auditor.
pub struct AuditClient {
    address: String,
    client: AuditServiceClient<Channel>,
    auditor: Auditor,
}

impl AuditClient {
    /// Connects to the first configured hub address that answers.
    pub async fn connect(config: &AgentConfig, auditor: Auditor) -> Result<Self, AuditError> {
        auditor.check()?;
        let mut hub = HubConnector::new(config, Some(config.request_timeout()))?;
        let (address, channel) = hub.channel().await?;
        Ok(Self {
            address,
            client: AuditServiceClient::new(channel).max_decoding_message_size(MAX_DECODE_BYTES),
            auditor,
        })
    }

    /// The hub address in use.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The auditor every call is made for.
    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    fn refused(&self, call: &'static str, status: tonic::Status) -> AuditError {
        status_error(&self.address, call, status)
    }

    fn malformed(&self, call: &'static str, reason: impl Into<String>) -> AuditError {
        AuditError::Malformed {
            address: self.address.clone(),
            call,
            reason: reason.into(),
        }
    }

    /// `GetCheckpoint`: the latest signed note, unchecked.
    pub async fn get_checkpoint(&mut self) -> Result<RawCheckpoint, AuditError> {
        let r = self
            .client
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .map_err(|s| self.refused("GetCheckpoint", s))?
            .into_inner();
        Ok(RawCheckpoint {
            signed_note: r.signed_note,
            tree_size: r.tree_size,
            vkey: r.vkey,
        })
    }

    /// `GetEntries`: up to `count` (at most [`PAGE`]) entries from `start`.
    pub async fn get_entries(
        &mut self,
        start: u64,
        count: u32,
    ) -> Result<Vec<LogEntry>, AuditError> {
        let request = pb::GetEntriesRequest {
            acting_user: Some(self.auditor.to_wire()),
            start,
            count: count.clamp(1, PAGE),
        };
        let r = self
            .client
            .get_entries(request)
            .await
            .map_err(|s| self.refused("GetEntries", s))?
            .into_inner();
        r.entries
            .into_iter()
            .map(|e| {
                let leaf_hash = to_hash(&e.leaf_hash).ok_or_else(|| {
                    self.malformed(
                        "GetEntries",
                        format!("entry {}: leaf hash is not 32 bytes", e.index),
                    )
                })?;
                Ok(LogEntry {
                    index: e.index,
                    leaf_hash,
                    entry: (!e.withheld).then_some(e.entry),
                })
            })
            .collect()
    }

    /// Every entry with index in `start .. end`, in order, paging through
    /// `GetEntries`; `progress(done, total)` is called after each page. Fails
    /// if the hub skips, repeats or stops short of an index.
    pub async fn entries(
        &mut self,
        start: u64,
        end: u64,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Vec<LogEntry>, AuditError> {
        let total = end.saturating_sub(start);
        let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0).min(1 << 20));
        let mut next = start;
        while next < end {
            let want = u32::try_from((end - next).min(u64::from(PAGE))).unwrap_or(PAGE);
            let page = self.get_entries(next, want).await?;
            if page.is_empty() {
                return Err(self.malformed(
                    "GetEntries",
                    format!("no entries from index {next}, though the checkpoint covers {end}"),
                ));
            }
            for e in page
                .into_iter()
                .take(usize::try_from(end - next).unwrap_or(usize::MAX))
            {
                if e.index != next {
                    return Err(self.malformed(
                        "GetEntries",
                        format!("entry {} came where entry {next} was due", e.index),
                    ));
                }
                next += 1;
                out.push(e);
            }
            progress(next - start, total);
        }
        Ok(out)
    }

    /// `GetInclusionProof` for leaf `index` in the tree of `tree_size`.
    pub async fn inclusion_proof(
        &mut self,
        index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, AuditError> {
        let r = self
            .client
            .get_inclusion_proof(pb::GetInclusionProofRequest { index, tree_size })
            .await
            .map_err(|s| self.refused("GetInclusionProof", s))?
            .into_inner();
        self.hashes("GetInclusionProof", r.hashes)
    }

    /// `GetConsistencyProof` from `from_size` to `to_size`.
    pub async fn consistency_proof(
        &mut self,
        from_size: u64,
        to_size: u64,
    ) -> Result<Vec<Hash>, AuditError> {
        let r = self
            .client
            .get_consistency_proof(pb::GetConsistencyProofRequest { from_size, to_size })
            .await
            .map_err(|s| self.refused("GetConsistencyProof", s))?
            .into_inner();
        self.hashes("GetConsistencyProof", r.hashes)
    }

    /// `ListBreakGlass`: break-glass accesses by this authority's users,
    /// awaiting review (or all, with `include_reviewed`).
    pub async fn list_break_glass(
        &mut self,
        include_reviewed: bool,
    ) -> Result<Vec<pb::BreakGlassAccess>, AuditError> {
        let request = pb::ListBreakGlassRequest {
            acting_user: Some(self.auditor.to_wire()),
            include_reviewed,
        };
        Ok(self
            .client
            .list_break_glass(request)
            .await
            .map_err(|s| self.refused("ListBreakGlass", s))?
            .into_inner()
            .accesses)
    }

    /// `ReviewBreakGlass`: marks one access reviewed; the audit index of
    /// the review.
    pub async fn review_break_glass(
        &mut self,
        query_id: &str,
        outcome: pb::BreakGlassReviewOutcome,
        note: &str,
    ) -> Result<u64, AuditError> {
        let request = pb::ReviewBreakGlassRequest {
            acting_user: Some(self.auditor.to_wire()),
            query_id: query_id.to_string(),
            outcome: outcome as i32,
            note: note.to_string(),
        };
        Ok(self
            .client
            .review_break_glass(request)
            .await
            .map_err(|s| self.refused("ReviewBreakGlass", s))?
            .into_inner()
            .audit_index)
    }

    fn hashes(&self, call: &'static str, wire: Vec<Vec<u8>>) -> Result<Vec<Hash>, AuditError> {
        wire.iter()
            .map(|h| to_hash(h).ok_or_else(|| self.malformed(call, "a proof hash is not 32 bytes")))
            .collect()
    }
}

/// The error for a failed call: the hub's refusal, or this agent's own
/// decode limit (tonic reports that as a status too, but it is not the
/// hub's doing).
fn status_error(address: &str, call: &'static str, status: tonic::Status) -> AuditError {
    if status
        .message()
        .contains("decoded message length too large")
    {
        return AuditError::TooLarge {
            address: address.to_string(),
            call,
            limit: MAX_DECODE_BYTES,
            detail: status.message().to_string(),
        };
    }
    AuditError::Refused {
        address: address.to_string(),
        call,
        code: status.code(),
        message: status.message().to_string(),
    }
}

fn to_hash(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

/// The latest checkpoint, its signature checked, and every entry it
/// covers, as `auditor` may see them.
pub async fn read_log(
    config: &AgentConfig,
    auditor: Auditor,
    vkey: Option<&std::path::Path>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(super::trust::VerifiedCheckpoint, Vec<LogEntry>), AuditError> {
    let trusted = super::trust::trusted_key(config, vkey)?;
    let mut client = AuditClient::connect(config, auditor).await?;
    let checkpoint = super::trust::fetch(&mut client, trusted.as_ref()).await?;
    let entries = client.entries(0, checkpoint.tree_size, progress).await?;
    Ok((checkpoint, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_too_large_to_decode_is_the_agents_own_limit_not_a_refusal() {
        let status = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
        );
        let err = status_error("https://hub:7443", "GetEntries", status);
        assert!(matches!(err, AuditError::TooLarge { .. }), "{err:?}");
        assert_eq!(err.code(), None, "not a code the hub answered with");
        let text = err.to_string();
        assert!(text.contains("this agent's own limit"), "{text}");
        assert!(!text.contains("refused"), "{text}");
        let refused = status_error(
            "https://hub:7443",
            "GetEntries",
            tonic::Status::permission_denied("no audit access"),
        );
        assert_eq!(refused.code(), Some(tonic::Code::PermissionDenied));
        assert!(refused.to_string().contains("refused GetEntries"));
    }
}
