-- Pipelines: apps in stages (development → staging → production) that a build is promoted
-- through, and the review apps made for branches of a pipeline's apps.
CREATE TABLE pipelines (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    -- Review apps: 1 when a branch push makes one; destroyed after `review_days` without a
    -- push; `review_config` is the config a new one starts with.
    review_apps INTEGER NOT NULL DEFAULT 0,
    review_days INTEGER NOT NULL DEFAULT 5,
    review_config TEXT NOT NULL DEFAULT '{}'
);
-- An app is in one pipeline at most.
CREATE TABLE pipeline_apps (
    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    stage TEXT NOT NULL
);
-- The review app of each pushed branch of an app; `postdeploy_ran` once its app.json's
-- postdeploy script ran.
CREATE TABLE review_apps (
    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    parent_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    branch TEXT NOT NULL,
    pushed_at TEXT NOT NULL,
    postdeploy_ran INTEGER NOT NULL DEFAULT 0,
    UNIQUE (parent_id, branch)
);
