-- The latest crash of each app's process type while it backs off; cleared when one of its
-- containers starts and stays up.
CREATE TABLE crashes (
    app_id BIGINT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    process TEXT NOT NULL,
    release_version BIGINT NOT NULL,
    reason TEXT NOT NULL,
    in_a_row BIGINT NOT NULL,
    crashed_at TEXT NOT NULL,
    restart_at TEXT NOT NULL,
    PRIMARY KEY (app_id, process)
);
