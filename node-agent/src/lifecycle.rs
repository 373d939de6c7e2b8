//! Changing a published record's life at the hub: `kith-agent record end`
//! and `kith-agent record withdraw`.
//!
//! Ending sets the end of the relationship's period on the hub's current
//! version (`RecordService/EndRecord`); withdrawing takes the record out of
//! sharing altogether (`RecordService/WithdrawRecord`), for example because
//! it was entered in error. Both apply only to this authority's own records
//! (the hub takes the custodian from the certificate and checks it), take
//! effect for the next query, and are audited at the hub; the answer is the
//! audit entry's index. The record id is checked here first, so a typo gets
//! a clear message without a round trip.

use chrono::NaiveDate;
use kith_core::WithdrawReason;
use kith_core::error::FieldError;
use kith_core::validate::{MAX_ID_LEN, check_identifier};
use kith_proto::v1 as pb;
use pb::record_service_client::RecordServiceClient;
use tonic::transport::Channel;

use crate::config::{AgentConfig, ConfigError};
use crate::hub_client::{CallError, HubError, call_with_failover};

/// What to do to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The relationship ended on this date.
    End(NaiveDate),
    /// Take the record out of sharing, for this reason.
    Withdraw(WithdrawReason),
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{}", kith_core::error::join(.0))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Certificate(#[from] ConfigError),
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The hub's own words are kept in `message`; the text says what it
    /// means.
    #[error(
        "the hub holds no active record {record_id} of {custodian}: never published by this authority, or already withdrawn"
    )]
    NotFound {
        record_id: String,
        custodian: String,
        message: String,
    },
    #[error(
        "the hub refused: {message} (an authority changes only its own records, and only as a federation member)"
    )]
    PermissionDenied { message: String },
    #[error("the hub refused the change: {message}")]
    InvalidArgument { message: String },
    #[error("the hub at {address} did not make the change: {code:?}: {message}")]
    Failed {
        address: String,
        code: tonic::Code,
        message: String,
    },
}

/// Checks the record id before any call.
pub fn check_record_id(record_id: &str) -> Result<(), LifecycleError> {
    let mut errors = Vec::new();
    check_identifier("record_id", record_id, MAX_ID_LEN, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LifecycleError::Invalid(errors))
    }
}

/// Makes the change at the hub, failing over between addresses on
/// transient errors; returns the audit entry's index.
pub async fn change_record(
    config: &AgentConfig,
    record_id: &str,
    change: Change,
) -> Result<u64, LifecycleError> {
    check_record_id(record_id)?;
    config.check_certificate_at(chrono::Utc::now())?;
    let record = pb::RecordRef {
        custodian: config.authority.clone(),
        record_id: record_id.to_string(),
    };
    let answer = call_with_failover(config, "record change", |channel| {
        let (record, change) = (record.clone(), change.clone());
        async move { call(channel, record, &change).await }
    })
    .await;
    match answer {
        Ok((_, index)) => Ok(index),
        Err(CallError::Hub(e)) => Err(LifecycleError::Hub(e)),
        Err(CallError::Status { address, status }) => Err(refusal(&address, &record, status)),
    }
}

async fn call(
    channel: Channel,
    record: pb::RecordRef,
    change: &Change,
) -> Result<u64, tonic::Status> {
    let mut client = RecordServiceClient::new(channel);
    Ok(match change {
        Change::End(on) => {
            client
                .end_record(pb::EndRecordRequest {
                    record: Some(record),
                    end: on.to_string(),
                })
                .await?
                .into_inner()
                .audit_index
        }
        Change::Withdraw(reason) => {
            client
                .withdraw_record(pb::WithdrawRecordRequest {
                    record: Some(record),
                    reason: reason.to_wire() as i32,
                })
                .await?
                .into_inner()
                .audit_index
        }
    })
}

fn refusal(address: &str, record: &pb::RecordRef, status: tonic::Status) -> LifecycleError {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::NotFound => LifecycleError::NotFound {
            record_id: record.record_id.clone(),
            custodian: record.custodian.clone(),
            message,
        },
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
            LifecycleError::PermissionDenied { message }
        }
        tonic::Code::InvalidArgument => LifecycleError::InvalidArgument { message },
        code => LifecycleError::Failed {
            address: address.to_string(),
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_record_id_is_refused_before_any_call() {
        let err = check_record_id("asc 1001!").unwrap_err().to_string();
        assert!(err.starts_with("record_id:"), "{err}");
        assert!(check_record_id("").is_err());
        assert!(check_record_id("asc-1001").is_ok());
    }

    #[test]
    fn the_hubs_refusals_are_named() {
        let record = pb::RecordRef {
            custodian: "E08000003".into(),
            record_id: "asc-1".into(),
        };
        let err = refusal(
            "https://hub:1",
            &record,
            tonic::Status::not_found("no active record asc-1 of E08000003"),
        );
        assert!(
            err.to_string()
                .starts_with("the hub holds no active record asc-1 of E08000003"),
            "{err}"
        );
        let err = refusal(
            "h",
            &record,
            tonic::Status::permission_denied("not a member"),
        );
        assert!(err.to_string().contains("only its own records"), "{err}");
        let err = refusal(
            "h",
            &record,
            tonic::Status::invalid_argument("end: is before period.start"),
        );
        assert!(
            matches!(err, LifecycleError::InvalidArgument { .. }),
            "{err}"
        );
    }
}
