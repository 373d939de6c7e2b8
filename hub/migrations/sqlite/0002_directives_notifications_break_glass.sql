-- Sharing directives: the current version of each (custodian, directive_id).
-- `body` is the JSON of the domain directive (kith_core::Directive).
CREATE TABLE directives (
    custodian    TEXT    NOT NULL,
    directive_id TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    record_id    TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (custodian, directive_id)
);

CREATE INDEX directives_by_record ON directives (custodian, record_id);

-- Which authorities' users have been shown each record (at summary level or
-- more): who must be told when the custodian revokes it. Written in the same
-- transaction as the query's audit entry.
CREATE TABLE disclosures (
    custodian TEXT NOT NULL,
    record_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    first_at  TEXT NOT NULL,
    PRIMARY KEY (custodian, record_id, recipient)
);

-- Notifications waiting for, or delivered to, an authority's agent. `body`
-- is the JSON of the domain notification (hub::notify::Notification).
-- Resent on every link until the agent acknowledges it.
CREATE TABLE notifications (
    notification_id TEXT NOT NULL PRIMARY KEY,
    authority       TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);

CREATE INDEX notifications_pending ON notifications (authority, created_at)
    WHERE delivered_at IS NULL;

-- Break-glass accesses: the emergency access each opened for one user and
-- subject until `expires_at`, and its review. `body` is the JSON of the
-- domain access (hub::break_glass::BreakGlassAccess), review included.
CREATE TABLE break_glass (
    query_id    TEXT NOT NULL PRIMARY KEY,
    authority   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    reviewed    INTEGER NOT NULL DEFAULT 0 CHECK (reviewed IN (0, 1)),
    body        TEXT NOT NULL
);

CREATE INDEX break_glass_open ON break_glass (authority, user_id, subject, expires_at);
CREATE INDEX break_glass_by_authority ON break_glass (authority, reviewed);

CREATE INDEX records_by_retain_until ON records (retain_until) WHERE retain_until IS NOT NULL;

-- Blocking keys for demographic matching (a query without an NHS number):
-- candidates share the date of birth (or it with day and month swapped) or
-- the normalised postcode, and are then scored (kith_core::matching).
ALTER TABLE records ADD COLUMN date_of_birth TEXT;
ALTER TABLE records ADD COLUMN postcode_key TEXT;
CREATE INDEX records_by_date_of_birth ON records (date_of_birth) WHERE date_of_birth IS NOT NULL;
CREATE INDEX records_by_postcode_key ON records (postcode_key) WHERE postcode_key IS NOT NULL;
