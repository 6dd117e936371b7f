-- Pipelines: apps in stages (development → staging → production) that a build is promoted
-- through, and the review apps made for branches of a pipeline's apps.
CREATE TABLE pipelines (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL
);
-- An app is in one pipeline at most.
CREATE TABLE pipeline_apps (
    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    stage TEXT NOT NULL
);
