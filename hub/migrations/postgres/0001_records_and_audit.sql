-- The PostgreSQL schema: the same tables, columns and rules as
-- migrations/sqlite/0001_records_and_audit.sql (see the comments there).
-- Integers are BIGINT, blobs BYTEA; dates and times stay ISO 8601 TEXT so
-- both stores hold identical values.

-- Relationship records: the current version of each (custodian, record_id).
CREATE TABLE records (
    custodian         TEXT   NOT NULL,
    record_id         TEXT   NOT NULL,
    version           BIGINT NOT NULL CHECK (version >= 1),
    nhs_number        TEXT,
    relationship_type TEXT   NOT NULL,
    status            TEXT   NOT NULL CHECK (status IN ('active', 'withdrawn')),
    withdraw_reason   TEXT,
    ended_on          TEXT,
    content_hash      TEXT   NOT NULL,
    retain_until      TEXT,
    -- 1 when the record's residency forbids holding its detail here: `body`
    -- then holds the index and summary fields only (see data_location.rs).
    held_at_source    BIGINT NOT NULL DEFAULT 0 CHECK (held_at_source IN (0, 1)),
    -- JSON of the domain record (kith_core::Record), cut to the index when
    -- held at source.
    body              TEXT   NOT NULL,
    updated_at        TEXT   NOT NULL,
    PRIMARY KEY (custodian, record_id)
);

CREATE INDEX records_by_nhs_number ON records (nhs_number) WHERE nhs_number IS NOT NULL;

-- The audit log. `idx` counts from 0 with no gaps and is the entry's leaf
-- index in the Merkle tree; `entry` holds the exact canonical JSON bytes of
-- the entry; `leaf_hash` is SHA-256(0x00 || entry), computed when appended
-- (RFC 9162 section 2.1.1). Appends are sequenced across hub replicas by a
-- transaction-scoped advisory lock (see store/postgres.rs). Nothing updates
-- or deletes a row.
CREATE TABLE audit_log (
    idx         BIGINT PRIMARY KEY CHECK (idx >= 0),
    recorded_at TEXT   NOT NULL,
    entry       BYTEA  NOT NULL,
    leaf_hash   BYTEA  NOT NULL CHECK (octet_length(leaf_hash) = 32)
);

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), one per tree
-- size the hub has signed.
CREATE TABLE audit_checkpoints (
    tree_size   BIGINT PRIMARY KEY,
    root_hash   BYTEA  NOT NULL CHECK (octet_length(root_hash) = 32),
    signed_note TEXT   NOT NULL,
    signed_at   TEXT   NOT NULL
);

CREATE FUNCTION audit_checkpoints_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'checkpoints are immutable';
END;
$$;

CREATE FUNCTION audit_entries_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are immutable';
END;
$$;

CREATE TRIGGER audit_checkpoints_are_append_only_update BEFORE UPDATE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_are_immutable();

CREATE TRIGGER audit_checkpoints_are_append_only_delete BEFORE DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_are_immutable();

-- TRUNCATE fires no row triggers: refuse it too.
CREATE TRIGGER audit_checkpoints_are_append_only_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_are_immutable();

CREATE TRIGGER audit_log_is_append_only_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_entries_are_immutable();

CREATE TRIGGER audit_log_is_append_only_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_entries_are_immutable();

CREATE TRIGGER audit_log_is_append_only_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_are_immutable();
