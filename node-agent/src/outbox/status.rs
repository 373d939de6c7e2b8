//! What `kith-agent status` shows: queue counts, the oldest pending row,
//! rejections, one record's rows.

use super::*;

impl Outbox {
    /// Counts by state and the latest delivery and error.
    pub async fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let records = self.counts(RECORDS).await?;
        let mut stats = OutboxStats {
            pending: records.pending,
            delivered: records.delivered,
            rejected: records.rejected,
            directives: self.counts(DIRECTIVES).await?,
            ..OutboxStats::default()
        };
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(delivered_at) FROM outbox WHERE state = 'delivered'")
                .fetch_one(&self.pool)
                .await?;
        stats.last_delivery_at = from_ms(last);
        if let Some(row) = sqlx::query("SELECT value, at FROM agent_state WHERE key = 'last_error'")
            .fetch_optional(&self.pool)
            .await?
        {
            stats.last_error = Some(row.try_get("value")?);
            stats.last_error_at = from_ms(Some(row.try_get("at")?));
        }
        if let Some(row) =
            sqlx::query("SELECT value, at FROM agent_state WHERE key = 'previous_error'")
                .fetch_optional(&self.pool)
                .await?
        {
            stats.previous_error = Some(row.try_get("value")?);
            stats.previous_error_at = from_ms(Some(row.try_get("at")?));
        }
        Ok(stats)
    }

    /// How many rows of `queue` stand in each state.
    async fn counts(&self, queue: Queue) -> Result<QueueCounts, OutboxError> {
        let mut counts = QueueCounts::default();
        let rows = sqlx::query(&format!(
            "SELECT state, COUNT(*) AS n FROM {} GROUP BY state",
            queue.table
        ))
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let state: String = row.try_get("state")?;
            let n = row.try_get::<i64, _>("n")? as u64;
            match state.as_str() {
                "pending" => counts.pending = n,
                "delivered" => counts.delivered = n,
                "rejected" => counts.rejected = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// The most recently refused directives, newest first, with the hub's
    /// reasons.
    pub async fn rejected_directives(
        &self,
        limit: usize,
    ) -> Result<Vec<RejectedDirective>, OutboxError> {
        let rows = sqlx::query(
            "SELECT directive_id, version, record_id, reject_reason, rejected_at \
             FROM directive_outbox WHERE state = 'rejected' \
             ORDER BY rejected_at DESC, id DESC LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(RejectedDirective {
                    directive_id: row.try_get("directive_id")?,
                    version: row.try_get::<i64, _>("version")? as u64,
                    record_id: row.try_get("record_id")?,
                    reason: row
                        .try_get::<Option<String>, _>("reject_reason")?
                        .unwrap_or_default(),
                    rejected_at: from_ms(row.try_get("rejected_at")?),
                })
            })
            .collect()
    }

    /// Records waiting for the hub, and when the oldest of them was
    /// enqueued: the metrics' outbox depth and age. Both read the
    /// `(state, id)` index only, so a scrape stays cheap however many rows
    /// were delivered.
    pub async fn backlog(&self) -> Result<(u64, Option<DateTime<Utc>>), OutboxError> {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT enqueued_at FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok((pending as u64, from_ms(oldest)))
    }

    /// Notifications stored but not yet handed to every configured sink.
    pub async fn notifications_pending(&self) -> Result<u64, OutboxError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE file_pending OR webhook_pending",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// Proves the outbox can be written now: one small row, committed
    /// (`kith-agent status`; a full disk or a read-only file fails here).
    pub async fn probe_write(&self) -> Result<(), OutboxError> {
        self.set_state("status_probe", "ok").await
    }

    /// Sets one `agent_state` row (what `status` reads of the running
    /// agent), stamped now.
    pub(super) async fn set_state(&self, key: &str, value: &str) -> Result<(), OutboxError> {
        sqlx::query(
            "INSERT INTO agent_state (key, value, at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notes how the running agent's link stands, for `kith-agent status`
    /// (another process).
    pub async fn record_link(&self, state: &crate::link::LinkState) -> Result<(), OutboxError> {
        let value = serde_json::to_string(state).unwrap_or_default();
        self.set_state("link", &value).await
    }

    /// The link as the running agent last recorded it, and when.
    pub async fn recorded_link(
        &self,
    ) -> Result<Option<(crate::link::LinkState, DateTime<Utc>)>, OutboxError> {
        let Some(row) = sqlx::query("SELECT value, at FROM agent_state WHERE key = 'link'")
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let value: String = row.try_get("value")?;
        let at = from_ms(Some(row.try_get("at")?));
        Ok(serde_json::from_str(&value).ok().zip(at))
    }

    /// The pool, for the other tables in the agent's database
    /// ([`crate::notifications`]).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The state of every row for a record id, oldest version first.
    pub async fn entries_for(&self, record_id: &str) -> Result<Vec<EntryStatus>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, record_id, version, state, outcome, reject_reason FROM outbox \
             WHERE record_id = ? ORDER BY version, id",
        )
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(entry_status).collect()
    }

    /// The most recently rejected rows, newest first, with their reasons.
    pub async fn recent_rejections(&self, limit: usize) -> Result<Vec<EntryStatus>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, record_id, version, state, outcome, reject_reason FROM outbox \
             WHERE state = 'rejected' ORDER BY rejected_at DESC, id DESC LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(entry_status).collect()
    }
}

fn entry_status(row: sqlx::sqlite::SqliteRow) -> Result<EntryStatus, OutboxError> {
    let state: String = row.try_get("state")?;
    let state = state
        .parse()
        .map_err(|e: String| OutboxError::Sql(sqlx::Error::Decode(e.into())))?;
    Ok(EntryStatus {
        id: row.try_get("id")?,
        record_id: row.try_get("record_id")?,
        version: row.try_get::<i64, _>("version")? as u64,
        state,
        outcome: row.try_get("outcome")?,
        reject_reason: row.try_get("reject_reason")?,
    })
}
