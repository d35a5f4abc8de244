-- Inbound webhooks already processed, by message id (a Standard Webhooks id, or the signature of
-- the product's own scheme), so a message delivered again is acknowledged but not processed
-- twice, also across a restart. Rows older than the signatures' tolerance are useless (a replay
-- that old is refused by its timestamp) and are deleted as new ones come.
CREATE TABLE webhook_receipts (
    message_id  TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL   -- Unix ms
);
CREATE INDEX webhook_receipts_received_at ON webhook_receipts (received_at);
