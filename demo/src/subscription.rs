//! The demo's subscription step (issue #17): the trust, treating the child,
//! subscribes to hear of child protection plans; Salford City Council then
//! starts one; the trust's agent is told, at the level policy allows for
//! its emergency doctor's direct care (a summary: who, and how to reach
//! them). Kept apart from `run.rs`, which calls [`show`] once.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kith_agent::RunningAgent;
use kith_agent::notifications::{NotificationKind, NotificationStore, render_table};
use kith_agent::subscriptions::{SubscriptionLine, subscribe};

use crate::synthetic::Person;

/// Drops one record file into `agent`'s drop folder and waits until it is
/// delivered.
async fn publish(agent: &RunningAgent, name: &str, record: serde_json::Value) -> Result<()> {
    let drop_dir = &agent.config().drop_dir;
    let temp = drop_dir.join(format!(".{name}.partial"));
    std::fs::write(&temp, format!("{record}\n"))?;
    std::fs::rename(&temp, drop_dir.join(name))?;
    let taken = drop_dir.join("done").join(name);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !taken.exists() {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the agent of {} did not take {name} within 30 s",
                agent.config().authority
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent
        .wait_until_drained(Duration::from_secs(30))
        .await
        .with_context(|| format!("waiting for {} to deliver {name}", agent.config().authority))
}

fn record(
    custodian: &str,
    id: &str,
    child: &Person,
    kind: &str,
    service: &str,
    worker: (&str, &str),
) -> serde_json::Value {
    serde_json::json!({
        "record_id": id, "version": 1, "custodian": custodian,
        "subject": {"nhs_number": child.nhs_number.as_digits()},
        "relationship_type": kind, "sensitivity": "normal", "service": service,
        "period": {"start": chrono::Utc::now().date_naive().to_string()},
        "key_worker": {"name": worker.0, "phone": worker.1},
        "lawful_basis": {"article6": "public_task", "article9": "health_or_social_care"},
        "permitted_purposes": ["direct_care", "safeguarding", "emergency"],
        "residency": "england",
        "provenance": {"source_system": "demo"}
    })
}

/// The step: `agents` are Manchester, Salford and the trust, in that order.
pub async fn show(dir: &Path, agents: &[RunningAgent], child: &Person) -> Result<()> {
    let (salford, trust) = (&agents[1], &agents[2]);
    // The trust treats the child (its own current record), so the policy
    // lets it subscribe.
    publish(
        trust,
        "ed-attendance.jsonl",
        record(
            "R0A",
            "r0a-camhs-demo",
            child,
            "mental_health",
            "CAMHS",
            ("Dr Aisha Rahman", "0161 276 1234"),
        ),
    )
    .await?;
    let line = SubscriptionLine {
        nhs_number: child.nhs_number.as_digits(),
        relationship_types: vec!["child_protection_plan".into()],
        categories: vec![],
        purpose: "direct_care".into(),
        ends_on: None,
        user_id: "a.rahman".into(),
        role: "ed_clinician".into(),
        team: "Emergency Department".into(),
    };
    let s = subscribe(trust.config(), &line.request()).await?;
    println!(
        "The trust subscribes to hear of child protection plans for the child (until {}):\n  kith-agent --config {}/agents/R0A/agent.toml subscribe --nhs-number {} --type child_protection_plan --purpose direct_care --as a.rahman --role ed_clinician\n  subscribed {}\n",
        s.ends_on,
        dir.display(),
        child.nhs_number.as_digits(),
        s.subscription_id
    );

    publish(
        salford,
        "new-plan.jsonl",
        record(
            "E08000006",
            "scc-cpp-demo",
            child,
            "child_protection_plan",
            "Children's Services",
            ("Priya Shah", "0161 793 2000"),
        ),
    )
    .await?;
    println!("Salford City Council starts a child protection plan for the child (scc-cpp-demo)\n");

    let config = trust.config();
    let outbox = kith_agent::Outbox::open(&config.outbox_path()).await?;
    let store = NotificationStore::new(&outbox);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let told = loop {
        let told = store.list(Some(NotificationKind::Subscription), 10).await?;
        if !told.is_empty() || tokio::time::Instant::now() > deadline {
            break told;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    outbox.close().await;
    if told.is_empty() {
        bail!("the trust's agent was not told of the new plan within 10 s");
    }
    println!("What the trust's agent was told (kind subscription, summary level for direct care):");
    println!(
        "  kith-agent --config {}/agents/R0A/agent.toml notifications --kind subscription",
        dir.display()
    );
    for line in render_table(&told).lines() {
        println!("    {line}");
    }
    println!("  {}\n", told[0].message);
    Ok(())
}
