-- The staff console: local accounts and server-side sessions.

-- Local accounts, for the embedded default and the demo (authorities with
-- an identity provider sign in through OpenID Connect instead).
CREATE TABLE console_users (
    user_id       TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    team          TEXT NOT NULL,
    role          TEXT NOT NULL,
    -- PHC string of an argon2id hash: $argon2id$v=19$m=...,t=...,p=...$salt$hash
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- A signed-in member of staff. Only the SHA-256 of the session id is kept,
-- so a copy of this file does not let anyone take over a session. The
-- acting user (id, name, team, role) is fixed at sign-in.
CREATE TABLE console_sessions (
    id_hash       TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    team          TEXT NOT NULL,
    role          TEXT NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);
