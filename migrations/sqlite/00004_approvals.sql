-- +goose Up
-- A maintainer's approval to gate a fork's pull request covers one head
-- commit: a new push needs a new approval.
CREATE TABLE approvals (
    repository  TEXT    NOT NULL,
    pr_number   INTEGER NOT NULL,
    head_sha    TEXT    NOT NULL,
    approved_by TEXT    NOT NULL DEFAULT '',
    approved_at BIGINT  NOT NULL,
    PRIMARY KEY (repository, pr_number, head_sha)
);

-- +goose Down
DROP TABLE approvals;
