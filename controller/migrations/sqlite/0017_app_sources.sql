-- Apps built from a source repository's pushes, and the push events already taken (a
-- replayed event is refused).
CREATE TABLE app_sources (
    app_id INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    repo TEXT NOT NULL,
    branch TEXT NOT NULL,
    secret TEXT NOT NULL,
    -- The private half of the app's deploy key (OpenSSH), for ssh repositories.
    deploy_key TEXT,
    connected_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE source_deliveries (
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    delivery TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (app_id, delivery)
);
