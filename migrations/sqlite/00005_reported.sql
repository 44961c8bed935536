-- +goose Up
-- When a run's final state reached GitHub: a reconciler re-posts what did
-- not, so no check stays in progress.
ALTER TABLE runs ADD COLUMN reported_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN report_attempts INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE runs DROP COLUMN report_attempts;
ALTER TABLE runs DROP COLUMN reported_at;
