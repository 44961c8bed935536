-- +goose Up
-- When a check run's creation was claimed: a claim whose creator died is
-- taken over once it is older than any creator can live.
ALTER TABLE runs ADD COLUMN check_claimed_at BIGINT NOT NULL DEFAULT 0;
-- When one of a run's enders took it upon itself to post the final state:
-- exactly one does, once the run has ended and its check run is known.
ALTER TABLE runs ADD COLUMN report_claimed_at BIGINT NOT NULL DEFAULT 0;

-- What a re-run needs to know of a pull request when its event does not say
-- (a fork's check suite lists no pull requests): its base, and where its
-- head comes from ('' = unknown, treated as a fork).
ALTER TABLE pull_requests ADD COLUMN base_sha TEXT NOT NULL DEFAULT '';
ALTER TABLE pull_requests ADD COLUMN base_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE pull_requests ADD COLUMN head_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE pull_requests ADD COLUMN head_repo TEXT NOT NULL DEFAULT '';
CREATE INDEX pull_requests_head ON pull_requests (repository, head_sha);

-- +goose Down
DROP INDEX pull_requests_head;
ALTER TABLE pull_requests DROP COLUMN head_repo;
ALTER TABLE pull_requests DROP COLUMN head_ref;
ALTER TABLE pull_requests DROP COLUMN base_ref;
ALTER TABLE pull_requests DROP COLUMN base_sha;
ALTER TABLE runs DROP COLUMN report_claimed_at;
ALTER TABLE runs DROP COLUMN check_claimed_at;
