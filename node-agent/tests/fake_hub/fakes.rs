//! The fake hub's services: records (holding one record), audit (one
//! break glass to review) and the agent link (sending notifications).

use super::*;

#[derive(Default, Clone)]
pub(crate) struct FakeHub {
    pub(crate) calls: Arc<AtomicUsize>,
    /// Record ids the hub holds.
    pub(crate) known: Arc<Mutex<HashSet<String>>>,
}

#[tonic::async_trait]
impl RecordService for FakeHub {
    async fn publish_records(
        &self,
        request: Request<pb::PublishRecordsRequest>,
    ) -> Result<Response<pb::PublishRecordsResponse>, Status> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Status::unavailable("warming up"));
        }
        let results = request
            .into_inner()
            .records
            .into_iter()
            .map(|r| {
                let (outcome, errors) = if r.record_id.starts_with("bad") {
                    (
                        pb::PublishOutcome::Rejected,
                        vec![pb::FieldError {
                            field: "service".into(),
                            reason: "not allowed here".into(),
                        }],
                    )
                } else if r.record_id.starts_with("old") {
                    self.known.lock().unwrap().insert(r.record_id.clone());
                    (pb::PublishOutcome::Stale, vec![])
                } else {
                    self.known.lock().unwrap().insert(r.record_id.clone());
                    (pb::PublishOutcome::Accepted, vec![])
                };
                pb::PublishResult {
                    record_id: r.record_id,
                    version: r.version,
                    outcome: outcome as i32,
                    errors,
                    audit_index: 1,
                }
            })
            .collect();
        Ok(Response::new(pb::PublishRecordsResponse { results }))
    }

    /// Holds one record, asc-1 of this authority, and checks the date.
    async fn end_record(
        &self,
        request: Request<pb::EndRecordRequest>,
    ) -> Result<Response<pb::EndRecordResponse>, Status> {
        let r = request.into_inner();
        holds(r.record.as_ref())?;
        if r.end.parse::<chrono::NaiveDate>().is_err() {
            return Err(Status::invalid_argument(format!(
                "end: {:?} is not a date",
                r.end
            )));
        }
        Ok(Response::new(pb::EndRecordResponse { audit_index: 41 }))
    }

    async fn withdraw_record(
        &self,
        request: Request<pb::WithdrawRecordRequest>,
    ) -> Result<Response<pb::WithdrawRecordResponse>, Status> {
        let r = request.into_inner();
        holds(r.record.as_ref())?;
        if r.reason != pb::WithdrawReason::EnteredInError as i32 {
            return Err(Status::invalid_argument(
                "reason: this fake takes entered_in_error only",
            ));
        }
        Ok(Response::new(pb::WithdrawRecordResponse {
            audit_index: 42,
        }))
    }

    /// As the hub: a directive for a record it does not hold is refused.
    async fn publish_directives(
        &self,
        request: Request<pb::PublishDirectivesRequest>,
    ) -> Result<Response<pb::PublishDirectivesResponse>, Status> {
        let known = self.known.lock().unwrap().clone();
        let results = request
            .into_inner()
            .directives
            .into_iter()
            .map(|d| {
                let refuse = |field: &str, reason: String| {
                    (
                        pb::PublishOutcome::Rejected,
                        vec![pb::FieldError {
                            field: field.into(),
                            reason,
                        }],
                    )
                };
                let (outcome, errors) = if d.directive_id.starts_with("bad") {
                    refuse("grantor", "not accepted here".into())
                } else if !known.contains(&d.record_id) {
                    refuse(
                        "record_id",
                        format!("the hub holds no record {}", d.record_id),
                    )
                } else {
                    (pb::PublishOutcome::Accepted, vec![])
                };
                pb::DirectiveResult {
                    directive_id: d.directive_id,
                    version: d.version,
                    outcome: outcome as i32,
                    errors,
                    audit_index: 2,
                }
            })
            .collect();
        Ok(Response::new(pb::PublishDirectivesResponse { results }))
    }
}

