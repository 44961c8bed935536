-- +goose Up
ALTER TABLE runs ADD COLUMN progress TEXT NOT NULL DEFAULT '';

CREATE TABLE pull_requests (
    repository  TEXT    NOT NULL,
    number      INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    head_sha    TEXT    NOT NULL DEFAULT '',
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (repository, number)
);

CREATE INDEX runs_repo_newest ON runs (repository, id DESC);

-- +goose Down
DROP INDEX runs_repo_newest;
DROP TABLE pull_requests;
ALTER TABLE runs DROP COLUMN progress;
