//! Taking what is pending, oldest first (directives held behind the
//! records queued before them), and reading one record and its directives
//! for a detail request.

use super::*;

impl Outbox {
    /// Up to `limit` pending records, oldest first.
    ///
    /// A stored row that no longer reads as a record (it cannot happen short
    /// of hand-editing the file) is marked rejected rather than blocking the
    /// queue.
    pub async fn next_batch(&self, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let rows = self.pending::<Record>(limit, "").await?;
        Ok(rows
            .into_iter()
            .map(|(id, record)| OutboxEntry { id, record })
            .collect())
    }

    /// Up to `limit` pending directives, oldest first, that may go now:
    /// every record queued before each has left `pending`, and so has every
    /// queued version of the record it governs (the hub refuses a directive
    /// for a record it does not hold).
    pub async fn next_directive_batch(
        &self,
        limit: usize,
    ) -> Result<Vec<DirectiveEntry>, OutboxError> {
        let ready = "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.state = 'pending' \
                     AND (o.id <= q.after_record OR o.record_id = q.record_id))";
        let rows = self.pending::<Directive>(limit, ready).await?;
        Ok(rows
            .into_iter()
            .map(|(id, directive)| DirectiveEntry { id, directive })
            .collect())
    }

    /// Pending items of one kind, oldest first, that meet `condition` (SQL
    /// over the queue's row `q`; our own constant).
    async fn pending<T: Queued>(
        &self,
        limit: usize,
        condition: &str,
    ) -> Result<Vec<(OutboxId, T)>, OutboxError> {
        let queue = T::QUEUE;
        let rows = sqlx::query(&format!(
            "SELECT q.id AS id, q.{} AS json FROM {} q WHERE q.state = 'pending' {condition} \
             ORDER BY q.id LIMIT ?",
            queue.json_column, queue.table
        ))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let json: String = row.try_get("json")?;
            match serde_json::from_str::<T>(&json) {
                Ok(item) => batch.push((id, item)),
                Err(e) => {
                    tracing::error!(outbox_id = id, queue = queue.table, error = %e,
                        "stored item is unreadable; marking it rejected");
                    self.mark_rejected_in(
                        queue,
                        id,
                        &format!("stored {} is unreadable: {e}", queue.noun),
                    )
                    .await?;
                }
            }
        }
        Ok(batch)
    }

    /// The directives this agent has queued for `record_id` that stand as
    /// the custodian's word: of each directive, its highest version not
    /// refused by the hub.
    pub async fn directives_for(&self, record_id: &str) -> Result<Vec<Directive>, OutboxError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT d.directive_json FROM directive_outbox d \
             WHERE d.record_id = ? AND d.state != 'rejected' AND d.version = \
               (SELECT MAX(e.version) FROM directive_outbox e \
                WHERE e.directive_id = d.directive_id AND e.state != 'rejected') \
             ORDER BY d.id",
        )
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|e| OutboxError::Sql(sqlx::Error::Decode(Box::new(e))))
            })
            .collect()
    }

    /// The record with this id and version as it was queued, if the outbox
    /// holds it (whatever its delivery state). The hub asks for it when the
    /// record's detail is held at source.
    pub async fn record(
        &self,
        record_id: &str,
        version: u64,
    ) -> Result<Option<Record>, OutboxError> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT record_json FROM outbox WHERE record_id = ? AND version = ?",
        )
        .bind(record_id)
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }
}
