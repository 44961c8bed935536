-- +goose Up
-- A pull request is gated with its base beside it (issue 13).
--
-- base_results keeps a base commit's gate result so that other pull requests
-- on the same base commit and config reuse it. The key is the repository,
-- the base commit and config_hash: a hash of the base's effective config and
-- of memgate's gate-affecting version, so a changed config or a new memgate
-- never reuses an old number. One row per key: the first worker to claim it
-- measures (state 'running', its run in holder, a lease it renews); others
-- on the same base wait for it; a holder whose lease ran out (its worker
-- died) is taken over. Only pass and fail results are kept ('done'): an
-- error or an inconclusive base is measured again by the next pull request.
CREATE TABLE base_results (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    repository   TEXT    NOT NULL,
    base_sha     TEXT    NOT NULL,
    config_hash  TEXT    NOT NULL,
    state        TEXT    NOT NULL,            -- running, done
    holder       INTEGER NOT NULL DEFAULT 0,  -- the run measuring it
    lease_until  INTEGER NOT NULL DEFAULT 0,
    run_id       INTEGER NOT NULL DEFAULT 0,  -- the run that measured it
    verdict      TEXT    NOT NULL DEFAULT '',
    report       TEXT,                        -- the base's full JSON report
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (repository, base_sha, config_hash)
);

-- What a pull request's run found against its base: the comparison (JSON;
-- the base's report lives in base_results when base_result_id says so),
-- its outcome and whether a failure did not confirm (flake), for lists.
ALTER TABLE runs ADD COLUMN comparison TEXT;
ALTER TABLE runs ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN flake INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN base_result_id INTEGER NOT NULL DEFAULT 0;

-- An intended change accepted with the check run's Accept button by someone
-- with write permission: it covers one head commit of one pull request (a
-- new push needs a new acceptance) and changes no limit of anything else.
CREATE TABLE acceptances (
    repository  TEXT    NOT NULL,
    pr_number   INTEGER NOT NULL,
    head_sha    TEXT    NOT NULL,
    run_id      INTEGER NOT NULL,             -- the run whose check run was accepted
    accepted_by TEXT    NOT NULL,
    accepted_at INTEGER NOT NULL,
    PRIMARY KEY (repository, pr_number, head_sha)
);

-- +goose Down
DROP TABLE acceptances;
ALTER TABLE runs DROP COLUMN base_result_id;
ALTER TABLE runs DROP COLUMN flake;
ALTER TABLE runs DROP COLUMN outcome;
ALTER TABLE runs DROP COLUMN comparison;
DROP TABLE base_results;
