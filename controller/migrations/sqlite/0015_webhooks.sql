-- Outgoing webhooks. Every event has a kind, which webhooks subscribe to.
ALTER TABLE events ADD COLUMN kind TEXT NOT NULL DEFAULT 'app';
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL for a platform-wide webhook (every app's events and the platform's).
    app_id INTEGER REFERENCES apps(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- The kinds it gets, comma-separated and framed by commas: ",build,release,".
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    format TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX webhooks_app ON webhooks (app_id);
-- The delivery queue: one row per event and webhook, kept in order per webhook and app
-- (`queue`: the app's name, '' for platform events), claimed by one controller per attempt.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    -- The event as JSON; each attempt sends the same body.
    payload TEXT NOT NULL,
    -- pending, delivered, failed
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Unix milliseconds.
    created_ms BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    claimed_until_ms BIGINT NOT NULL DEFAULT 0,
    status INTEGER,
    error TEXT,
    latency_ms INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (state, webhook_id, queue, id);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
