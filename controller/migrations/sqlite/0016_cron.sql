-- Scheduled jobs and their runs. A job's `next_run_ms` moves on by a conditional update,
-- so that with several controllers one of them starts each due run; a run is unique per
-- job and due time besides.
CREATE TABLE cron_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    schedule TEXT NOT NULL,
    timezone TEXT NOT NULL,
    command TEXT NOT NULL,
    -- cli, app_json
    source TEXT NOT NULL,
    -- Unix milliseconds.
    next_run_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX cron_jobs_due ON cron_jobs (next_run_ms);
CREATE INDEX cron_jobs_app ON cron_jobs (app_id);
CREATE TABLE cron_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES cron_jobs(id) ON DELETE CASCADE,
    due_ms BIGINT NOT NULL,
    -- running, succeeded, failed, skipped
    state TEXT NOT NULL,
    release_version INTEGER,
    exit_status INTEGER,
    duration_ms INTEGER,
    reason TEXT,
    started_ms BIGINT NOT NULL,
    UNIQUE (job_id, due_ms)
);
CREATE INDEX cron_runs_job ON cron_runs (job_id, id);
