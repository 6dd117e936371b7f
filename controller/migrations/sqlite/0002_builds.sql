CREATE TABLE builds (
    id INTEGER PRIMARY KEY,
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    image TEXT,
    git_sha TEXT,
    procfile TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    log TEXT NOT NULL
);
CREATE INDEX builds_app ON builds (app_id, id);
ALTER TABLE releases ADD COLUMN build_id INTEGER REFERENCES builds(id);
