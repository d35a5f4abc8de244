-- Calls as resources: our own id beside Twilio's CallSid, the status timeline, the per-call event
-- log, transcript turns, the do-not-call list, idempotency keys and scheduler claims.
-- TEXT and BIGINT only, as in 0001: times are Unix milliseconds, offsets milliseconds from the
-- start of the call; sealed columns hold "v1.…" values bound to their column and row.

-- calls is rebuilt around `id` (SQLite cannot change a primary key in place). Existing rows keep
-- their CallSid as their id, so the numbers sealed for `calls.from_number:{call_sid}` still open;
-- Twilio's raw direction and status become ours.
CREATE TABLE calls_v2 (
    id                TEXT PRIMARY KEY,      -- call_ + 26 base32 chars (older rows: CallSid)
    call_sid          TEXT UNIQUE,           -- Twilio's, once assigned
    direction         TEXT NOT NULL,         -- inbound, outbound
    from_number       TEXT,                  -- sealed; NULL once erased
    to_number         TEXT,                  -- sealed; NULL once erased
    status            TEXT NOT NULL,         -- scheduled, queued, ringing, in-progress, …
    status_rank       BIGINT NOT NULL,       -- its place in the timeline: never goes down
    status_sequence   BIGINT,                -- Twilio's SequenceNumber of the last status applied
    agent             TEXT,
    metadata          TEXT,                  -- sealed JSON from the caller of the API
    extraction        TEXT,                  -- sealed JSON: name, phone, intent, next_step, consent
    answered_by       TEXT,                  -- machine detection: human, machine_start, …
    end_reason        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    started_at        BIGINT,
    answered_at       BIGINT,
    ended_at          BIGINT,
    scheduled_at      BIGINT,
    timezone          TEXT,
    machine_detection TEXT,
    claimed_by        TEXT,                  -- the scheduler instance placing it
    claimed_at        BIGINT,
    last_event        BIGINT NOT NULL DEFAULT 0, -- seq of its latest call_events row
    last_turn         BIGINT NOT NULL DEFAULT 0, -- n of its latest call_turns row
    purged_at         BIGINT,                -- transcript, extraction, metadata removed
    erased_at         BIGINT                 -- numbers removed too: a tombstone
);
INSERT INTO calls_v2 (id, call_sid, direction, from_number, to_number, status, status_rank,
                      created_at, updated_at, started_at)
SELECT call_sid, call_sid,
       CASE WHEN direction LIKE 'outbound%' THEN 'outbound' ELSE 'inbound' END,
       from_number, to_number,
       CASE WHEN status IN ('queued', 'ringing', 'in-progress', 'completed', 'busy', 'no-answer',
                            'failed', 'canceled') THEN status ELSE 'queued' END,
       CASE WHEN status = 'ringing' THEN 2
            WHEN status = 'in-progress' THEN 3
            WHEN status IN ('completed', 'busy', 'no-answer', 'failed', 'canceled') THEN 4
            ELSE 1 END,
       created_at, updated_at, created_at
FROM calls;
DROP TABLE calls;
ALTER TABLE calls_v2 RENAME TO calls;
CREATE INDEX calls_by_created_at ON calls (created_at, id);
CREATE INDEX calls_due ON calls (scheduled_at) WHERE status = 'scheduled';

-- The per-call event log (timeline, Server-Sent Events resumption): seq runs 1, 2, 3… per call,
-- allocated from calls.last_event in the transaction that writes the event.
CREATE TABLE call_events (
    call_id TEXT NOT NULL REFERENCES calls (id),
    seq     BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,                   -- status, answered_by, turn, barge_in, end
    data    TEXT,                            -- JSON; sealed for turn, barge_in; NULL once erased
    PRIMARY KEY (call_id, seq)
);

-- Transcript turns, one row per turn as it ends; n from calls.last_turn.
CREATE TABLE call_turns (
    call_id        TEXT NOT NULL REFERENCES calls (id),
    n              BIGINT NOT NULL,
    speaker        TEXT NOT NULL,            -- caller, agent
    text           TEXT NOT NULL,            -- sealed
    start_ms       BIGINT NOT NULL,
    end_ms         BIGINT NOT NULL,
    interrupted    BIGINT NOT NULL,          -- 1 when the caller talked over it, else 0
    heard          TEXT,                     -- sealed: what the caller heard of an interrupted turn
    stt_final_ms   BIGINT,                   -- latencies of the stages of a reply, ms
    end_of_turn_ms BIGINT,
    first_text_ms  BIGINT,
    first_audio_ms BIGINT,
    first_sent_ms  BIGINT,
    first_heard_ms BIGINT,
    at             BIGINT NOT NULL,
    PRIMARY KEY (call_id, n)
);

-- Numbers never to call, found by a keyed hash of the E.164 number.
CREATE TABLE dnc_numbers (
    number_hash TEXT PRIMARY KEY,            -- hex HMAC-SHA256, key derived from the data key
    number      TEXT NOT NULL,               -- sealed
    added_at    BIGINT NOT NULL
);

-- The first answer to a POST /api/calls per token and Idempotency-Key; claimed before the call
-- is placed (status and body NULL), answered after.
CREATE TABLE idempotency_keys (
    token_id   TEXT NOT NULL,
    key        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status     BIGINT,                       -- the HTTP status
    body       TEXT,                         -- sealed JSON
    PRIMARY KEY (token_id, key)
);
CREATE INDEX idempotency_keys_by_created_at ON idempotency_keys (created_at);
