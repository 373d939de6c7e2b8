//! Marking rows delivered or rejected as the hub answers (never deleting
//! them), and the publisher's last attempt.

use super::*;

impl Outbox {
    /// Marks record rows delivered with the hub's outcome.
    pub async fn mark_delivered(
        &self,
        ids: &[OutboxId],
        outcome: DeliveryOutcome,
    ) -> Result<(), OutboxError> {
        self.mark_delivered_in(RECORDS, ids, outcome).await
    }

    /// Marks a record row permanently refused, keeping the reason. It is not
    /// retried.
    pub async fn mark_rejected(&self, id: OutboxId, reason: &str) -> Result<(), OutboxError> {
        self.mark_rejected_in(RECORDS, id, reason).await
    }

    /// Marks rows of `queue` delivered with the hub's outcome.
    pub async fn mark_delivered_in(
        &self,
        queue: Queue,
        ids: &[OutboxId],
        outcome: DeliveryOutcome,
    ) -> Result<(), OutboxError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in ids.chunks(UPDATE_CHUNK) {
            let mut update = QueryBuilder::<Sqlite>::new(format!(
                "UPDATE {} SET state = 'delivered', outcome = ",
                queue.table
            ));
            update.push_bind(outcome.as_str());
            update.push(", delivered_at = ");
            update.push_bind(now);
            update.push(" WHERE state = 'pending' AND id IN (");
            let mut list = update.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            list.push_unseparated(")");
            update.build().execute(&mut *tx).await?;
        }
        clear_attempt_error(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a row of `queue` permanently refused, keeping the reason.
    pub async fn mark_rejected_in(
        &self,
        queue: Queue,
        id: OutboxId,
        reason: &str,
    ) -> Result<(), OutboxError> {
        sqlx::query(&format!(
            "UPDATE {} SET state = 'rejected', reject_reason = ?, rejected_at = ? \
             WHERE id = ? AND state = 'pending'",
            queue.table
        ))
        .bind(reason)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remembers the latest failed attempt to reach the hub, for `status`.
    pub async fn record_attempt_error(&self, message: &str) -> Result<(), OutboxError> {
        self.set_state("last_error", message).await
    }

    /// Notes that the hub answered a publish: the current error, if any,
    /// becomes the previous error. ([`Outbox::mark_delivered`] does this
    /// too.)
    pub async fn record_attempt_success(&self) -> Result<(), OutboxError> {
        // Most calls find nothing to clear; they need not write (and sync).
        let current: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM agent_state WHERE key = 'last_error'")
                .fetch_optional(&self.pool)
                .await?;
        if current.is_none() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        clear_attempt_error(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Moves the current error, if there is one, to `previous_error`.
async fn clear_attempt_error(tx: &mut sqlx::Transaction<'_, Sqlite>) -> Result<(), sqlx::Error> {
    // The WHERE clause also settles SQLite's INSERT ... SELECT ... ON CONFLICT
    // parsing ambiguity.
    sqlx::query(
        "INSERT INTO agent_state (key, value, at) \
         SELECT 'previous_error', value, at FROM agent_state WHERE key = 'last_error' \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM agent_state WHERE key = 'last_error'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}
