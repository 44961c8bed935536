-- +goose Up
-- An acceptance covers a head commit gated against one base commit: a pull
-- request whose base moves (its base branch edited, or main moved and the
-- run re-run) is judged anew, against another base and its config, and must
-- be accepted anew. Existing acceptances take the base of the run accepted.
ALTER TABLE acceptances ADD COLUMN base_sha TEXT NOT NULL DEFAULT '';
UPDATE acceptances a SET base_sha = COALESCE(r.base_sha, '') FROM runs r WHERE r.id = a.run_id;
ALTER TABLE acceptances DROP CONSTRAINT acceptances_pkey;
ALTER TABLE acceptances ADD PRIMARY KEY (repository, pr_number, head_sha, base_sha);

-- +goose Down
DELETE FROM acceptances a USING acceptances b
    WHERE a.repository = b.repository AND a.pr_number = b.pr_number AND a.head_sha = b.head_sha AND a.accepted_at > b.accepted_at;
ALTER TABLE acceptances DROP CONSTRAINT acceptances_pkey;
ALTER TABLE acceptances DROP COLUMN base_sha;
ALTER TABLE acceptances ADD PRIMARY KEY (repository, pr_number, head_sha);
