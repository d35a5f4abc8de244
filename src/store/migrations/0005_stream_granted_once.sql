-- A call's media stream is granted once: the voice webhook stamps this when it mints the call's
-- stream token, and a replayed webhook for the same CallSid finds it set and gets no token.

ALTER TABLE calls ADD COLUMN stream_granted_at BIGINT;
