-- Sharing directives queued for the hub, kept like records in `outbox`:
-- marked, never deleted. `after_record` is the highest `outbox.id` when the
-- directive was queued: the publisher sends a directive only once every
-- record queued before it has left `pending`, so a directive never reaches
-- the hub before the record it governs.
CREATE TABLE IF NOT EXISTS directive_outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    directive_id   TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    record_id      TEXT    NOT NULL,
    content_hash   TEXT    NOT NULL,
    directive_json TEXT    NOT NULL,
    after_record   INTEGER NOT NULL,
    state          TEXT    NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'delivered', 'rejected')),
    enqueued_at    INTEGER NOT NULL, -- Unix milliseconds
    outcome        TEXT,             -- accepted | unchanged | stale, once delivered
    delivered_at   INTEGER,
    rejected_at    INTEGER,
    reject_reason  TEXT,
    UNIQUE (directive_id, version)
);

CREATE INDEX IF NOT EXISTS directive_outbox_by_state ON directive_outbox (state, id);
CREATE INDEX IF NOT EXISTS directive_outbox_by_record ON directive_outbox (record_id);

-- Notifications from the hub (accesses to this authority's records, break
-- glass, revocations), stored before they are acknowledged. One row per
-- notification id: a resent notification is the same row.
CREATE TABLE IF NOT EXISTS notifications (
    notification_id  TEXT    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    occurred_at      TEXT    NOT NULL,
    notification_json TEXT   NOT NULL,
    received_at      INTEGER NOT NULL, -- Unix milliseconds
    -- Each sink configured when it arrived, until delivered there.
    file_pending     INTEGER NOT NULL DEFAULT 0,
    webhook_pending  INTEGER NOT NULL DEFAULT 0,
    last_sink_error  TEXT
);

CREATE INDEX IF NOT EXISTS notifications_by_time ON notifications (received_at);
