-- +goose Up
-- A running gate's worker heartbeats; a run whose heartbeat stops (its
-- worker died) is handed to another worker with a new job.
ALTER TABLE runs ADD COLUMN heartbeat_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN rescues INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE runs DROP COLUMN rescues;
ALTER TABLE runs DROP COLUMN heartbeat_at;
