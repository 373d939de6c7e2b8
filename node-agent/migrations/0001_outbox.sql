-- The durable outbox: every record the agent has accepted from a source
-- system, until the hub has acknowledged it (delivered) or refused it for
-- good (rejected). Rows are marked, never deleted.
CREATE TABLE IF NOT EXISTS outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id     TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    content_hash  TEXT    NOT NULL,
    record_json   TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'delivered', 'rejected')),
    enqueued_at   INTEGER NOT NULL, -- Unix milliseconds
    outcome       TEXT,             -- accepted | unchanged | stale, once delivered
    delivered_at  INTEGER,
    rejected_at   INTEGER,
    reject_reason TEXT,
    UNIQUE (record_id, version)
);

CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox (state, id);

-- Small facts about the agent's own health, e.g. the last publish error.
CREATE TABLE IF NOT EXISTS agent_state (
    key   TEXT    PRIMARY KEY,
    value TEXT    NOT NULL,
    at    INTEGER NOT NULL -- Unix milliseconds
);
