-- +goose Up
-- Whether each repository is private, as GitHub last said (every delivery
-- carries repository.private). Runs of a repository that is not known to be
-- public are shown only to those who may see it: a repository without a row
-- here, or with private = 1, is private.
CREATE TABLE repositories (
    full_name   TEXT    PRIMARY KEY,
    private     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- Repositories gated before this table existed: private if any of their
-- runs said so (fail closed); the next delivery corrects it.
INSERT INTO repositories (full_name, private, updated_at)
    SELECT repository, MAX(private), 0 FROM runs GROUP BY repository;

-- +goose Down
DROP TABLE repositories;
