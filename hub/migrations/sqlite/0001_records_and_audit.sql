-- Relationship records: the current version of each (custodian, record_id).
CREATE TABLE records (
    custodian         TEXT    NOT NULL,
    record_id         TEXT    NOT NULL,
    version           INTEGER NOT NULL CHECK (version >= 1),
    nhs_number        TEXT,
    relationship_type TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('active', 'withdrawn')),
    withdraw_reason   TEXT,
    ended_on          TEXT,
    content_hash      TEXT    NOT NULL,
    retain_until      TEXT,
    -- 1 when the record's residency forbids holding its detail here: `body`
    -- then holds the index and summary fields only (see data_location.rs).
    held_at_source    INTEGER NOT NULL DEFAULT 0 CHECK (held_at_source IN (0, 1)),
    -- JSON of the domain record (kith_core::Record), cut to the index when
    -- held at source.
    body              TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    PRIMARY KEY (custodian, record_id)
);

CREATE INDEX records_by_nhs_number ON records (nhs_number) WHERE nhs_number IS NOT NULL;

-- The audit log. `idx` counts from 0 with no gaps and is the entry's leaf
-- index in the Merkle tree; `entry` holds the exact canonical JSON bytes of
-- the entry; `leaf_hash` is SHA-256(0x00 || entry), computed when appended
-- (RFC 9162 section 2.1.1). The tree is built from `leaf_hash`, so a later
-- change to `entry` alone is caught by inclusion proofs. Nothing updates or
-- deletes a row.
CREATE TABLE audit_log (
    idx         INTEGER PRIMARY KEY,
    recorded_at TEXT    NOT NULL,
    entry       BLOB    NOT NULL,
    leaf_hash   BLOB    NOT NULL CHECK (length(leaf_hash) = 32)
);

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), one per tree
-- size the hub has signed.
CREATE TABLE audit_checkpoints (
    tree_size   INTEGER PRIMARY KEY,
    root_hash   BLOB    NOT NULL CHECK (length(root_hash) = 32),
    signed_note TEXT    NOT NULL,
    signed_at   TEXT    NOT NULL
);

CREATE TRIGGER audit_checkpoints_are_append_only_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are immutable');
END;

CREATE TRIGGER audit_checkpoints_are_append_only_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are immutable');
END;

CREATE TRIGGER audit_log_is_append_only_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit entries are immutable');
END;

CREATE TRIGGER audit_log_is_append_only_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit entries are immutable');
END;
