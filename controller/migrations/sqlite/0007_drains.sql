CREATE TABLE drains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER REFERENCES apps(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX drains_app ON drains (app_id);
