//! Records ended and withdrawn, and a break glass reviewed, through the
//! fake hub.

use super::*;

use super::fakes::{FakeAudit, FakeHub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_ended_and_withdrawn_and_break_glass_reviewed() {
    use kith_agent::audit::Auditor;
    use kith_agent::audit::break_glass::{self, ReviewOutcome};
    use kith_agent::lifecycle::{Change, LifecycleError, change_record};

    let dir = tempfile::tempdir().unwrap();
    let (pki, code) = pki(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let audit = FakeAudit::default();
    let (stop_hub, server) = serve(&pki, listener, |s| {
        s.add_service(RecordServiceServer::new(FakeHub::default()))
            .add_service(AuditServiceServer::new(audit.clone()))
    });
    let config = agent_config(dir.path(), &pki, &code, &[addr]);

    let on = "2026-02-28".parse().unwrap();
    assert_eq!(
        change_record(&config, "asc-1", Change::End(on))
            .await
            .unwrap(),
        41
    );
    let withdrawn = change_record(
        &config,
        "asc-1",
        Change::Withdraw(kith_core::WithdrawReason::EnteredInError),
    )
    .await
    .unwrap();
    assert_eq!(withdrawn, 42);
    let err = change_record(&config, "asc-404", Change::End(on))
        .await
        .unwrap_err();
    assert!(matches!(err, LifecycleError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("the hub holds no active record asc-404 of E08000003"),
        "{err}"
    );
    let err = change_record(
        &config,
        "asc-1",
        Change::Withdraw(kith_core::WithdrawReason::NoLongerShared),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, LifecycleError::InvalidArgument { .. }),
        "{err}"
    );

    // Break glass: listed, reviewed (the review reaches the hub whole), then
    // no longer awaiting review.
    let auditor = Auditor::new("dpo", "auditor");
    let waiting = break_glass::list(&config, auditor.clone(), false)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (
            waiting[0].query_id.as_str(),
            waiting[0].reason_code.as_str()
        ),
        ("q-7", "life_threatening")
    );
    let index = break_glass::review(
        &config,
        auditor.clone(),
        "q-7",
        ReviewOutcome::Inappropriate,
        " no emergency found ",
    )
    .await
    .unwrap();
    assert_eq!(index, 43);
    let review = audit.reviews.lock().unwrap()[0].clone();
    assert_eq!(
        review.outcome,
        pb::BreakGlassReviewOutcome::Inappropriate as i32
    );
    assert_eq!(review.note, "no emergency found");
    assert_eq!(review.acting_user.unwrap().user_id, "dpo");
    assert!(
        break_glass::list(&config, auditor.clone(), false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        break_glass::list(&config, auditor.clone(), true)
            .await
            .unwrap()[0]
            .reviewed
    );
    let err = break_glass::review(
        &config,
        auditor.clone(),
        "q-8",
        ReviewOutcome::Appropriate,
        "fine",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    let err = break_glass::list(&config, Auditor::new("sw", "social_worker"), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::PermissionDenied));

    let _ = stop_hub.send(());
    let _ = server.await;
}
