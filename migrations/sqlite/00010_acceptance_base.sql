-- +goose Up
-- An acceptance covers a head commit gated against one base commit: a pull
-- request whose base moves (its base branch edited, or main moved and the
-- run re-run) is judged anew, against another base and its config, and must
-- be accepted anew. Existing acceptances take the base of the run accepted.
CREATE TABLE acceptances_new (
    repository  TEXT    NOT NULL,
    pr_number   INTEGER NOT NULL,
    head_sha    TEXT    NOT NULL,
    base_sha    TEXT    NOT NULL,
    run_id      INTEGER NOT NULL,
    accepted_by TEXT    NOT NULL,
    accepted_at INTEGER NOT NULL,
    PRIMARY KEY (repository, pr_number, head_sha, base_sha)
);
INSERT INTO acceptances_new (repository, pr_number, head_sha, base_sha, run_id, accepted_by, accepted_at)
    SELECT a.repository, a.pr_number, a.head_sha, COALESCE(r.base_sha, ''), a.run_id, a.accepted_by, a.accepted_at
    FROM acceptances a LEFT JOIN runs r ON r.id = a.run_id;
DROP TABLE acceptances;
ALTER TABLE acceptances_new RENAME TO acceptances;

-- +goose Down
CREATE TABLE acceptances_old (
    repository  TEXT    NOT NULL,
    pr_number   INTEGER NOT NULL,
    head_sha    TEXT    NOT NULL,
    run_id      INTEGER NOT NULL,
    accepted_by TEXT    NOT NULL,
    accepted_at INTEGER NOT NULL,
    PRIMARY KEY (repository, pr_number, head_sha)
);
INSERT OR IGNORE INTO acceptances_old (repository, pr_number, head_sha, run_id, accepted_by, accepted_at)
    SELECT repository, pr_number, head_sha, run_id, accepted_by, accepted_at FROM acceptances ORDER BY accepted_at;
DROP TABLE acceptances;
ALTER TABLE acceptances_old RENAME TO acceptances;
