-- Outbound webhooks: the endpoints clients register, their signing secrets, and the outbox of
-- deliveries, each written in the transaction of the call change that causes it. Also the call's
-- own webhook URL and its follow-up email. TEXT and BIGINT only; times are Unix ms.

ALTER TABLE calls ADD COLUMN webhook_url TEXT;       -- sealed: where this call's events also go
ALTER TABLE calls ADD COLUMN follow_up_email_id TEXT; -- the email provider's id, once sent
ALTER TABLE calls ADD COLUMN follow_up_status TEXT;   -- sent, delivered, bounced, complained, …

CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,      -- whep_ + 24 hex
    url         TEXT NOT NULL,         -- sealed
    events      TEXT NOT NULL,         -- space-separated event types; '*' for all
    description TEXT,
    created_at  BIGINT NOT NULL
);

-- Signing secrets, by owner: an endpoint's id, or 'account' for calls' own webhook URLs. After a
-- rotation the previous secret still signs (a second signature) until previous_until.
CREATE TABLE webhook_secrets (
    owner          TEXT PRIMARY KEY,
    secret         TEXT NOT NULL,       -- sealed whsec_…
    previous       TEXT,                -- sealed
    previous_until BIGINT,
    rotated_at     BIGINT NOT NULL
);

-- The outbox: one row per message and destination. id is the webhook-id, the same at every
-- attempt; the dispatcher claims due rows with a lease, so one server sends each attempt.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,   -- msg_ + 24 hex
    channel         TEXT NOT NULL,      -- webhook, email (the follow-up email)
    endpoint_id     TEXT,               -- NULL: the call's own webhook_url (or an email)
    receiver        TEXT NOT NULL,      -- whom it goes to, for the limit of messages in flight:
                                        -- the endpoint's id, host:<keyed hash of host:port>, email
    call_id         TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,    -- the call_events row that caused it
    type            TEXT NOT NULL,      -- call.started, …
    url             TEXT,               -- sealed; NULL for emails
    payload         TEXT,               -- sealed JSON; NULL once erased
    state           TEXT NOT NULL,      -- pending, delivered, dead, skipped, erased
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    window_start    BIGINT NOT NULL,    -- retries end a window after this (creation, or replay)
    next_attempt_at BIGINT NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    last_attempt_at BIGINT,
    last_status     BIGINT,             -- HTTP status of the last attempt; NULL: no answer
    last_error      TEXT,               -- why the last attempt failed (no payload, no secret)
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_created ON webhook_deliveries (created_at, id);
CREATE INDEX webhook_deliveries_by_call ON webhook_deliveries (call_id);
CREATE INDEX calls_by_follow_up_email ON calls (follow_up_email_id);
