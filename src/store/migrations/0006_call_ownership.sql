-- Call ownership across instances: the instance whose socket carries a call's stream claims it
-- once (`stream_started_at`), names itself (`owner`) and holds a lease it renews while it lives
-- (`lease_until`, Unix ms). A crashed instance's leases run out and another instance marks its
-- calls interrupted.

ALTER TABLE calls ADD COLUMN stream_started_at BIGINT;
ALTER TABLE calls ADD COLUMN owner TEXT;
ALTER TABLE calls ADD COLUMN lease_until BIGINT;
CREATE INDEX calls_owner_unended ON calls (owner) WHERE end_reason IS NULL;
CREATE INDEX calls_lease_unended ON calls (lease_until) WHERE end_reason IS NULL;
