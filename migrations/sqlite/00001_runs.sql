-- +goose Up
-- Times are unix milliseconds (UTC) so the same Go code reads every engine.
CREATE TABLE deliveries (
    guid         TEXT PRIMARY KEY,           -- X-GitHub-Delivery; a redelivery reuses it
    event        TEXT NOT NULL,
    action       TEXT NOT NULL DEFAULT '',
    repository   TEXT NOT NULL DEFAULT '',
    outcome      TEXT NOT NULL,              -- queued, duplicate, ignored, cancelled, ...
    run_id       INTEGER,
    received_at  INTEGER NOT NULL
);

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    repository       TEXT    NOT NULL,
    pr_number        INTEGER NOT NULL DEFAULT 0,
    head_sha         TEXT    NOT NULL,
    base_sha         TEXT    NOT NULL DEFAULT '',
    head_ref         TEXT    NOT NULL DEFAULT '',
    base_ref         TEXT    NOT NULL DEFAULT '',
    clone_url        TEXT    NOT NULL,
    private          INTEGER NOT NULL DEFAULT 0,
    installation_id  INTEGER NOT NULL DEFAULT 0,
    trigger          TEXT    NOT NULL,
    delivery_guid    TEXT    NOT NULL DEFAULT '',
    attempt          INTEGER NOT NULL DEFAULT 0,
    rerun_of         INTEGER NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL,
    verdict          TEXT    NOT NULL DEFAULT '',
    reason           TEXT    NOT NULL DEFAULT '',
    check_run_id     INTEGER NOT NULL DEFAULT 0,
    job_id           INTEGER NOT NULL DEFAULT 0,
    heap_fluctuation REAL,
    heap_growth      REAL,
    goroutine_growth REAL,
    report           TEXT,                   -- the full JSON report, samples included
    build_log        TEXT    NOT NULL DEFAULT '',
    service_log      TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL DEFAULT 0,
    finished_at      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (repository, pr_number, head_sha, attempt)
);
CREATE INDEX runs_newest       ON runs (id DESC);
CREATE INDEX runs_repo_pr      ON runs (repository, pr_number, id DESC);
CREATE INDEX runs_repo_head    ON runs (repository, head_sha, id DESC);
CREATE INDEX runs_verdict      ON runs (verdict, id DESC);
CREATE INDEX runs_active       ON runs (status) WHERE status IN ('queued', 'running');

CREATE TABLE samples (
    run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    t            REAL    NOT NULL,
    phase        TEXT    NOT NULL,
    heap_inuse   INTEGER NOT NULL,
    post_gc_heap INTEGER NOT NULL DEFAULT 0,
    heap_live    INTEGER NOT NULL DEFAULT 0,
    goroutines   INTEGER NOT NULL,
    gc_cycles    INTEGER NOT NULL,
    requests     INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE profiles (
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    data    BLOB    NOT NULL,
    PRIMARY KEY (run_id, name)
);

-- +goose Down
DROP TABLE profiles;
DROP TABLE samples;
DROP TABLE runs;
DROP TABLE deliveries;
