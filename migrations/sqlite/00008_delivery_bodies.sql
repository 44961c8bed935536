-- +goose Up
-- The SHA-256 of each accepted delivery's body: GitHub signs the body, not
-- the X-GitHub-Delivery header, so a captured body sent again under a new
-- delivery id is refused by this key (GitHub's own redeliveries reuse the id).
ALTER TABLE deliveries ADD COLUMN body_sha256 TEXT;
CREATE UNIQUE INDEX deliveries_body ON deliveries (body_sha256);

-- +goose Down
DROP INDEX deliveries_body;
ALTER TABLE deliveries DROP COLUMN body_sha256;
