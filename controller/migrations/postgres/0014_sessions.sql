-- Dashboard sessions: tokens that stop working at a time (Unix ms); API tokens have none.
ALTER TABLE tokens ADD COLUMN expires_ms BIGINT;
