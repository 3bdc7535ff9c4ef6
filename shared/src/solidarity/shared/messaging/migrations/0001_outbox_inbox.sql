-- The transactional outbox: events written in the same transaction as the change that caused them.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    shard smallint NOT NULL,
    topic text NOT NULL,
    key bytea,
    value bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);
-- Pending rows, in order, per shard: what the relay reads.
CREATE INDEX outbox_pending ON outbox (shard, id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- One row per shard; a relay instance locks the shards it publishes (FOR UPDATE SKIP LOCKED),
-- so several instances share the work and one key's events never race each other.
CREATE TABLE outbox_shards (shard smallint PRIMARY KEY);
INSERT INTO outbox_shards (shard) SELECT generate_series(0, 15);

-- The inbox: which events each consumer has applied, claimed in the transaction of the effect.
CREATE TABLE inbox (
    consumer text NOT NULL,
    event_id uuid NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