/// The fake hub holds one record: asc-1 of this authority.
pub(crate) fn holds(record: Option<&pb::RecordRef>) -> Result<(), Status> {
    let record = record.ok_or_else(|| Status::invalid_argument("record: is required"))?;
    if record.custodian != AUTHORITY {
        return Err(Status::permission_denied("not the caller's record"));
    }
    if record.record_id != "asc-1" {
        return Err(Status::not_found(format!(
            "no active record {} of {}",
            record.record_id, record.custodian
        )));
    }
    Ok(())
}

/// Break glass to review: one access, q-7, until it is reviewed.
#[derive(Default, Clone)]
pub(crate) struct FakeAudit {
    pub(crate) reviews: Arc<Mutex<Vec<pb::ReviewBreakGlassRequest>>>,
}

#[tonic::async_trait]
impl AuditService for FakeAudit {
    async fn get_checkpoint(
        &self,
        _: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_entries(
        &self,
        _: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_inclusion_proof(
        &self,
        _: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_consistency_proof(
        &self,
        _: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn list_break_glass(
        &self,
        request: Request<pb::ListBreakGlassRequest>,
    ) -> Result<Response<pb::ListBreakGlassResponse>, Status> {
        let r = request.into_inner();
        if r.acting_user.as_ref().map(|u| u.role.as_str()) != Some("auditor") {
            return Err(Status::permission_denied("role auditor only"));
        }
        let reviewed = !self.reviews.lock().unwrap().is_empty();
        let access = pb::BreakGlassAccess {
            query_id: "q-7".into(),
            audit_index: 12,
            user: Some(pb::ActingUser {
                user_id: "para-1".into(),
                role: "paramedic".into(),
                ..Default::default()
            }),
            subject: "9434765919".into(),
            reason_code: "life_threatening".into(),
            justification: "unconscious at scene".into(),
            occurred_at: "2026-03-01T10:00:00Z".into(),
            expires_at: "2026-03-01T14:00:00Z".into(),
            reviewed,
            ..Default::default()
        };
        let accesses = if reviewed && !r.include_reviewed {
            vec![]
        } else {
            vec![access]
        };
        Ok(Response::new(pb::ListBreakGlassResponse { accesses }))
    }

    async fn review_break_glass(
        &self,
        request: Request<pb::ReviewBreakGlassRequest>,
    ) -> Result<Response<pb::ReviewBreakGlassResponse>, Status> {
        let r = request.into_inner();
        if r.query_id != "q-7" {
            return Err(Status::not_found(format!(
                "no break-glass access {}",
                r.query_id
            )));
        }
        self.reviews.lock().unwrap().push(r);
        Ok(Response::new(pb::ReviewBreakGlassResponse {
            audit_index: 43,
        }))
    }
}

/// The link: welcomes, answers heartbeats, and sends `notifications` after
/// the welcome (each twice, as a hub resending unacknowledged ones would),
/// keeping the acknowledgements it gets.
#[derive(Default, Clone)]
pub(crate) struct FakeLink {
    pub(crate) notifications: Vec<pb::Notification>,
    pub(crate) acks: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl AgentLinkService for FakeLink {
    type OpenLinkStream = ReceiverStream<Result<pb::HubMessage, Status>>;

    async fn open_link(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::OpenLinkStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let link = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                let mut replies = match m.message {
                    Some(pb::agent_message::Message::Hello(_)) => {
                        vec![pb::hub_message::Message::Welcome(pb::HubWelcome {
                            authority: AUTHORITY.into(),
                            heartbeat_interval_seconds: 1,
                        })]
                    }
                    Some(pb::agent_message::Message::Heartbeat(h)) => {
                        vec![pb::hub_message::Message::Heartbeat(h)]
                    }
                    Some(pb::agent_message::Message::NotificationAck(ack)) => {
                        link.acks.lock().unwrap().push(ack.notification_id);
                        continue;
                    }
                    Some(pb::agent_message::Message::Detail(_)) | None => continue,
                };
                if matches!(replies[0], pb::hub_message::Message::Welcome(_)) {
                    for n in &link.notifications {
                        replies.push(pb::hub_message::Message::Notification(n.clone()));
                        replies.push(pb::hub_message::Message::Notification(n.clone()));
                    }
                }
                for reply in replies {
                    if tx
                        .send(Ok(pb::HubMessage {
                            message: Some(reply),
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
