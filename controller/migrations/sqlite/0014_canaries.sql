-- Canary releases: a release on trial beside the one that served before it (the
-- baseline), with a share of the app's requests, judged on what the routers counted.
CREATE TABLE canaries (
    id INTEGER PRIMARY KEY,
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    release_version INTEGER NOT NULL,
    baseline_version INTEGER NOT NULL,
    percent INTEGER NOT NULL,
    sticky INTEGER NOT NULL,
    duration_secs INTEGER NOT NULL,
    min_requests INTEGER NOT NULL,
    -- running, promoted, failed, inconclusive, aborted, superseded
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    ended_at TEXT,
    -- The judgement that ended it (JSON).
    judgement TEXT
);
CREATE INDEX canaries_by_app ON canaries (app_id, id);
-- What the routers counted, added up: requests and 5xx answers per side and latency bucket.
CREATE TABLE canary_samples (
    canary_id INTEGER NOT NULL REFERENCES canaries(id) ON DELETE CASCADE,
    arm TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    PRIMARY KEY (canary_id, arm, bucket)
);
