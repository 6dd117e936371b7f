CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX events_app ON events (app, id);
