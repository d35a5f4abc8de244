-- One schema for SQLite and PostgreSQL: TEXT and BIGINT only (times are Unix milliseconds,
-- flags are NULL or a time). Sensitive columns hold values sealed with AES-256-GCM ("v1.…").

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,   -- lowercase hex SHA-256 of the whole token
    scopes       TEXT NOT NULL,          -- space-separated
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    replaced_by  TEXT
);

CREATE TABLE calls (
    call_sid    TEXT PRIMARY KEY,
    direction   TEXT NOT NULL,
    from_number TEXT NOT NULL,           -- sealed
    to_number   TEXT NOT NULL,           -- sealed
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX calls_by_created_at ON calls (created_at);

CREATE TABLE audit_events (
    id       TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,              -- auth.success, auth.failure, token.created, ...
    token_id TEXT,
    client   TEXT,                       -- client IP address
    detail   TEXT NOT NULL,
    count    BIGINT NOT NULL
);
CREATE INDEX audit_events_by_at ON audit_events (at);
