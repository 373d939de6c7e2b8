//! Enqueueing: records and directives into their queue, idempotent on
//! (id, version), one multi-row `INSERT` per chunk, in one durable
//! transaction.

use super::*;

impl Outbox {
    /// Writes records (or directives) in one transaction. One whose id and
    /// version are already there (or earlier in `items`) is skipped: counted
    /// as a duplicate when its content hash is the one already taken,
    /// reported as a conflict when it differs. What is already queued wins
    /// over what comes earlier in `items`.
    pub async fn enqueue<T: Queued>(&self, items: &[T]) -> Result<EnqueueSummary, OutboxError> {
        if items.is_empty() {
            return Ok(EnqueueSummary::default());
        }
        let queue = T::QUEUE;
        // The first item of each (id, version), in order, and the indexes
        // of the later ones.
        let mut position: HashMap<(&str, u64), usize> = HashMap::new();
        let mut firsts: Vec<(usize, &T)> = Vec::new();
        let mut later: Vec<Vec<usize>> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match position.entry((item.queue_id(), item.queue_version())) {
                std::collections::hash_map::Entry::Occupied(at) => later[*at.get()].push(index),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(firsts.len());
                    firsts.push((index, item));
                    later.push(Vec::new());
                }
            }
        }
        let mut summary = EnqueueSummary::default();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for (chunk_no, chunk) in firsts.chunks(INSERT_CHUNK).enumerate() {
            // Writing first takes the write lock, so the rows read back below
            // cannot change before the commit.
            let mut insert = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO {} ({}, version, content_hash, {}, state, enqueued_at{}) ",
                queue.table, queue.id_column, queue.json_column, queue.extra_columns
            ));
            insert.push_values(chunk, |mut row, (_, item)| {
                let json = serde_json::to_string(item).expect("domain values always serialise");
                row.push_bind(item.queue_id().to_string())
                    .push_bind(item.queue_version() as i64)
                    .push_bind(item.queue_hash())
                    .push_bind(json)
                    .push_bind("pending")
                    .push_bind(now);
                item.push_extra(&mut row);
            });
            insert.push(format!(
                " ON CONFLICT ({0}, version) DO NOTHING RETURNING {0} AS id, version",
                queue.id_column
            ));
            let inserted: HashSet<(String, i64)> = insert
                .build()
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("id")?, row.try_get("version")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            summary.enqueued += inserted.len();
            let key = |r: &T| (r.queue_id().to_string(), r.queue_version() as i64);
            let skipped: Vec<&T> = chunk
                .iter()
                .map(|(_, r)| *r)
                .filter(|r| !inserted.contains(&key(r)))
                .collect();
            // What the rows queued before this call hold.
            let mut held: HashMap<(String, i64), String> = HashMap::new();
            if !skipped.is_empty() {
                let mut query = QueryBuilder::<Sqlite>::new(format!(
                    "SELECT {0} AS id, version, content_hash FROM {1} WHERE {0} IN (",
                    queue.id_column, queue.table
                ));
                let mut list = query.separated(", ");
                for item in &skipped {
                    list.push_bind(item.queue_id().to_string());
                }
                list.push_unseparated(")");
                for row in query.build().fetch_all(&mut *tx).await? {
                    held.insert(
                        (row.try_get("id")?, row.try_get("version")?),
                        row.try_get("content_hash")?,
                    );
                }
            }
            for (offset, &(index, item)) in chunk.iter().enumerate() {
                // The content this id and version stands for: what was
                // queued before, or else this call's first item of it.
                let first_hash = item.queue_hash();
                let taken = held
                    .get(&key(item))
                    .map_or(first_hash.as_str(), String::as_str);
                let mut judge = |index: usize| {
                    let item = &items[index];
                    if item.queue_hash() == taken {
                        summary.duplicates += 1;
                    } else {
                        summary.conflicts.push(EnqueueConflict {
                            index,
                            id: item.queue_id().to_string(),
                            version: item.queue_version(),
                            noun: queue.noun,
                        });
                    }
                };
                if !inserted.contains(&key(item)) {
                    judge(index);
                }
                for &index in &later[chunk_no * INSERT_CHUNK + offset] {
                    judge(index);
                }
            }
        }
        tx.commit().await?;
        summary.conflicts.sort_by_key(|c| c.index);
        Ok(summary)
    }
}
