-- A release whose Procfile has a `release` command runs it before it gets any traffic:
-- 'running' until it exits, then 'succeeded' or 'failed'; NULL for releases without one.
ALTER TABLE releases ADD COLUMN phase TEXT;
-- What the command printed (its last 64 KiB).
ALTER TABLE releases ADD COLUMN phase_output TEXT NOT NULL DEFAULT '';
